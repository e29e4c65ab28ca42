"""Tasks, their timers, runs and run logs (functions of a connection, for db.read/write).

A run moves Queued → Running → Succeeded | Failed | Canceled | Timeout. The move to
Running is a compare-and-set on the status, so exactly one agent claims a run; the
agent keeps `heartbeat_at` fresh, and a Running run whose heartbeat stops is failed by
any other agent (its process died).
"""

from __future__ import annotations

from dataclasses import dataclass

from haven.store.db import Conn, Row

QUEUED, RUNNING = "Queued", "Running"
SUCCEEDED, FAILED, CANCELED, TIMEOUT = "Succeeded", "Failed", "Canceled", "Timeout"
FINAL = (SUCCEEDED, FAILED, CANCELED, TIMEOUT)
RUN_PREFIX = "ca"
LOG_CHUNK_LIMIT = 256


@dataclass(frozen=True, slots=True)
class Timer:
    name: str
    schedule: str
    enabled: bool
    next_run_at: int | None


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    registry_id: int
    name: str
    definition: str
    timeout: int
    enabled: bool
    created_at: int
    updated_at: int
    timers: tuple[Timer, ...]


@dataclass(frozen=True, slots=True)
class Run:
    id: int
    registry_id: int
    run_id: str
    task_name: str | None
    run_type: str
    trigger: str
    status: str
    definition: str
    timeout: int
    created_at: int
    started_at: int | None
    finished_at: int | None
    error: str | None
    cancel_requested: bool
    agent: str | None
    heartbeat_at: int | None


RUN_COLUMNS = (
    "id, registry_id, run_id, task_name, run_type, trigger, status, definition, timeout, "
    "created_at, started_at, finished_at, error, cancel_requested, agent, heartbeat_at"
)


def _run(row: Row) -> Run:
    return Run(
        int(row[0]),
        int(row[1]),
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        int(row[8]),
        int(row[9]),
        row[10],
        row[11],
        row[12],
        bool(row[13]),
        row[14],
        row[15],
    )


# Tasks --------------------------------------------------------------------------------


def _timers(c: Conn, task_id: int) -> tuple[Timer, ...]:
    rows = c.all(
        "SELECT name, schedule, enabled, next_run_at FROM task_timers "
        "WHERE task_id = ? ORDER BY name",
        task_id,
    )
    return tuple(Timer(r[0], r[1], bool(r[2]), r[3]) for r in rows)


TASK_COLUMNS = "id, registry_id, name, definition, timeout, enabled, created_at, updated_at"


def _task(c: Conn, row: Row) -> Task:
    return Task(
        int(row[0]),
        int(row[1]),
        row[2],
        row[3],
        int(row[4]),
        bool(row[5]),
        int(row[6]),
        int(row[7]),
        _timers(c, int(row[0])),
    )


def task(c: Conn, registry_id: int, name: str) -> Task | None:
    row = c.one(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE registry_id = ? AND name = ?", registry_id, name
    )
    return None if row is None else _task(c, row)


def tasks(c: Conn, registry_id: int) -> list[Task]:
    rows = c.all(
        f"SELECT {TASK_COLUMNS} FROM tasks WHERE registry_id = ? ORDER BY name", registry_id
    )
    return [_task(c, row) for row in rows]


def create_task(
    c: Conn,
    registry_id: int,
    name: str,
    definition: str,
    timeout: int,
    enabled: bool,
    timers: list[Timer],
    now: int,
) -> bool:
    """Create a task; False if the registry already has one of that name."""
    created = c.exec(
        "INSERT INTO tasks (registry_id, name, definition, timeout, enabled, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (registry_id, name) DO NOTHING",
        registry_id,
        name,
        definition,
        timeout,
        int(enabled),
        now,
        now,
    )
    if not created:
        return False
    task_id = int(
        c.value("SELECT id FROM tasks WHERE registry_id = ? AND name = ?", registry_id, name)
    )
    set_timers(c, task_id, timers)
    return True


def update_task(
    c: Conn,
    task_id: int,
    definition: str,
    timeout: int,
    enabled: bool,
    timers: list[Timer],
    now: int,
) -> None:
    c.exec(
        "UPDATE tasks SET definition = ?, timeout = ?, enabled = ?, updated_at = ? WHERE id = ?",
        definition,
        timeout,
        int(enabled),
        now,
        task_id,
    )
    set_timers(c, task_id, timers)


def set_timers(c: Conn, task_id: int, timers: list[Timer]) -> None:
    c.exec("DELETE FROM task_timers WHERE task_id = ?", task_id)
    c.exec_many(
        "INSERT INTO task_timers (task_id, name, schedule, enabled, next_run_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [(task_id, t.name, t.schedule, int(t.enabled), t.next_run_at) for t in timers],
    )


def delete_task(c: Conn, registry_id: int, name: str) -> bool:
    return c.exec("DELETE FROM tasks WHERE registry_id = ? AND name = ?", registry_id, name) > 0


@dataclass(frozen=True, slots=True)
class DueTimer:
    task_id: int
    registry_id: int
    task_name: str
    timer: str
    schedule: str
    next_run_at: int
    definition: str
    timeout: int


def due_timers(c: Conn, now: int, limit: int = 100) -> list[DueTimer]:
    rows = c.all(
        "SELECT t.id, t.registry_id, t.name, tt.name, tt.schedule, tt.next_run_at, t.definition, "
        "t.timeout "
        "FROM task_timers tt JOIN tasks t ON t.id = tt.task_id "
        "WHERE tt.enabled = 1 AND t.enabled = 1 AND tt.next_run_at <= ? "
        "ORDER BY tt.next_run_at LIMIT ?",
        now,
        limit,
    )
    return [
        DueTimer(int(r[0]), int(r[1]), r[2], r[3], r[4], int(r[5]), r[6], int(r[7])) for r in rows
    ]


def advance_timer(c: Conn, due: DueTimer, next_run_at: int | None) -> bool:
    """Move a due timer on, if no other agent has: True for the one that did."""
    return (
        c.exec(
            "UPDATE task_timers SET next_run_at = ? "
            "WHERE task_id = ? AND name = ? AND next_run_at = ?",
            next_run_at,
            due.task_id,
            due.timer,
            due.next_run_at,
        )
        > 0
    )


# Runs ---------------------------------------------------------------------------------


def enqueue(
    c: Conn,
    registry_id: int,
    task_id: int | None,
    task_name: str | None,
    run_type: str,
    trigger: str,
    definition: str,
    timeout: int,
    now: int,
) -> Run:
    c.exec("UPDATE registries SET task_runs_count = task_runs_count + 1 WHERE id = ?", registry_id)
    number = int(c.value("SELECT task_runs_count FROM registries WHERE id = ?", registry_id))
    run_id = f"{RUN_PREFIX}{number}"
    c.exec(
        "INSERT INTO task_runs (registry_id, run_id, task_id, task_name, run_type, trigger, "
        "status, definition, timeout, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        registry_id,
        run_id,
        task_id,
        task_name,
        run_type,
        trigger,
        QUEUED,
        definition,
        timeout,
        now,
    )
    found = run(c, registry_id, run_id)
    assert found is not None
    return found


def run(c: Conn, registry_id: int, run_id: str) -> Run | None:
    row = c.one(
        f"SELECT {RUN_COLUMNS} FROM task_runs WHERE registry_id = ? AND run_id = ?",
        registry_id,
        run_id,
    )
    return None if row is None else _run(row)


def run_by_pk(c: Conn, pk: int) -> Run | None:
    row = c.one(f"SELECT {RUN_COLUMNS} FROM task_runs WHERE id = ?", pk)
    return None if row is None else _run(row)


def runs(
    c: Conn,
    registry_id: int,
    statuses: list[str] | None,
    task_name: str | None,
    top: int,
) -> list[Run]:
    """A registry's runs, newest first."""
    where, args = ["registry_id = ?"], list[object]([registry_id])
    if statuses:
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        args.extend(statuses)
    if task_name is not None:
        where.append("task_name = ?")
        args.append(task_name)
    rows = c.all(
        f"SELECT {RUN_COLUMNS} FROM task_runs WHERE {' AND '.join(where)} "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        *args,
        top,
    )
    return [_run(r) for r in rows]


def queued(c: Conn, limit: int) -> list[int]:
    rows = c.all(
        "SELECT id FROM task_runs WHERE status = ? ORDER BY created_at, id LIMIT ?", QUEUED, limit
    )
    return [int(r[0]) for r in rows]


def claim(c: Conn, pk: int, agent: str, now: int) -> bool:
    return (
        c.exec(
            "UPDATE task_runs SET status = ?, agent = ?, started_at = ?, heartbeat_at = ? "
            "WHERE id = ? AND status = ?",
            RUNNING,
            agent,
            now,
            now,
            pk,
            QUEUED,
        )
        > 0
    )


def heartbeat(c: Conn, pks: list[int], agent: str, now: int) -> list[int]:
    """Refresh the agent's runs; return those whose cancellation was asked for."""
    if not pks:
        return []
    marks = ", ".join("?" * len(pks))
    c.exec(
        f"UPDATE task_runs SET heartbeat_at = ? WHERE agent = ? AND id IN ({marks})",
        now,
        agent,
        *pks,
    )
    rows = c.all(f"SELECT id FROM task_runs WHERE cancel_requested = 1 AND id IN ({marks})", *pks)
    return [int(r[0]) for r in rows]


def finish(c: Conn, pk: int, status: str, error: str | None, now: int) -> bool:
    return (
        c.exec(
            "UPDATE task_runs SET status = ?, error = ?, finished_at = ? "
            "WHERE id = ? AND status IN (?, ?)",
            status,
            error[:1000] if error else None,
            now,
            pk,
            QUEUED,
            RUNNING,
        )
        > 0
    )


def cancel(c: Conn, pk: int, now: int) -> str | None:
    """Cancel a run: a queued one at once, a running one by asking its agent (which
    stops its step and records Canceled). Returns the status the run now has."""
    c.exec(
        "UPDATE task_runs SET status = ?, finished_at = ? WHERE id = ? AND status = ?",
        CANCELED,
        now,
        pk,
        QUEUED,
    )
    c.exec("UPDATE task_runs SET cancel_requested = 1 WHERE id = ? AND status = ?", pk, RUNNING)
    value = c.value("SELECT status FROM task_runs WHERE id = ?", pk)
    return None if value is None else str(value)


def abandoned(c: Conn, stale_before: int, limit: int = 100) -> list[int]:
    """Running runs whose agent has stopped sending heartbeats."""
    rows = c.all(
        "SELECT id FROM task_runs WHERE status = ? AND heartbeat_at < ? LIMIT ?",
        RUNNING,
        stale_before,
        limit,
    )
    return [int(r[0]) for r in rows]


def append_log(c: Conn, pk: int, seq: int, data: str) -> None:
    c.exec("INSERT INTO task_run_logs (run_pk, seq, data) VALUES (?, ?, ?)", pk, seq, data)


def log_chunks(c: Conn, pk: int, after_seq: int) -> list[tuple[int, str]]:
    rows = c.all(
        "SELECT seq, data FROM task_run_logs WHERE run_pk = ? AND seq > ? ORDER BY seq LIMIT ?",
        pk,
        after_seq,
        LOG_CHUNK_LIMIT,
    )
    return [(int(r[0]), r[1]) for r in rows]
