"""The task agent: each server process runs one, taking queued runs from the database.

- Claiming a run is a compare-and-set (Queued → Running), so each run has one agent, on
  whichever node claimed it; up to `concurrency` runs at a time per process.
- While it runs them, the agent refreshes their heartbeats twice a second and learns of
  cancellations from the same query; a canceled run's steps are stopped (their process
  groups terminated) and the run is recorded Canceled.
- A run that outlives its timeout is stopped and recorded Timeout.
- A Running run whose heartbeat is older than `stale_after_ms` belonged to a process that
  died: any agent records it Failed.
- Due cron timers enqueue runs; moving a timer on is a compare-and-set too, so one
  agent of the deployment fires it.
- Logs are written to the database in chunks, four times a second, so `haven task logs`
  follows a run from any node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from haven.store import tasks as store
from haven.store.db import Conn, Database
from haven.store.metadata import now_ms
from haven.tasks import cron
from haven.tasks.definition import DefinitionError, parse, render
from haven.tasks.runner import RunTarget, TaskRunner, host_architecture

log = logging.getLogger("haven.tasks")

MAX_LOG_BYTES = 8 * 1024 * 1024
LOG_FLUSH_SECONDS = 0.25


def run_variables(run_id: str, registry_name: str, login_server: str, at_ms: int) -> dict[str, str]:
    moment = datetime.fromtimestamp(at_ms / 1000, UTC)
    return {
        "ID": run_id,
        "Registry": login_server,
        "RegistryName": registry_name,
        "Date": moment.strftime("%Y%m%d-%H%M%Sz"),
        "OS": "linux",
        "Architecture": host_architecture(),
    }


def stored_definition(source: str, values: dict[str, str]) -> str:
    """What a run keeps: the task's template and the values it is rendered with."""
    return json.dumps({"source": source, "values": values})


@dataclass(frozen=True, slots=True)
class RegistryTarget:
    name: str
    login_servers: tuple[str, ...]


def registry_target(c: Conn, registry_id: int) -> RegistryTarget | None:
    name = c.value("SELECT name FROM registries WHERE id = ?", registry_id)
    if name is None:
        return None
    hosts = c.all("SELECT host FROM login_servers WHERE registry_id = ? ORDER BY host", registry_id)
    return RegistryTarget(str(name), tuple(str(h[0]).lower() for h in hosts))


class _LogBuffer:
    """A run's output, gathered between flushes and capped in size."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.written = 0
        self.truncated = False
        self.seq = 0

    def write(self, text: str) -> None:
        if self.truncated:
            return
        size = len(text.encode())
        if self.written + size > MAX_LOG_BYTES:
            self.truncated = True
            text = f"\n[the log is longer than {MAX_LOG_BYTES} bytes; the rest is not kept]\n"
            size = len(text.encode())
        self.written += size
        self.pending.append(text)

    def take(self) -> str:
        text = "".join(self.pending)
        self.pending.clear()
        return text


class TaskAgent:
    def __init__(
        self,
        db: Database,
        runner: TaskRunner,
        work_root: Path,
        primary_login_server: Callable[[str], str],
        concurrency: int = 2,
        poll_seconds: float = 0.5,
        stale_after_ms: int = 30_000,
    ) -> None:
        self._db = db
        self._runner = runner
        self._work_root = work_root
        self._primary = primary_login_server
        self._concurrency = concurrency
        self._poll = poll_seconds
        self._stale_after_ms = stale_after_ms
        # Also the name of its scratch directory (no ':', which buildah's oci: reads).
        self.name = f"{_host()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._active: dict[int, asyncio.Task[None]] = {}
        self._canceled: set[int] = set()

    async def run_forever(self) -> None:
        await asyncio.to_thread(_remove_leftovers, self._work_root)
        last_sweep = 0.0
        try:
            while True:
                try:
                    await self._claim()
                    await self._heartbeat()
                    if time.monotonic() - last_sweep > 5 * self._poll:
                        last_sweep = time.monotonic()
                        await self._fire_timers()
                        await self._fail_abandoned()
                except Exception:  # the database may be back on the next round
                    log.exception("task agent round failed")
                await asyncio.sleep(self._poll)
        finally:
            await self._stop_all()

    # Claiming, heartbeats, cancellation ----------------------------------------------

    async def _claim(self) -> None:
        free = self._concurrency - len(self._active)
        if free <= 0:
            return
        for pk in await self._db.read(lambda c: store.queued(c, free)):
            now = now_ms()
            claimed = await self._db.write(
                partial(store.claim, pk=pk, agent=self.name, now=now), content=False
            )
            if claimed:
                self._active[pk] = asyncio.create_task(self._execute(pk))

    async def _heartbeat(self) -> None:
        pks = list(self._active)
        if not pks:
            return
        now = now_ms()
        for pk in await self._db.write(
            lambda c: store.heartbeat(c, pks, self.name, now), content=False
        ):
            active = self._active.get(pk)
            if active is not None and pk not in self._canceled:
                self._canceled.add(pk)
                active.cancel()

    async def _fail_abandoned(self) -> None:
        now = now_ms()
        stale = now - self._stale_after_ms
        for pk in await self._db.read(lambda c: store.abandoned(c, stale)):
            if pk in self._active:
                continue
            lost = "the server process running it stopped"
            await self._db.write(
                partial(store.finish, pk=pk, status=store.FAILED, error=lost, now=now),
                content=False,
            )

    async def _fire_timers(self) -> None:
        now = now_ms()
        for due in await self._db.read(lambda c: store.due_timers(c, now)):
            try:
                following = cron.parse(due.schedule).next_after_ms(now)
            except cron.CronError:  # stored only after parsing: cannot happen
                following = None

            def fire(c: Conn, due: store.DueTimer = due, following: int | None = following) -> None:
                if store.advance_timer(c, due, following):
                    store.enqueue(
                        c,
                        due.registry_id,
                        due.task_id,
                        due.task_name,
                        "AutoRun",
                        "Timer",
                        stored_definition(due.definition, {}),
                        due.timeout,
                        now,
                    )

            await self._db.write(fire, content=False)

    async def _stop_all(self) -> None:
        """On shutdown, stop this process's runs and record them Failed."""
        runs = dict(self._active)
        for task in runs.values():
            task.cancel()
        await asyncio.gather(*runs.values(), return_exceptions=True)

    # Running one ---------------------------------------------------------------------

    async def _execute(self, pk: int) -> None:
        buffer = _LogBuffer()
        flusher = asyncio.create_task(self._flush_forever(pk, buffer))
        status, error = store.FAILED, "the run stopped unexpectedly"
        try:
            status, error = await self._run(pk, buffer)
        except asyncio.CancelledError:
            if pk in self._canceled:
                status, error = store.CANCELED, ""
                buffer.write("Run canceled\n")
            else:
                status, error = store.FAILED, "the server stopped while the run was running"
                buffer.write("The server stopped; the run did not finish\n")
        except Exception as exc:  # a run fails; the agent goes on
            log.exception("task run %s failed", pk)
            status, error = store.FAILED, f"internal error: {exc}"
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await self._flush(pk, buffer)
            now = now_ms()
            await self._db.write(
                lambda c: store.finish(c, pk, status, error or None, now), content=False
            )
            self._active.pop(pk, None)
            self._canceled.discard(pk)

    async def _run(self, pk: int, buffer: _LogBuffer) -> tuple[str, str]:
        run = await self._db.read(lambda c: store.run_by_pk(c, pk))
        target = await self._db.read(lambda c: registry_target(c, run.registry_id) if run else None)
        if run is None or target is None:
            return store.FAILED, "the run's registry no longer exists"
        stored = json.loads(run.definition)
        primary = self._primary(target.name)
        variables = run_variables(run.run_id, target.name, primary, run.created_at)
        try:
            definition = parse(render(stored["source"], variables, stored["values"]))
        except DefinitionError as exc:
            buffer.write(f"The task definition is invalid: {exc}\n")
            return store.FAILED, str(exc)
        buffer.write(
            f"Run {run.run_id} of registry {target.name} started "
            f"({len(definition.steps)} step(s), timeout {run.timeout} s)\n"
        )
        runner_target = RunTarget(
            run.registry_id,
            target.name,
            tuple({primary.lower(), *target.login_servers}),
            self._work_root / self.name / f"run-{pk}",
        )
        started = time.monotonic()
        try:
            async with asyncio.timeout(run.timeout):
                status, error = await self._runner.run(runner_target, definition, buffer.write)
        except TimeoutError:
            buffer.write(f"Run timed out after {run.timeout} s\n")
            return store.TIMEOUT, f"the run timed out after {run.timeout} s"
        elapsed = time.monotonic() - started
        word = {store.SUCCEEDED: "succeeded", store.TIMEOUT: "timed out"}.get(status, "failed")
        buffer.write(f"Run {run.run_id} {word} after {elapsed:.1f} s\n")
        return status, error

    async def _flush(self, pk: int, buffer: _LogBuffer) -> None:
        text = buffer.take()
        if not text:
            return
        buffer.seq += 1
        seq = buffer.seq
        await self._db.write(lambda c: store.append_log(c, pk, seq, text), content=False)

    async def _flush_forever(self, pk: int, buffer: _LogBuffer) -> None:
        while True:
            await asyncio.sleep(LOG_FLUSH_SECONDS)
            await self._flush(pk, buffer)


def _remove_leftovers(work_root: Path) -> None:
    """Scratch space of agents of this host whose process has died (a crash or kill)."""
    if not work_root.is_dir():
        return
    for entry in work_root.iterdir():
        owner_host, _, pid = entry.name.rpartition("_")[0].rpartition("_")
        if owner_host == _host() and pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(entry, ignore_errors=True)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())
