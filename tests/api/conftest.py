"""The ASGI app in-process over httpx, once per metadata backend.

Every test in tests/api runs against SQLite and against PostgreSQL: the `backend`
fixture is parametrised, and each test gets an empty registry.
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

from .helpers import OWNER_PASSWORD


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    url = request.getfixturevalue("postgres_database") if backend == "postgresql" else None
    return Settings(data_dir=tmp_path / "data", database_url=url, bootstrap_password=OWNER_PASSWORD)


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
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://localhost:5000",
        timeout=60,
        auth=("owner", OWNER_PASSWORD),
    ) as c:
        yield c


@pytest.fixture
async def anonymous(app: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no credentials."""
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url="http://localhost:5000", timeout=60
    ) as c:
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
