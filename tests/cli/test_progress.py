"""Progress displays: drawn on a terminal's stderr only, never on stdout, never off a
terminal, never with `--only-show-errors` or `--debug`, never for a quick operation, and
erased without a trace when the operation ends.

A pseudo-terminal stands in for the user's terminal; `screen()` replays what was written to
it, so a test can say what the user is left looking at."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import click
import pytest

from haven.cli import progress as progress_module
from haven.cli.command import invocation
from haven.cli.progress import progress

from .conftest import Haven
from .fake_haven import Answer, FakeHaven, Handler, Recorded
from .test_health import TOOLS, install

ESCAPE = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")
QUICK = 0.05  # a display delay short enough for the tests to outlast


def screen(output: str) -> list[str]:
    """The lines a terminal shows after `output` (the few controls rich uses), trailing
    blanks dropped; an unknown control fails the test rather than being guessed at."""
    lines: list[list[str]] = [[]]
    row = column = 0
    position = 0
    while position < len(output):
        control = ESCAPE.match(output, position)
        if control is not None:
            argument, kind = control.groups()
            if kind == "A":
                row = max(0, row - int(argument or 1))
            elif kind == "K":
                assert argument == "2", f"unexpected erase {control.group()!r}"
                lines[row] = []
            else:
                assert kind in "mhl", f"unexpected control {control.group()!r}"
            position = control.end()
            continue
        character = output[position]
        position += 1
        if character == "\r":
            column = 0
        elif character == "\n":
            row += 1
            while len(lines) <= row:
                lines.append([])
        else:
            line = lines[row]
            line.extend(" " * (column + 1 - len(line)))
            line[column] = character
            column += 1
    shown = ["".join(line).rstrip() for line in lines]
    while shown and not shown[-1]:
        shown.pop()
    return shown


@dataclass
class Terminal:
    """The controlling side of a pseudo-terminal: what was written to its device."""

    controller: int
    device: int

    def output(self, stream: TextIO | None = None) -> str:
        """What has been written so far (after flushing `stream`), as text."""
        return self.read(stream).decode()

    def read(self, stream: TextIO | None = None) -> bytes:
        if stream is not None:
            stream.flush()
        data = b""
        deadline = time.monotonic() + 1.0  # a display being drawn never falls silent
        while time.monotonic() < deadline and select.select([self.controller], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.controller, 65536)
            except OSError:  # the device side is closed and everything has been read
                break
            if not chunk:
                break
            data += chunk
        return data


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[Terminal]:
    """A pseudo-terminal, and an environment that leaves rich to judge it by isatty()."""
    for variable in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "100")
    controller, device = pty.openpty()
    try:
        yield Terminal(controller, device)
    finally:
        os.close(device)
        os.close(controller)


@dataclass
class Streams:
    stderr: TextIO
    stdout: io.StringIO


@contextmanager
def stderr_on(terminal: Terminal) -> Iterator[Streams]:
    """For the block, sys.stderr writes to `terminal` and sys.stdout into a buffer. (Not a
    fixture: pytest puts its capturing streams back between a fixture and its test.)"""
    with (
        open(terminal.device, "w", encoding="utf-8", closefd=False) as stream,
        redirect_stderr(stream),
        redirect_stdout(io.StringIO()) as stdout,
    ):
        yield Streams(stream, stdout)


# ------------------------------------------------------------------ the helper alone


def test_nothing_is_written_when_stderr_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Even with FORCE_COLOR, which makes rich itself treat any stream as a terminal.
    monkeypatch.setenv("FORCE_COLOR", "1")
    with (
        redirect_stderr(io.StringIO()) as stderr,
        redirect_stdout(io.StringIO()) as stdout,
        progress("Listing tags", delay=0) as step,
    ):
        step.advance(100)
        time.sleep(0.3)
    assert stderr.getvalue() == ""
    assert stdout.getvalue() == ""


def test_on_a_terminal_it_is_drawn_on_stderr_and_erased_without_a_trace(
    terminal: Terminal,
) -> None:
    with stderr_on(terminal) as streams:
        print("a line written before", file=sys.stderr, flush=True)
        with progress("Listing repositories", delay=QUICK) as step:
            step.advance(1200)
            time.sleep(0.3)
            during = terminal.output(streams.stderr)
            print('["a result"]')  # stdout stays stdout while the display is drawn
        after = terminal.output(streams.stderr)
    shown = screen(during)
    assert shown[0] == "a line written before"
    assert "Listing repositories… 1,200" in shown[1]
    assert screen(during + after) == ["a line written before"]
    assert streams.stdout.getvalue() == '["a result"]\n'


def test_a_known_total_draws_a_bar_and_leaves_only_what_was_there_before(
    terminal: Terminal,
) -> None:
    with stderr_on(terminal) as streams:
        print("a line written before", file=sys.stderr, flush=True)
        with progress("Deploying registries", total=3, delay=QUICK) as step:
            step.describe("Deploying myregistry")
            step.advance(2)
            time.sleep(0.3)
        output = terminal.output(streams.stderr)
    assert "Deploying myregistry…" in output and "2/3" in output and "━" in output
    assert screen(output) == ["a line written before"]
    assert streams.stdout.getvalue() == ""


def test_an_error_leaving_the_block_erases_the_display_too(terminal: Terminal) -> None:
    with stderr_on(terminal) as streams:
        with pytest.raises(RuntimeError), progress("Listing tags", delay=QUICK):
            time.sleep(0.3)
            raise RuntimeError("the registry went away")
        output = terminal.output(streams.stderr)
    assert "Listing tags…" in output
    assert screen(output) == []


@pytest.mark.parametrize("flag", ["only_show_errors", "debug"])
def test_only_show_errors_and_debug_draw_nothing(terminal: Terminal, flag: str) -> None:
    with stderr_on(terminal) as streams, click.Context(click.Command("haven")):
        setattr(invocation(), flag, True)
        with progress("Listing tags", delay=QUICK) as step:
            step.advance(5)
            time.sleep(0.3)
        output = terminal.output(streams.stderr)
    assert output == ""
    assert streams.stdout.getvalue() == ""


def test_an_operation_ending_before_the_delay_draws_nothing(terminal: Terminal) -> None:
    with stderr_on(terminal) as streams:
        with progress("Listing tags") as step:  # the real delay
            step.advance(5)
        time.sleep(progress_module.DELAY_SECONDS + 0.3)  # nor may the timer fire later
        output = terminal.output(streams.stderr)
    assert output == ""
    assert streams.stdout.getvalue() == ""


def test_a_block_inside_another_draws_only_the_outer_one(terminal: Terminal) -> None:
    with stderr_on(terminal) as streams:
        with (
            progress("Deploying registries", total=1, delay=QUICK),
            progress("Listing tags", delay=QUICK),
        ):
            time.sleep(0.3)
        output = terminal.output(streams.stderr)
    assert "Deploying registries…" in output
    assert "Listing tags" not in output


# ------------------------------------------------------------------ real commands


def slow_catalog(pause: float) -> Handler:
    """A catalog of three pages, each answered after `pause` seconds."""

    def catalog(request: Recorded) -> Answer:
        time.sleep(pause)
        last = request.query.get("last", [""])[0]
        following = {"": "a", "a": "b", "b": "c"}[last]
        link = {"Link": f'</acr/v1/_catalog?last={following}&n=100>; rel="next"'}
        return Answer(200, {"repositories": [following]}, link if following != "c" else {})

    return catalog


def test_a_listing_off_a_terminal_writes_only_its_result(
    haven: Haven, registry: FakeHaven, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_module, "DELAY_SECONDS", 0.0)
    registry.route("GET", "/acr/v1/_catalog", slow_catalog(0.2))
    result = haven("repository", "list", "-n", "reg", "-o", "tsv")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "a\nb\nc\n"
    assert result.stderr == ""


def run_with_stderr_on(
    terminal: Terminal, arguments: list[str], home: Path
) -> tuple[int, str, str]:
    """`haven ARGUMENTS` in a subprocess, stderr on `terminal` and stdout on a pipe."""
    process = subprocess.Popen(
        [sys.executable, "-m", "haven", *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal.device,
        env={**os.environ, "HOME": str(home)},
    )
    shown = b""
    while process.poll() is None:
        shown += terminal.read()  # drained as it comes, so the child never blocks on it
    stdout, _ = process.communicate(timeout=60)
    return process.returncode, stdout.decode(), (shown + terminal.read()).decode()


@pytest.mark.parametrize(
    ("flags", "drawn"),
    [([], True), (["-o", "none"], True), (["--only-show-errors"], False), (["--debug"], False)],
)
def test_a_slow_listing_on_a_terminal_counts_on_stderr_only(
    terminal: Terminal, registry: FakeHaven, home: Path, flags: list[str], drawn: bool
) -> None:
    registry.route("GET", "/acr/v1/_catalog", slow_catalog(0.4))
    code, stdout, shown = run_with_stderr_on(
        terminal, ["repository", "list", "-n", "reg", *flags], home
    )
    assert code == 0, shown
    if flags != ["-o", "none"]:
        assert json.loads(stdout) == ["a", "b", "c"]
    else:
        assert stdout == ""
    assert "Listing" not in stdout and "\x1b" not in stdout
    assert ("Listing repositories…" in shown) is drawn
    if flags == ["--only-show-errors"]:
        assert shown == ""
    if flags != ["--debug"]:
        assert screen(shown) == []  # erased: the terminal is left as it was


def test_check_health_on_a_terminal_names_the_slow_check_and_prints_as_before(
    terminal: Terminal, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, script in TOOLS.items():
        install(tools, name, script)
    slow_daemon = TOOLS["docker"].replace('version) echo "27.5.1"', 'version) sleep 1.2; echo ""')
    assert slow_daemon != TOOLS["docker"]
    install(tools, "docker", slow_daemon)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    code, stdout, shown = run_with_stderr_on(terminal, ["check-health"], home)
    assert code == 0, shown
    lines = stdout.splitlines()
    assert "Docker daemon status: available" in lines
    assert "Docker version: 'Docker version 27.5.1, build 9f9e405'" in lines
    assert "\x1b" not in stdout
    assert "Checking the docker daemon…" in shown
    # Erased; only the warnings of an optional tool missing here could remain.
    assert not any("…" in line for line in screen(shown))
