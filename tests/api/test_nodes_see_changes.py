"""Two nodes of one deployment: separate data directories (so no shared change counters),
one PostgreSQL database. What one node changes, the other sees within moments, though it
has the old answer cached: PostgreSQL notifications carry every change across."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import psycopg
import pytest

from haven.config import Settings
from haven.services.uploads import UploadService
from haven.web.app import HavenApp, create_app

from .access_helpers import enable_admin
from .conftest import STORES
from .helpers import (
    MIB,
    OWNER_PASSWORD,
    app_client,
    blob_bytes,
    location_path,
    make_image,
    push_chunk,
    push_image,
    sha256,
    with_digest,
)

SEEN_WITHIN = 2.0


# Nodes share a PostgreSQL database (and a content store: a shared volume or an object store).
NODE_STORES = [pair for pair in STORES if pair[0] == "postgresql"]


@pytest.fixture(params=NODE_STORES, ids=["-".join(pair) for pair in NODE_STORES])
def stores(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def node_b(app: HavenApp, settings: Settings, tmp_path: Path) -> AsyncIterator[HavenApp]:
    key = (settings.data_dir / "secret.key").read_text().strip()
    # The nodes share the content store: the object store, or node A's data directory as a
    # shared volume would be.
    storage = settings.storage or f"file://{settings.data_dir}"
    update = {"data_dir": tmp_path / "node-b", "secret_key": key, "storage": storage}
    other = settings.model_copy(update=update)
    second = create_app(other)
    await second.startup()
    assert second._feed is not None and app._feed is not None
    for feed in (app._feed, second._feed):
        assert await asyncio.to_thread(feed.connected.wait, 10)
    try:
        yield second
    finally:
        await second.shutdown()


@pytest.fixture
async def via_b(node_b: HavenApp) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(node_b, auth=("owner", OWNER_PASSWORD)) as c:
        yield c


async def eventually(check: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until `check` holds; fails after SEEN_WITHIN."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < SEEN_WITHIN, "the other node never saw it"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def digest_of(c: httpx.AsyncClient, path: str) -> str | None:
    resp = await c.get(path)
    return resp.headers.get("Docker-Content-Digest") if resp.status_code == 200 else None


async def test_a_tag_moved_on_one_node_is_seen_on_the_other(
    client: httpx.AsyncClient, via_b: httpx.AsyncClient
) -> None:
    first, second = make_image("node-1"), make_image("node-2")
    await push_image(client, "nodes/app", first, "v1")
    path = "/v2/nodes/app/manifests/v1"
    for _ in range(2):  # cached on node B
        assert await digest_of(via_b, path) == first.digest
    await push_image(client, "nodes/app", second, "v1")

    async def moved() -> bool:
        return await digest_of(via_b, path) == second.digest

    assert await eventually(moved) < SEEN_WITHIN
    assert (await client.delete(path)).status_code == 202

    async def gone() -> bool:
        return (await via_b.get(path)).status_code == 404

    await eventually(gone)


async def test_an_access_change_on_one_node_applies_on_the_other(
    client: httpx.AsyncClient, via_b: httpx.AsyncClient
) -> None:
    passwords = await enable_admin(client)
    await push_image(client, "nodes/admin", make_image("node-admin"), "v1")
    admin = ("default", passwords["password"])
    path = "/v2/nodes/admin/manifests/v1"
    for _ in range(2):  # admitted, and the admission cached on node B
        assert (await via_b.get(path, auth=admin)).status_code == 200
    resp = await client.patch("/api/registries/default", json={"adminUserEnabled": False})
    assert resp.status_code == 200, resp.text

    async def refused() -> bool:
        return (await via_b.get(path, auth=admin)).status_code == 401

    await eventually(refused)


async def test_a_node_that_lost_its_feed_catches_up_after_reconnecting(
    client: httpx.AsyncClient, via_b: httpx.AsyncClient, node_b: HavenApp, settings: Settings
) -> None:
    first, second = make_image("lost-1"), make_image("lost-2")
    await push_image(client, "nodes/lost", first, "v1")
    path = "/v2/nodes/lost/manifests/v1"
    assert await digest_of(via_b, path) == first.digest
    assert node_b._feed is not None
    node_b._feed.connected.clear()
    with psycopg.connect(str(settings.database_url), autocommit=True) as admin:
        cut = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (node_b._feed.application_name,),
        ).fetchall()
    assert cut == [(True,)]
    # A change made while node B listens to nothing reaches it only by the catch-up.
    await push_image(client, "nodes/lost", second, "v1")

    async def caught_up() -> bool:
        return await digest_of(via_b, path) == second.digest

    await asyncio.to_thread(node_b._feed.connected.wait, 10)
    await eventually(caught_up)


async def test_a_chunked_upload_alternating_between_nodes_completes_with_its_digest(
    client: httpx.AsyncClient, via_b: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each PATCH lands on the other node, as behind a round-robin balancer: the upload's
    bytes so far are in the shared store and the hash over them beside its row, so no
    node reads back what the other stored."""

    def no_rebuild(self: UploadService, upload_id: str) -> None:
        raise AssertionError("a node re-read the upload to rebuild its hash")

    monkeypatch.setattr(UploadService, "_rebuild_sync", no_rebuild)
    sizes = [3 * MIB + 1, 700_000, 6 * MIB + 3, 10, 1 * MIB]
    chunks = [blob_bytes(f"alternate-{i}", size) for i, size in enumerate(sizes)]
    data = b"".join(chunks)
    digest = sha256(data)
    nodes = [client, via_b]
    started = await client.post("/v2/nodes/alternate/blobs/uploads/")
    assert started.status_code == 202, started.text
    location, offset = location_path(started), 0
    for i, chunk in enumerate(chunks):
        resp = await push_chunk(nodes[i % 2], location, offset, chunk)
        offset += len(chunk)
        assert resp.headers["Range"] == f"0-{offset - 1}"
        location = location_path(resp)
        status = await nodes[(i + 1) % 2].get(location)
        assert (status.status_code, status.headers["Range"]) == (204, f"0-{offset - 1}")
    done = await via_b.put(with_digest(location, digest))
    assert done.status_code == 201, done.text
    for node in nodes:
        pulled = await node.get(f"/v2/nodes/alternate/blobs/{digest}")
        assert pulled.status_code == 200
        assert sha256(pulled.content) == digest and len(pulled.content) == len(data)
