"""Schema migrations, applied by `haven serve` before any worker starts."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text

from haven.config import Settings
from haven.store.db import ensure_parent, sqlalchemy_url
from haven.store.schema import metadata

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


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
