"""Haven with its blobs in an object store (Azurite, Ceph's S3 gateway): pushes land in the
store, pulls are redirected to signed URLs (or streamed, with ranges, when redirects are
off), and garbage collection deletes from the store."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.helpers import OWNER_PASSWORD, make_image, push_image
from haven.config import Settings
from haven.web.app import HavenApp, create_app

OWNER = ("owner", OWNER_PASSWORD)


@pytest.fixture(params=["azure", "s3"])
def storage(request: pytest.FixtureRequest) -> str:
    name = "container_url" if request.param == "azure" else "bucket_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def settings(storage: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    redirect = request.node.get_closest_marker("no_redirect") is None
    return Settings(
        data_dir=tmp_path / "data",
        storage=storage,
        storage_redirect=redirect,
        bootstrap_password=OWNER_PASSWORD,
        gc_interval_seconds=0,
        gc_review_delay_seconds=0,
        task_concurrency=0,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[HavenApp]:
    from haven.store.migrate import upgrade

    upgrade(settings)
    application = create_app(settings)
    await application.startup()
    try:
        yield application
    finally:
        await application.shutdown()


@pytest.fixture
async def client(app: HavenApp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost:5000", auth=OWNER
    ) as c:
        yield c


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def test_pushed_blobs_are_in_the_store_and_pulls_are_redirected(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    image = make_image("object-store", layer_size=300_000)
    await push_image(client, "stored/app", image, "v1")
    layer = image.layers[0]
    assert app.content.stat_sync(layer.digest) == layer.size
    assert app.content.local_path(layer.digest) is None

    head = await client.head(f"/v2/stored/app/blobs/{layer.digest}")
    assert (head.status_code, head.headers["Content-Length"]) == (200, str(layer.size))
    resp = await client.get(f"/v2/stored/app/blobs/{layer.digest}")
    assert resp.status_code == 307
    assert resp.headers["Docker-Content-Digest"] == layer.digest
    location = resp.headers["Location"]
    async with httpx.AsyncClient(timeout=30) as outside:
        fetched = await outside.get(location)
        assert fetched.status_code == 200
        assert sha256(fetched.content) == layer.digest
        ranged = await outside.get(location, headers={"Range": "bytes=100-199"})
        assert (ranged.status_code, ranged.content) == (206, layer.data[100:200])

    # The manifest's config was read back from the store for the listing's platform.
    listed = (await client.get("/acr/v1/stored/app/_manifests")).json()["manifests"]
    assert (listed[0]["architecture"], listed[0]["os"]) == ("amd64", "linux")


@pytest.mark.no_redirect
async def test_with_redirects_off_blobs_stream_through_with_ranges(
    client: httpx.AsyncClient,
) -> None:
    image = make_image("streamed", layer_size=5_000_000)
    await push_image(client, "stored/streamed", image, "v1")
    layer = image.layers[0]
    path = f"/v2/stored/streamed/blobs/{layer.digest}"
    whole = await client.get(path)
    assert whole.status_code == 200 and sha256(whole.content) == layer.digest
    cases: list[tuple[str, int, bytes]] = [
        ("bytes=10-19", 206, layer.data[10:20]),
        ("bytes=4999990-", 206, layer.data[4_999_990:]),
        ("bytes=-7", 206, layer.data[-7:]),
        ("bytes=0-99999999", 206, layer.data),
        ("items=0-1", 200, layer.data),
    ]
    for wanted, status, expected in cases:
        resp = await client.get(path, headers={"Range": wanted})
        assert (resp.status_code, resp.content == expected) == (status, True), wanted
    refused = await client.get(path, headers={"Range": f"bytes={layer.size}-"})
    assert refused.status_code == 416
    assert refused.headers["Content-Range"] == f"bytes */{layer.size}"


async def test_only_ranges_every_store_reads_alike_are_redirected(
    client: httpx.AsyncClient,
) -> None:
    """The client repeats its Range to the store; suffix, unsatisfiable and malformed
    ranges, which stores answer differently, are answered by Haven itself."""
    image = make_image("ranged", layer_size=2000)
    await push_image(client, "stored/ranged", image, "v1")
    layer = image.layers[0]
    path = f"/v2/stored/ranged/blobs/{layer.digest}"
    for wanted in ("bytes=0-99", "bytes=1999-", "bytes=10-99999"):
        resp = await client.get(path, headers={"Range": wanted})
        assert resp.status_code == 307, wanted
    cases: list[tuple[str, int, bytes]] = [
        ("bytes=-7", 206, layer.data[-7:]),
        ("bytes=2000-", 416, b""),
        ("bytes=20-10", 416, b""),
        ("bytes=abc", 200, layer.data),
        ("bytes=0-1,5-6", 200, layer.data),
    ]
    for wanted, status, expected in cases:
        resp = await client.get(path, headers={"Range": wanted})
        assert (resp.status_code, resp.content == expected) == (status, True), wanted


async def test_garbage_collection_deletes_from_the_store(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    image = make_image("collected", layer_size=1000)
    await push_image(client, "stored/gone", image, "v1")
    assert (await client.delete(f"/v2/stored/gone/manifests/{image.digest}")).status_code == 202
    report = (await client.post("/api/gc", json={})).json()
    assert report["blobsDeleted"] == 2, report
    for blob in image.blobs:
        assert app.content.stat_sync(blob.digest) is None
    ready = await client.get("/readyz")
    assert (ready.status_code, ready.text) == (200, "ok")


@pytest.fixture
def served(storage: str, tmp_path: Path) -> Iterator[Any]:
    """A real `haven serve` on the object store, for curl."""
    from cli.test_against_server import haven_serve

    with haven_serve(tmp_path, settings={"HAVEN_STORAGE": storage}) as server:
        yield server


def test_curl_follows_the_redirect_with_the_authorization_header(served: Any) -> None:
    image = make_image("curl", layer_size=70_000)
    with httpx.Client(base_url=served.url, auth=("owner", "cli-owner-Password-1")) as http:
        for blob in image.blobs:
            pushed = http.post(
                f"/v2/curl/app/blobs/uploads/?digest={blob.digest}", content=blob.data
            )
            assert pushed.status_code == 201, pushed.text
    layer = image.layers[0]
    done = subprocess.run(
        [
            "curl", "-sSfL", "-u", "owner:cli-owner-Password-1",
            "-H", "Authorization: Basic b3duZXI6Y2xpLW93bmVyLVBhc3N3b3JkLTE=",
            f"{served.url}/v2/curl/app/blobs/{layer.digest}",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert sha256(done.stdout) == layer.digest
