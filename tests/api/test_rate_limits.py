"""Rate limits answer 429 TOOMANYREQUESTS with Retry-After, per principal and address."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from haven.config import Settings
from haven.store.migrate import reset_for_tests, upgrade
from haven.web.app import HavenApp, create_app

from .helpers import OWNER_PASSWORD, app_client


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[HavenApp]:
    limited_settings = settings.model_copy(
        update={"rate_limit_principal": 1.0, "rate_limit_anonymous": 1.0, "workers": 1}
    )
    upgrade(limited_settings)
    reset_for_tests(limited_settings)
    application = create_app(limited_settings)
    await application.startup()
    try:
        yield application
    finally:
        await application.shutdown()


def _client(app: HavenApp, auth: tuple[str, str] | None) -> httpx.AsyncClient:
    return app_client(app, auth=auth)


async def test_a_principal_over_its_rate_gets_429_with_retry_after(limited: HavenApp) -> None:
    async with _client(limited, ("owner", OWNER_PASSWORD)) as client:
        statuses = [(await client.get("/v2/_catalog")).status_code for _ in range(4)]
        assert statuses[:2] == [200, 200]
        refused = await client.get("/v2/_catalog")
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert int(refused.headers["retry-after"]) >= 1


async def test_anonymous_callers_are_limited_per_address(limited: HavenApp) -> None:
    async with _client(limited, None) as client:
        statuses = [(await client.get("/v2/")).status_code for _ in range(5)]
    assert statuses[:2] == [401, 401]
    assert 429 in statuses
