"""Metadata I/O on a pool of threads, one DB-API connection each.

SQLite (the embedded default) and PostgreSQL (scale-out) run the same SQL: statements
are written with `?` placeholders and translated once for psycopg. Every piece of
metadata work is a plain function of a `Conn`, run in a worker thread, so the event
loop never waits on the database and a multi-statement operation costs one thread hop.

Durability: SQLite runs in WAL mode with `synchronous=FULL`, so a committed transaction
is on disk when `write` returns; PostgreSQL commits are durable by default.

Caches: a write bumps the content change counter (`epoch.py`) after it commits, unless
its caller says it cannot change what a manifest read answers (blob links, uploads).
Forgetting to say so costs a cache refill, never a stale answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from haven.epoch import ChangeCounter

T = TypeVar("T")
Row = Sequence[Any]

POSTGRES_RETRIES = 3


@lru_cache(maxsize=512)
def _to_psycopg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Conn:
    """One connection, as the metadata code sees it: a few query helpers."""

    def __init__(self, raw: Any, postgres: bool) -> None:
        self._raw = raw
        self._postgres = postgres

    @property
    def postgres(self) -> bool:
        """Whether this is PostgreSQL (for the few statements that differ, such as row
        locks; SQLite's write transactions are serialised as a whole)."""
        return self._postgres

    def _execute(self, sql: str, args: Sequence[Any]) -> Any:
        if self._postgres:
            return self._raw.execute(_to_psycopg(sql), args, prepare=True)
        return self._raw.execute(sql, args)

    def one(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = self._execute(sql, args).fetchone()
        return row

    def all(self, sql: str, *args: Any) -> list[Row]:
        return list(self._execute(sql, args).fetchall())

    def value(self, sql: str, *args: Any) -> Any:
        row = self.one(sql, *args)
        return None if row is None else row[0]

    def exec(self, sql: str, *args: Any) -> int:
        """Run a statement; returns the number of rows it changed."""
        cursor = self._execute(sql, args)
        return int(cursor.rowcount)

    def exec_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._postgres:
            with self._raw.cursor() as cursor:
                cursor.executemany(_to_psycopg(sql), rows)
        else:
            self._raw.executemany(sql, rows)


class Database:
    """Runs functions of a `Conn` in worker threads, as reads or as transactions."""

    def __init__(self, url: str, threads: int = 8, changes: ChangeCounter | None = None) -> None:
        self.url = url
        self.changes = changes
        self.postgres = url.startswith(("postgresql:", "postgres:"))
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="haven-db")

    # Connections -----------------------------------------------------------------

    def _connect(self) -> Any:
        raw: Any
        if self.postgres:
            import psycopg

            raw = psycopg.connect(self.url, autocommit=True)
        else:
            raw = sqlite3.connect(
                sqlite_path(self.url), isolation_level=None, check_same_thread=False, timeout=60
            )
            raw.execute("PRAGMA busy_timeout = 60000")
            raw.execute("PRAGMA journal_mode = WAL")
            raw.execute("PRAGMA synchronous = FULL")
            raw.execute("PRAGMA foreign_keys = ON")
        with self._lock:
            self._connections.append(raw)
        return raw

    def _conn(self) -> Conn:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is not None and self.postgres and (conn._raw.closed or conn._raw.broken):
            conn = None
        if conn is None:
            conn = Conn(self._connect(), self.postgres)
            self._local.conn = conn
        return conn

    # Running work ----------------------------------------------------------------

    def _read(self, fn: Callable[[Conn], T]) -> T:
        return fn(self._conn())

    def _write(self, fn: Callable[[Conn], T], content: bool = True) -> T:
        conn = self._conn()
        raw = conn._raw
        if self.postgres:
            result = self._postgres_transaction(conn, fn)
        else:
            raw.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                raw.execute("ROLLBACK")
                raise
            raw.execute("COMMIT")
        if content and self.changes is not None:
            self.changes.bump()
        return result

    @staticmethod
    def _postgres_transaction(conn: Conn, fn: Callable[[Conn], T]) -> T:
        """Run `fn` in a transaction; one that PostgreSQL aborts as a deadlock victim is
        run again (every `fn` is a plain function of the connection, safe to repeat)."""
        import psycopg

        for attempt in range(POSTGRES_RETRIES):
            try:
                with conn._raw.transaction():
                    return fn(conn)
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == POSTGRES_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[Conn], T]) -> T:
        """Run `fn` outside a transaction: each statement sees the latest commit."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._read, fn)

    async def write(self, fn: Callable[[Conn], T], *, content: bool = True) -> T:
        """Run `fn` in one transaction, committed (durably) before this returns.

        `content=False` declares that the write leaves every manifest, tag and
        repository attribute as it was, so content caches stay valid.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._write, fn, content)

    def write_sync(self, fn: Callable[[Conn], T]) -> T:
        return self._write(fn)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._lock:
            for raw in self._connections:
                with contextlib.suppress(Exception):
                    raw.close()
            self._connections.clear()


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///path` URL."""
    return url[len("sqlite:///") :]


def sqlalchemy_url(url: str) -> str:
    """The SQLAlchemy spelling of a database URL (psycopg 3 for PostgreSQL)."""
    return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)


def ensure_parent(url: str) -> None:
    if url.startswith("sqlite:"):
        Path(sqlite_path(url)).parent.mkdir(parents=True, exist_ok=True)
