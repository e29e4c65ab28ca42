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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_usage_migration_counts_what_was_stored_before_it(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Revision 0004 fills in each registry's usage from the manifests already there: a
    manifest in two repositories and a layer in two manifests count once."""
    from alembic import command

    from haven.store.migrate import alembic_config

    url = request.getfixturevalue("own_postgres_database") if backend == "postgresql" else None
    settings = Settings(data_dir=tmp_path, database_url=url)
    command.upgrade(alembic_config(settings.effective_database_url), "0003")
    engine = create_engine(sqlalchemy_url(settings.effective_database_url), poolclass=pool.NullPool)
    with engine.begin() as conn:
        for statement in (
            "INSERT INTO registries (id, name, created_at) "
            "VALUES (1, 'default', 0), (2, 'other', 0)",
            "INSERT INTO repositories (id, registry_id, name, created_at) "
            "VALUES (1, 1, 'a', 0), (2, 1, 'b', 0), (3, 2, 'c', 0)",
            "INSERT INTO blobs (digest, size, created_at) "
            "VALUES ('sha256:l1', 100, 0), ('sha256:l2', 50, 0)",
            "INSERT INTO manifests (id, repository_id, digest, media_type, size, payload, "
            "created_at) VALUES (1, 1, 'sha256:m1', 'x', 10, 'x', 0), "
            "(2, 2, 'sha256:m1', 'x', 10, 'x', 0), (3, 2, 'sha256:m2', 'x', 7, 'x', 0), "
            "(4, 3, 'sha256:m1', 'x', 10, 'x', 0)",
            "INSERT INTO manifest_references (manifest_id, kind, digest) VALUES "
            "(1, 0, 'sha256:l1'), (2, 0, 'sha256:l1'), (3, 0, 'sha256:l2'), (3, 1, 'sha256:m1'), "
            "(4, 0, 'sha256:l1')",
        ):
            conn.exec_driver_sql(statement)
    upgrade(settings)
    with engine.connect() as conn:
        used = conn.exec_driver_sql("SELECT id, used_bytes FROM registries ORDER BY id").all()
        refs = conn.exec_driver_sql(
            "SELECT registry_id, digest, refs FROM registry_content ORDER BY registry_id, digest"
        ).all()
    engine.dispose()
    assert [tuple(r) for r in used] == [(1, 100 + 50 + 10 + 7), (2, 100 + 10)]
    assert sorted(tuple(r) for r in refs) == [
        (1, "sha256:l1", 2),
        (1, "sha256:l2", 1),
        (1, "sha256:m1", 2),
        (1, "sha256:m2", 1),
        (2, "sha256:l1", 1),
        (2, "sha256:m1", 1),
    ]
