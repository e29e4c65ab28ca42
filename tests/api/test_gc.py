"""Online garbage collection: reclaims what nothing references, loses nothing in use."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from haven.config import Settings
from haven.web.app import HavenApp

from .access_helpers import caller, member
from .conftest import store_settings
from .helpers import (
    Blob,
    Manifest,
    image_of,
    layer,
    push_blob,
    push_blobs,
    push_manifest,
)

LINK_GRACE = 30.0


@pytest.fixture
def settings(stores: tuple[str, str], tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    """No review delay (blobs go as soon as GC runs) and no background passes: each test
    runs GC when it means to."""
    return store_settings(
        request,
        stores,
        tmp_path,
        gc_interval_seconds=0,
        gc_review_delay_seconds=0,
        gc_link_grace_seconds=LINK_GRACE,
    )


async def collect(client: httpx.AsyncClient, **options: Any) -> dict[str, Any]:
    resp = await client.post("/api/gc", json=options)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def stored(app: HavenApp, blob: Blob) -> bool:
    """Whether the content store still holds the blob's bytes."""
    return app.content.stat_sync(blob.digest) is not None


async def push(client: httpx.AsyncClient, repo: str, image: Manifest, tag: str) -> None:
    await push_blobs(client, repo, image.blobs)
    resp = await push_manifest(client, repo, tag, image.manifest)
    assert resp.status_code == 201, resp.text


async def test_a_deleted_images_unique_layers_are_freed_and_shared_ones_kept(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    shared, unique = layer("shared"), layer("unique", 3000)
    keeper, gone = image_of("keeper", [shared]), image_of("gone", [shared, unique])
    await push(client, "gc/a", keeper, "v1")
    await push(client, "gc/a", gone, "v2")
    assert (await collect(client))["blobsDeleted"] == 0

    assert (await client.delete(f"/v2/gc/a/manifests/{gone.digest}")).status_code == 202
    preview = await collect(client, dryRun=True)
    assert preview["dryRun"] is True
    assert preview["blobsDeleted"] == 2  # its config and its unique layer
    assert preview["bytesFreed"] == unique.size + gone.blobs[0].size
    assert stored(app, unique)  # a dry run changes nothing

    report = await collect(client)
    assert (report["blobsDeleted"], report["bytesFreed"]) == (2, preview["bytesFreed"])
    assert not stored(app, unique) and not stored(app, gone.blobs[0])
    assert stored(app, shared)
    pulled = await client.get(f"/v2/gc/a/blobs/{shared.digest}")
    assert pulled.status_code == 200 and pulled.content == shared.data
    assert (await collect(client))["blobsDeleted"] == 0


async def test_a_blob_in_another_repository_or_registry_is_kept(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    image = image_of("twice", [layer("twice")])
    await push(client, "gc/one", image, "v1")
    await push(client, "gc/two", image, "v1")
    assert (await client.delete("/acr/v1/gc/one")).status_code in (200, 202)
    assert (await collect(client))["blobsDeleted"] == 0
    assert all(stored(app, blob) for blob in image.blobs)
    assert (await client.delete("/acr/v1/gc/two")).status_code in (200, 202)
    assert (await collect(client))["blobsDeleted"] == len(image.blobs)
    assert not any(stored(app, blob) for blob in image.blobs)


async def test_an_abandoned_upload_is_unlinked_after_the_grace_period(
    app: HavenApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    orphan = layer("orphan")
    await push_blob(client, "gc/up", orphan.data)
    assert (await collect(client))["staleLinksRemoved"] == 0  # within the grace period
    assert (await client.head(f"/v2/gc/up/blobs/{orphan.digest}")).status_code == 200

    from haven.services import gc as gc_service

    later = time.time() * 1000 + (LINK_GRACE + 1) * 1000
    monkeypatch.setattr(gc_service, "now_ms", lambda: int(later))
    report = await collect(client)
    assert report["staleLinksRemoved"] == 1
    assert report["blobsDeleted"] == 1
    assert not stored(app, orphan)
    assert (await client.head(f"/v2/gc/up/blobs/{orphan.digest}")).status_code == 404


async def test_a_blob_uploaded_again_before_its_review_survives(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    image = image_of("again", [layer("again")])
    await push(client, "gc/again", image, "v1")
    assert (await client.delete(f"/v2/gc/again/manifests/{image.digest}")).status_code == 202
    await push(client, "gc/again", image, "v2")  # same bytes, pushed again before any GC
    assert (await collect(client))["blobsDeleted"] == 0
    assert all(stored(app, blob) for blob in image.blobs)


async def test_a_layer_uploaded_again_is_freed_once_no_image_uses_it(
    app: HavenApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second upload of a layer the repository links already renews the link; when the
    image pushed before it is deleted, the link stays for the grace period (an upload may
    be about to use it), then goes like any abandoned upload's."""
    from haven.services import gc as gc_service

    def at(grace_periods: int) -> None:
        later = time.time() * 1000 + grace_periods * (LINK_GRACE + 1) * 1000
        monkeypatch.setattr(gc_service, "now_ms", lambda: int(later))

    shared = layer("relinked")
    first, second = image_of("first-user", [shared]), image_of("second-user", [shared])
    await push(client, "gc/relink", first, "v1")
    await asyncio.sleep(0.01)
    await push(client, "gc/relink", second, "v2")  # uploads `shared` again
    at(1)
    await collect(client)  # past the grace: settles the links, all referenced
    for image in (second, first):
        assert (await client.delete(f"/v2/gc/relink/manifests/{image.digest}")).status_code == 202
    at(2)
    report = await collect(client)
    assert (report["staleLinksRemoved"], report["blobsDeleted"]) == (1, 3)
    assert not stored(app, shared)
    assert (await client.head(f"/v2/gc/relink/blobs/{shared.digest}")).status_code == 404


@pytest.mark.content_stores("file")
async def test_a_full_pass_removes_files_without_a_record(
    app: HavenApp, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between publishing a blob and recording it leaves a file nothing names."""
    data = b"bytes left behind by a crash"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = app.content.local_path(digest)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    assert (await collect(client, full=True))["orphanFilesDeleted"] == 0  # too recent
    old = time.time() - LINK_GRACE - 5
    import os

    os.utime(path, (old, old))
    preview = await collect(client, full=True, dryRun=True)
    assert preview["orphanFilesDeleted"] == 1 and path.exists()
    report = await collect(client, full=True)
    assert report["orphanFilesDeleted"] == 1
    assert not path.exists()


async def test_gc_is_for_deployment_owners_and_checks_its_input(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    alice = await member(client, "alice", "Owner", "default")
    async with caller(app, alice.auth) as c:
        assert (await c.post("/api/gc", json={})).status_code == 403
    for body in ([], {"dryRun": "yes"}, {"registry": 5}, {"full": 1}):
        resp = await client.post("/api/gc", json=body)
        assert resp.status_code == 400, (body, resp.text)
    resp = await client.post("/api/gc", json={"registry": "nosuchregistry"})
    assert resp.status_code == 404, resp.text
    report = await collect(client, registry="default")
    assert report["registry"] == "default"


async def test_stress_pushes_deletes_and_gc_in_a_tight_loop(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    """8 pushers of images sharing layers, a deleter and GC running back to back for 60 s:
    every acknowledged manifest that was not deleted pulls completely afterwards, a final
    full pass leaves no orphan, and usage equals a recount."""
    pool = [layer(f"stress-{i}", 2000 + i) for i in range(12)]
    acknowledged: dict[tuple[str, str], Manifest] = {}
    deleted: set[tuple[str, str]] = set()
    stop = time.monotonic() + 60
    passes = 0
    errors: list[str] = []

    async def pusher(worker: int) -> None:
        rng = random.Random(worker)
        n = 0
        while time.monotonic() < stop:
            n += 1
            repo = f"stress/r{rng.randrange(3)}"
            image = image_of(f"w{worker}-{n}", rng.sample(pool, 3))
            for _ in range(5):  # a client retries a push that lost a race with a delete
                await push_blobs(client, repo, image.blobs)
                resp = await push_manifest(client, repo, image.digest, image.manifest)
                if resp.status_code == 201:
                    acknowledged[(repo, image.digest)] = image
                    break
                if "MANIFEST_BLOB_UNKNOWN" not in resp.text:
                    errors.append(f"push {resp.status_code}: {resp.text[:200]}")
                    return

    async def deleter() -> None:
        rng = random.Random(99)
        while time.monotonic() < stop:
            await asyncio.sleep(0.05)
            candidates = [key for key in acknowledged if key not in deleted]
            if not candidates:
                continue
            repo, digest = rng.choice(candidates)
            deleted.add((repo, digest))
            resp = await client.delete(f"/v2/{repo}/manifests/{digest}")
            if resp.status_code != 202:
                errors.append(f"delete {resp.status_code}: {resp.text[:200]}")

    async def collector() -> None:
        nonlocal passes
        while time.monotonic() < stop:
            await collect(client)
            passes += 1

    await asyncio.gather(*(pusher(i) for i in range(8)), deleter(), collector())
    assert not errors, errors[:5]
    assert passes > 10 and len(acknowledged) > 50, (passes, len(acknowledged))

    await collect(client, full=True)
    kept = {key: image for key, image in acknowledged.items() if key not in deleted}
    for (repo, digest), image in kept.items():
        got = await client.get(f"/v2/{repo}/manifests/{digest}")
        assert got.status_code == 200 and got.content == image.manifest
        for blob in image.blobs:
            pulled = await client.get(f"/v2/{repo}/blobs/{blob.digest}")
            assert pulled.status_code == 200, (repo, blob.digest, pulled.text)
            assert hashlib.sha256(pulled.content).hexdigest() == blob.digest.split(":")[1]

    needed = {blob.digest for image in kept.values() for blob in image.blobs}
    on_disk = {digest for digest, _, _ in app.content.scan_sync()}
    rows = await app.db.read(
        lambda c: c.all(
            "SELECT DISTINCT digest FROM repository_blobs UNION SELECT digest FROM blobs"
        )
    )
    recorded = {str(row[0]) for row in rows}
    assert needed <= on_disk, len(needed - on_disk)
    # Nothing stored that no repository links (links still in their grace period remain).
    assert on_disk == recorded, (len(on_disk - recorded), len(recorded - on_disk))
    check = (await client.get("/api/registries/default/usages/check")).json()
    assert check["driftBytes"] == 0, check
