"""Fixtures shared by every test layer."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "HAVEN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _postgres_url_with_db(name: str) -> str:
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def _new_database() -> Iterator[str]:
    import psycopg

    name = f"haven_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _postgres_url_with_db(name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards.

    The machine's PostgreSQL is a hard requirement: a test run that cannot reach it fails
    rather than skipping, so the PostgreSQL half of the suite is never silently lost.
    """
    with _new_database() as url:
        yield url


@pytest.fixture
def own_postgres_database() -> Iterator[str]:
    """An empty PostgreSQL database for one test (a server that keeps its own secret key
    cannot share a database whose secrets another deployment sealed)."""
    with _new_database() as url:
        yield url
