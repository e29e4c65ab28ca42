"""The Alembic migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from haven.config import Settings
from haven.store.db import sqlalchemy_url
from haven.store.migrate import upgrade
from haven.store.schema import metadata


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_match_the_declared_schema(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else None
    settings = Settings(data_dir=tmp_path, database_url=url)
    upgrade(settings)
    upgrade(settings)  # a second start finds nothing to do
    engine = create_engine(sqlalchemy_url(settings.effective_database_url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []
