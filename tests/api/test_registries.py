"""The Host header picks the registry; an unknown host reaches the default one."""

from __future__ import annotations

import httpx
import pytest

from .helpers import blob_bytes, make_image, push_blob, push_image, sha256, with_digest


@pytest.mark.parametrize(
    "host",
    ["unknown.example.test", "unknown.example.test:8443", "127.0.0.1:5000", "LOCALHOST:5000"],
)
async def test_an_unknown_host_reaches_the_default_registry(client: httpx.AsyncClient, host: str):
    image = make_image("default-registry")
    await push_image(client, "reg/app", image, "v1")
    resp = await client.get("/v2/reg/app/manifests/v1", headers={"Host": host})
    assert resp.status_code == 200
    assert resp.content == image.manifest
    catalog = await client.get("/v2/_catalog", headers={"Host": host})
    assert catalog.json() == {"repositories": ["reg/app"]}


async def test_content_pushed_through_an_unknown_host_is_visible_on_the_default_one(
    client: httpx.AsyncClient,
):
    data = blob_bytes("via-other-host", 100)
    other = {"Host": "somewhere.else.test"}
    location_resp = await client.post("/v2/reg/other/blobs/uploads/", headers=other)
    assert location_resp.status_code == 202
    resp = await client.put(
        with_digest(location_resp.headers["location"], sha256(data)),
        content=data,
        headers=other,
    )
    assert resp.status_code == 201
    got = await client.get(f"/v2/reg/other/blobs/{sha256(data)}")
    assert got.status_code == 200
    assert got.content == data


async def test_version_check_answers_on_any_host(client: httpx.AsyncClient):
    resp = await client.get("/v2/", headers={"Host": "whatever.test"})
    assert resp.status_code == 200
    assert resp.json() == {}


async def test_blob_push_through_the_default_host_reads_back(client: httpx.AsyncClient):
    data = blob_bytes("default-host", 10)
    await push_blob(client, "reg/plain", data)
    got = await client.get(f"/v2/reg/plain/blobs/{sha256(data)}", headers={"Host": "x.test"})
    assert got.content == data
