"""Schema migrations, applied by `haven serve` before any worker starts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text

from haven.config import Settings
from haven.store.db import ensure_parent, sqlalchemy_url
from haven.store.schema import metadata

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# The PostgreSQL advisory lock that nodes starting at once take turns on.
PREPARE_LOCK = 0x68617665_6E000001


@contextlib.contextmanager
def nodes_in_turn(database_url: str) -> Iterator[None]:
    """Hold the deployment's preparation lock for the block (PostgreSQL only).

    Nodes that start together against one PostgreSQL database would otherwise run the
    same migrations at once, and all but one fail on the tables the first created. With
    the lock, the first migrates and creates what a deployment needs while the others
    wait; they then find the work done. The lock goes with its connection, so a node
    killed while holding it does not block the others. SQLite needs nothing: one
    machine's `haven serve` prepares before its workers start.
    """
    if database_url.startswith("sqlite:"):
        yield
        return
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (PREPARE_LOCK,))
        yield


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    """Bring the metadata database to the newest schema (creating it on first start)."""
    url = settings.effective_database_url
    ensure_parent(url)
    if url.startswith("sqlite:"):
        # WAL is a property of the database file: set it once, before anyone writes.
        engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        engine.dispose()
    command.upgrade(alembic_config(url), "head")


def reset_for_tests(settings: Settings) -> None:
    """Empty every table (tests share one PostgreSQL database per session)."""
    engine = create_engine(sqlalchemy_url(settings.effective_database_url), poolclass=pool.NullPool)
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(text(f"DELETE FROM {table.name}"))
    engine.dispose()
