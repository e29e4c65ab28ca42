"""Two workers of one deployment (two apps on one data directory and database): a
manifest that one worker has read, and keeps in its cache, changes for the other at once
when a tag moves, a lock is set, or a tag, manifest or repository is deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from haven.config import Settings
from haven.web.app import create_app

from .helpers import OWNER_PASSWORD, app_client, assert_oci_error, make_image, push_image


@pytest.fixture
async def other_worker(app: object, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    second = create_app(settings)
    await second.startup()
    try:
        async with app_client(second, auth=("owner", OWNER_PASSWORD)) as c:
            yield c
    finally:
        await second.shutdown()


async def _digest(c: httpx.AsyncClient, path: str) -> str:
    resp = await c.get(path)
    assert resp.status_code == 200, resp.text
    return resp.headers["Docker-Content-Digest"]


async def test_a_moved_tag_is_seen_by_the_other_worker(
    client: httpx.AsyncClient, other_worker: httpx.AsyncClient
) -> None:
    first, second = make_image("cache-1"), make_image("cache-2")
    await push_image(client, "cached/app", first, "v1")
    for _ in range(2):  # the second read is a cache hit
        assert await _digest(other_worker, "/v2/cached/app/manifests/v1") == first.digest
    await push_image(client, "cached/app", second, "v1")
    assert await _digest(other_worker, "/v2/cached/app/manifests/v1") == second.digest
    head = await other_worker.head("/v2/cached/app/manifests/v1")
    assert head.headers["Docker-Content-Digest"] == second.digest


async def test_a_read_lock_applies_in_the_other_worker_at_once(
    client: httpx.AsyncClient, other_worker: httpx.AsyncClient
) -> None:
    image = make_image("cache-lock")
    await push_image(client, "cached/locked", image, "v1")
    path = "/v2/cached/locked/manifests/v1"
    assert await _digest(other_worker, path) == image.digest
    locked = await client.patch("/acr/v1/cached/locked/_tags/v1", json={"readEnabled": False})
    assert locked.status_code == 200, locked.text
    assert_oci_error(await other_worker.get(path), 403, "DENIED")
    await client.patch("/acr/v1/cached/locked/_tags/v1", json={"readEnabled": True})
    assert await _digest(other_worker, path) == image.digest


async def test_deletes_apply_in_the_other_worker_at_once(
    client: httpx.AsyncClient, other_worker: httpx.AsyncClient
) -> None:
    image = make_image("cache-delete")
    await push_image(client, "cached/gone", image, "v1")
    by_tag, by_digest = "/v2/cached/gone/manifests/v1", f"/v2/cached/gone/manifests/{image.digest}"
    assert await _digest(other_worker, by_tag) == image.digest
    assert await _digest(other_worker, by_digest) == image.digest

    assert (await client.delete(by_tag)).status_code == 202
    assert_oci_error(await other_worker.get(by_tag), 404, "MANIFEST_UNKNOWN")
    assert await _digest(other_worker, by_digest) == image.digest

    assert (await client.delete(by_digest)).status_code == 202
    assert_oci_error(await other_worker.get(by_digest), 404, "MANIFEST_UNKNOWN")

    await push_image(client, "cached/gone", image, "v2")
    assert await _digest(other_worker, "/v2/cached/gone/manifests/v2") == image.digest
    assert (await client.delete("/acr/v1/cached/gone")).status_code in (200, 202)
    assert (await other_worker.get("/v2/cached/gone/manifests/v2")).status_code == 404
