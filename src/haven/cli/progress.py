"""Progress on stderr for operations that take more than a moment, as az shows it.

`with progress("Listing tags") as step: … step.advance(len(page))` draws a spinner, the
description and a count (a bar and `n/total` when `total` is known) on stderr, and erases
it when the block ends: nothing of it stays on the terminal. It is drawn only once the
block has lasted `DELAY_SECONDS`, so quick commands print nothing extra at all.

It is never drawn on stdout, which carries the JSON or TSV that scripts read, and never
drawn when stderr is not a terminal (a pipe, a file, CI logs), when `--only-show-errors`
asked for quiet, or under `--debug`, whose HTTP log on stderr it would garble. `-o none`
does not hide it: that option is about stdout. Only one display runs at a time; a block
inside another one draws nothing.

Nothing may be written to the terminal while a display is drawn, or the two interleave:
print a result after its block has ended, not inside it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.text import Text

from haven.cli.command import invocation

DELAY_SECONDS = 0.5

_drawing: ContextVar[bool] = ContextVar("haven_progress_drawing", default=False)


class Step:
    """The running operation as its display shows it; a silent Step draws nothing."""

    def __init__(self, display: Progress | None = None, task: TaskID | None = None) -> None:
        self._display = display
        self._task = task

    def advance(self, count: int = 1) -> None:
        """Count `count` more items (or steps) done."""
        if self._display is not None and self._task is not None:
            self._display.advance(self._task, count)

    def describe(self, description: str) -> None:
        """Say what the operation is doing now."""
        if self._display is not None and self._task is not None:
            self._display.update(self._task, description=description)


class _Count(ProgressColumn):
    """The items counted so far, once there are any (a listing's total is unknown)."""

    def render(self, task: Task) -> Text:
        return Text(f"{int(task.completed):,}" if task.completed else "")


def _stderr_console() -> Console | None:
    """A console on stderr when stderr is a terminal; None otherwise (or when closed)."""
    stream = sys.stderr
    try:
        if stream is None or not stream.isatty():
            return None
    except (OSError, ValueError):
        return None
    return Console(file=stream)


def _may_draw(console: Console | None) -> bool:
    state = invocation()
    return (
        console is not None
        and console.is_terminal
        and console.is_interactive
        and not state.only_show_errors
        and not state.debug
        and not _drawing.get()
    )


@contextmanager
def progress(
    description: str,
    total: int | None = None,
    *,
    console: Console | None = None,
    delay: float | None = None,
) -> Iterator[Step]:
    """A transient display of `description…` while the block runs (see the module's rules).

    `console` replaces stderr's (tests inject one); `delay` replaces DELAY_SECONDS. The
    display starts from a timer thread, so a block that blocks on I/O still shows it; an
    exception leaving the block erases it as a normal end does.
    """
    console = console if console is not None else _stderr_console()
    if not _may_draw(console):
        yield Step()
        return
    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("{task.description}…")]
    if total is None:
        columns.append(_Count())
    else:
        columns += [BarColumn(), MofNCompleteColumn()]
    display = Progress(
        *columns,
        console=console,
        transient=True,
        redirect_stdout=False,  # rich would send stdout through stderr's console
        redirect_stderr=False,
    )
    task = display.add_task(description, total=total)
    lock = threading.Lock()
    ended = False

    def show() -> None:
        with lock:
            if not ended:
                display.start()

    timer = threading.Timer(DELAY_SECONDS if delay is None else delay, show)
    timer.daemon = True
    token = _drawing.set(True)
    timer.start()
    try:
        yield Step(display, task)
    finally:
        _drawing.reset(token)
        with lock:
            ended = True
            timer.cancel()
            if display.live.is_started:
                display.stop()
