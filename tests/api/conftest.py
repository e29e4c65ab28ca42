"""The ASGI app in-process over httpx, once per deployment's stores.

Every test in tests/api runs on each metadata store (SQLite, PostgreSQL) and each content
store (the filesystem, Azure Blob on Azurite, S3 on Ceph's RADOS Gateway): the `stores`
fixture is parametrised over the pairs in STORES, and each test gets an empty registry
and an empty container or bucket. Downloads from an object store answer with a redirect
to a signed URL, which the clients follow to the store itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from haven.config import Settings
from haven.web.app import create_app

from .helpers import OWNER_PASSWORD, app_client

# (metadata store, content store): every store is in at least one pair, and each metadata
# store is paired with the filesystem, the embedded default's and a shared volume's store.
STORES = [
    ("sqlite", "file"),
    ("postgresql", "file"),
    ("postgresql", "azure"),
    ("sqlite", "s3"),
]


@pytest.fixture(params=STORES, ids=["-".join(pair) for pair in STORES])
def stores(request: pytest.FixtureRequest) -> tuple[str, str]:
    metadata, content = request.param
    return str(metadata), str(content)


@pytest.fixture
def backend(stores: tuple[str, str]) -> str:
    """The metadata store: "sqlite" or "postgresql"."""
    return stores[0]


@pytest.fixture
def content_store(stores: tuple[str, str]) -> str:
    """The content store: "file", "azure" or "s3"."""
    return stores[1]


def store_settings(
    request: pytest.FixtureRequest, stores: tuple[str, str], tmp_path: Path, **overrides: Any
) -> Settings:
    """Settings of an empty deployment on `stores` (the `stores` fixture's pair), with the
    deployment owner's password set; `overrides` are further settings.

    A `settings` fixture must take `stores` as an argument, so that pytest parametrises
    its tests over the pairs."""
    metadata, content = stores
    url = request.getfixturevalue("postgres_database") if metadata == "postgresql" else None
    storage = {"file": None, "azure": "container_url", "s3": "bucket_url"}[content]
    return Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        storage=request.getfixturevalue(storage) if storage else None,
        bootstrap_password=OWNER_PASSWORD,
        **overrides,
    )


@pytest.fixture
def settings(stores: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return store_settings(request, stores, tmp_path)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    from haven.store.migrate import reset_for_tests, upgrade

    upgrade(settings)
    reset_for_tests(settings)
    application = create_app(settings)
    await application.startup()
    try:
        yield application
    finally:
        await application.shutdown()


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as the deployment owner (HTTP Basic on every request)."""
    async with app_client(app, auth=("owner", OWNER_PASSWORD)) as c:
        yield c


@pytest.fixture
async def anonymous(app: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no credentials."""
    async with app_client(app) as c:
        yield c


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Any:
    """One movable clock (`clock.offset_ms`) for what stamps and reads times: pushes and
    tag changes, policies, purge and garbage collection."""
    from haven.services import gc, purge, tasks
    from haven.store import metadata, repositories
    from haven.tasks import agent

    class Clock:
        offset_ms = 0

        def __call__(self) -> int:
            return int(time.time() * 1000) + self.offset_ms

    now = Clock()
    for module in (metadata, repositories, purge, gc, tasks, agent):
        monkeypatch.setattr(module, "now_ms", now)
    return now
