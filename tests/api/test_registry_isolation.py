"""Two registries in one deployment never see each other's repositories or blobs."""

from __future__ import annotations

import asyncio
import hashlib

import httpx

from haven.web.app import HavenApp

SECOND = "second.example.test"


async def _add_second_registry(app: HavenApp) -> None:
    await asyncio.to_thread(app.metadata.ensure_registry_sync, "secondreg", [SECOND])
    assert app.services is not None
    await app.services.registries.refresh()


async def _push_blob(client: httpx.AsyncClient, repo: str, data: bytes, host: str) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp = await client.post(
        f"/v2/{repo}/blobs/uploads/?digest={digest}", content=data, headers={"Host": host}
    )
    assert resp.status_code == 201, resp.text
    return digest


async def test_repositories_of_one_registry_are_invisible_in_another(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    await _add_second_registry(app)
    digest = await _push_blob(client, "shared/name", b"only in default", "localhost:5000")

    other = {"Host": f"{SECOND.upper()}:5000"}  # login servers match case-insensitively
    assert (await client.get("/v2/_catalog", headers=other)).json() == {"repositories": []}
    blob = await client.get(f"/v2/shared/name/blobs/{digest}", headers=other)
    assert blob.status_code == 404
    assert blob.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    tags = await client.get("/v2/shared/name/tags/list", headers=other)
    assert tags.status_code == 404


async def test_a_blob_cannot_be_mounted_across_registries(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    await _add_second_registry(app)
    digest = await _push_blob(client, "src/repo", b"mount me", "localhost:5000")
    other = {"Host": SECOND}
    with_from = await client.post(
        f"/v2/dst/repo/blobs/uploads/?mount={digest}&from=src/repo", headers=other
    )
    automatic = await client.post(f"/v2/dst/repo/blobs/uploads/?mount={digest}", headers=other)
    assert with_from.status_code == 202  # a fresh upload session instead of a mount
    assert automatic.status_code == 202
    assert (await client.get(f"/v2/dst/repo/blobs/{digest}", headers=other)).status_code == 404


async def test_the_same_name_holds_different_content_in_each_registry(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    await _add_second_registry(app)
    first = await _push_blob(client, "app", b"first registry", "localhost")
    second = await _push_blob(client, "app", b"second registry", SECOND)
    assert (await client.get(f"/v2/app/blobs/{second}")).status_code == 404
    assert (await client.get(f"/v2/app/blobs/{first}", headers={"Host": SECOND})).status_code == 404
    assert (
        await client.get(f"/v2/app/blobs/{second}", headers={"Host": SECOND})
    ).status_code == 200
