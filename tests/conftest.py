"""Fixtures shared by every test layer."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

import object_stores
from object_stores import Azurite, S3Server, ServerUnavailable

T = TypeVar("T")

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the runs of a suite parametrised over the stores (a `stores` parameter of
    (metadata store, content store)) that a test's `content_stores` mark leaves out: a test
    of what only the filesystem store has (its files on disk) runs only over it."""
    kept, dropped = [], []
    for item in items:
        mark = item.get_closest_marker("content_stores")
        callspec = getattr(item, "callspec", None)
        pair = callspec.params.get("stores") if callspec is not None else None
        if mark is not None and pair is not None and pair[1] not in mark.args:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards.

    The machine's PostgreSQL is a hard requirement: a test run that cannot reach it fails
    rather than skipping, so the PostgreSQL half of the suite is never silently lost.
    """
    with _new_database() as url:
        yield url


@pytest.fixture(scope="session")
def new_postgres_database() -> Iterator[Callable[[], str]]:
    """Make empty PostgreSQL databases for session-long servers; all dropped at the end."""
    with contextlib.ExitStack() as made:
        yield lambda: made.enter_context(_new_database())


@pytest.fixture
def own_postgres_database() -> Iterator[str]:
    """An empty PostgreSQL database for one test (a server that keeps its own secret key
    cannot share a database whose secrets another deployment sealed)."""
    with _new_database() as url:
        yield url


# --------------------------------------------------------------------------- object stores


def _serve(
    server: Callable[[Path], contextlib.AbstractContextManager[T]], location: Path
) -> Iterator[T]:
    failure = None
    try:
        with server(location) as running:
            yield running
    except ServerUnavailable as error:
        failure = str(error)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """Azurite for the session. Like PostgreSQL, a hard requirement: a run without it
    fails, naming the install step, rather than skipping the Azure half of the suite."""
    yield from _serve(object_stores.azurite, tmp_path_factory.mktemp("azurite"))


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A one-node Ceph cluster with its S3 gateway for the session (a hard requirement)."""
    yield from _serve(object_stores.radosgw, tmp_path_factory.mktemp("radosgw"))


@pytest.fixture
def container_url(azurite: Azurite) -> str:
    """An `azure://` URL for a container of its own (created by the first store)."""
    return azurite.url(f"t{uuid.uuid4().hex[:20]}")


@pytest.fixture
def bucket_url(rgw: S3Server) -> str:
    """An `s3://` URL for a bucket of its own (created by the first store)."""
    return rgw.url(f"haven-{uuid.uuid4().hex[:12]}", "registry/one")
