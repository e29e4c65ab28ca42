"""Concurrent pushes through one in-process client."""

from __future__ import annotations

import asyncio

import httpx

from .helpers import (
    blob_bytes,
    make_artifact,
    make_image,
    push_blob,
    push_blobs,
    push_image,
    push_manifest,
    sha256,
    start_upload,
    with_digest,
)

CLIENTS = 8


async def test_eight_clients_pushing_the_same_blob_at_once_all_get_201(
    client: httpx.AsyncClient,
):
    data = blob_bytes("same-blob", 256 * 1024)
    digest = sha256(data)
    results = await asyncio.gather(
        *(push_blob(client, "conc/blob", data) for _ in range(CLIENTS)), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    assert all(r.status_code == 201 for r in results)  # type: ignore[union-attr]
    got = await client.get(f"/v2/conc/blob/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == data


async def test_eight_single_post_pushes_of_the_same_blob_at_once_all_get_201(
    client: httpx.AsyncClient,
):
    data = blob_bytes("same-blob-post", 64 * 1024)
    digest = sha256(data)

    async def post() -> int:
        resp = await client.post(
            "/v2/conc/post/blobs/uploads/", params={"digest": digest}, content=data
        )
        return resp.status_code

    statuses = await asyncio.gather(*(post() for _ in range(CLIENTS)))
    assert statuses == [201] * CLIENTS
    got = await client.get(f"/v2/conc/post/blobs/{digest}")
    assert got.content == data


async def test_the_same_blob_pushed_to_eight_repositories_at_once_is_readable_in_each(
    client: httpx.AsyncClient,
):
    data = blob_bytes("fan-out", 32 * 1024)
    digest = sha256(data)
    await asyncio.gather(*(push_blob(client, f"conc/fan{i}", data) for i in range(CLIENTS)))
    for i in range(CLIENTS):
        got = await client.get(f"/v2/conc/fan{i}/blobs/{digest}")
        assert got.status_code == 200
        assert got.content == data


async def test_interleaved_chunked_uploads_do_not_mix_their_bytes(client: httpx.AsyncClient):
    blobs = [blob_bytes(f"interleave-{i}", 8 * 1024) for i in range(CLIENTS)]
    locations = await asyncio.gather(*(start_upload(client, "conc/chunks") for _ in blobs))

    async def upload(location: str, data: bytes) -> int:
        for start in range(0, len(data), 1024):
            chunk = data[start : start + 1024]
            resp = await client.patch(
                location,
                content=chunk,
                headers={"Content-Range": f"{start}-{start + len(chunk) - 1}"},
            )
            assert resp.status_code == 202
            location = resp.headers["location"]
            await asyncio.sleep(0)
        done = await client.put(with_digest(location, sha256(data)))
        return done.status_code

    statuses = await asyncio.gather(
        *(upload(loc, d) for loc, d in zip(locations, blobs, strict=True))
    )
    assert statuses == [201] * CLIENTS
    for data in blobs:
        got = await client.get(f"/v2/conc/chunks/blobs/{sha256(data)}")
        assert got.content == data


async def test_concurrent_manifest_pushes_to_one_tag_leave_the_tag_on_one_of_them(
    client: httpx.AsyncClient,
):
    images = [make_image(f"race-{i}") for i in range(CLIENTS)]
    for image in images:
        await push_blobs(client, "conc/tag", image.blobs)
    responses = await asyncio.gather(
        *(push_manifest(client, "conc/tag", "latest", image.manifest) for image in images)
    )
    assert [r.status_code for r in responses] == [201] * CLIENTS
    got = await client.get("/v2/conc/tag/manifests/latest")
    assert got.status_code == 200
    assert got.content in {image.manifest for image in images}
    assert got.headers["docker-content-digest"] == sha256(got.content)
    tags = await client.get("/v2/conc/tag/tags/list")
    assert tags.json()["tags"] == ["latest"]
    for image in images:
        by_digest = await client.get(f"/v2/conc/tag/manifests/{image.digest}")
        assert by_digest.status_code == 200


async def test_concurrent_pushes_of_the_same_manifest_all_succeed(client: httpx.AsyncClient):
    image = make_image("same-manifest")
    await push_blobs(client, "conc/same", image.blobs)
    responses = await asyncio.gather(
        *(push_manifest(client, "conc/same", f"t{i}", image.manifest) for i in range(CLIENTS))
    )
    assert [r.status_code for r in responses] == [201] * CLIENTS
    tags = await client.get("/v2/conc/same/tags/list")
    assert tags.json()["tags"] == [f"t{i}" for i in range(CLIENTS)]


async def test_concurrent_pushes_to_new_repositories_all_appear_in_the_catalog(
    client: httpx.AsyncClient,
):
    async def push(i: int) -> None:
        image = make_image(f"new-repo-{i}")
        await push_blobs(client, f"conc/new{i}", image.blobs)
        resp = await push_manifest(client, f"conc/new{i}", "latest", image.manifest)
        assert resp.status_code == 201

    await asyncio.gather(*(push(i) for i in range(CLIENTS)))
    catalog = await client.get("/v2/_catalog")
    assert catalog.json()["repositories"] == sorted(f"conc/new{i}" for i in range(CLIENTS))


async def test_racing_patches_of_the_same_range_accept_exactly_one(client: httpx.AsyncClient):
    data = blob_bytes("race-patch", 4096)
    digest = sha256(data)
    location = await start_upload(client, "conc/race")
    responses = await asyncio.gather(
        *(
            client.patch(location, content=data[:2048], headers={"Content-Range": "0-2047"})
            for _ in range(CLIENTS)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] + [416] * (CLIENTS - 1), statuses
    status = await client.get(location)
    assert status.headers["range"] == "0-2047"
    done = await client.put(
        with_digest(location, digest), content=data[2048:], headers={"Content-Range": "2048-4095"}
    )
    assert done.status_code == 201
    got = await client.get(f"/v2/conc/race/blobs/{digest}")
    assert got.content == data


async def test_racing_closing_puts_of_one_session_store_the_blob_once_and_never_fail_500(
    client: httpx.AsyncClient,
):
    data = blob_bytes("race-put", 4096)
    digest = sha256(data)
    location = await start_upload(client, "conc/raceput")
    resp = await client.patch(location, content=data)
    assert resp.status_code == 202
    responses = await asyncio.gather(
        *(client.put(with_digest(location, digest)) for _ in range(CLIENTS))
    )
    statuses = [r.status_code for r in responses]
    assert 201 in statuses, statuses
    assert set(statuses) <= {201, 404}, statuses
    for r in responses:
        if r.status_code == 404:
            assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    got = await client.get(f"/v2/conc/raceput/blobs/{digest}")
    assert got.content == data


async def test_concurrent_mounts_of_one_blob_into_one_repository_all_answer_201(
    client: httpx.AsyncClient,
):
    data = blob_bytes("race-mount", 1024)
    digest = sha256(data)
    await push_blob(client, "conc/msrc", data)
    responses = await asyncio.gather(
        *(
            client.post(
                "/v2/conc/mdst/blobs/uploads/", params={"mount": digest, "from": "conc/msrc"}
            )
            for _ in range(CLIENTS)
        )
    )
    assert [r.status_code for r in responses] == [201] * CLIENTS
    assert (await client.get(f"/v2/conc/mdst/blobs/{digest}")).content == data


async def test_concurrent_referrer_pushes_to_one_subject_are_all_listed(
    client: httpx.AsyncClient,
):
    base = make_image("race-subject")
    await push_image(client, "conc/refs", base, "v1")
    artifacts = [
        make_artifact(f"race-ref-{i}", "application/vnd.example.sig", subject=base)
        for i in range(CLIENTS)
    ]
    for artifact in artifacts:
        await push_blobs(client, "conc/refs", artifact.blobs)
    responses = await asyncio.gather(
        *(push_manifest(client, "conc/refs", a.digest, a.manifest) for a in artifacts)
    )
    assert [r.status_code for r in responses] == [201] * CLIENTS
    listed = await client.get(f"/v2/conc/refs/referrers/{base.digest}")
    assert {d["digest"] for d in listed.json()["manifests"]} == {a.digest for a in artifacts}


async def test_concurrent_tag_deletes_and_pushes_leave_a_consistent_repository(
    client: httpx.AsyncClient,
):
    images = [make_image(f"churn-{i}") for i in range(CLIENTS)]
    for image in images:
        await push_image(client, "conc/churn", image, f"t{images.index(image)}")

    async def churn(i: int) -> None:
        image = images[i]
        for _ in range(3):
            put = await push_manifest(client, "conc/churn", "shared", image.manifest)
            assert put.status_code == 201
            deleted = await client.delete("/v2/conc/churn/manifests/shared")
            assert deleted.status_code in (202, 404), deleted.status_code

    await asyncio.gather(*(churn(i) for i in range(CLIENTS)))
    tags = (await client.get("/v2/conc/churn/tags/list")).json()["tags"]
    assert set(tags) - {"shared"} == {f"t{i}" for i in range(CLIENTS)}
    shared = await client.get("/v2/conc/churn/manifests/shared")
    assert shared.status_code in (200, 404)
    if shared.status_code == 200:
        assert shared.content in {image.manifest for image in images}
