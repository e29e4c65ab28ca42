"""end-11: mounting a blob from another repository of the same registry."""

from __future__ import annotations

import httpx
import pytest

from .helpers import (
    MALFORMED_DIGESTS,
    assert_oci_error,
    blob_bytes,
    location_path,
    make_image,
    push_blob,
    push_manifest,
    sha256,
    start_upload,
    with_digest,
)


async def test_mount_from_a_repository_holding_the_blob_answers_201_and_makes_it_readable(
    client: httpx.AsyncClient,
):
    data = blob_bytes("mount", 900)
    digest = sha256(data)
    await push_blob(client, "src/repo", data)
    resp = await client.post(
        "/v2/dst/repo/blobs/uploads/", params={"mount": digest, "from": "src/repo"}
    )
    assert resp.status_code == 201
    assert location_path(resp) == f"/v2/dst/repo/blobs/{digest}"
    assert resp.headers.get("docker-content-digest", digest) == digest
    got = await client.get(f"/v2/dst/repo/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == data


async def test_a_mounted_blob_satisfies_a_manifest_in_the_target_repository(
    client: httpx.AsyncClient,
):
    image = make_image("mount-manifest")
    for blob in image.blobs:
        await push_blob(client, "src/base", blob.data)
        resp = await client.post(
            "/v2/dst/app/blobs/uploads/", params={"mount": blob.digest, "from": "src/base"}
        )
        assert resp.status_code == 201
    resp = await push_manifest(client, "dst/app", "v1", image.manifest)
    assert resp.status_code == 201


async def test_mount_without_from_finds_the_blob_in_any_repository(client: httpx.AsyncClient):
    data = blob_bytes("auto-mount", 400)
    digest = sha256(data)
    await push_blob(client, "elsewhere/repo", data)
    resp = await client.post("/v2/target/repo/blobs/uploads/", params={"mount": digest})
    assert resp.status_code == 201
    assert location_path(resp) == f"/v2/target/repo/blobs/{digest}"
    got = await client.get(f"/v2/target/repo/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == data


async def test_mount_of_an_unknown_blob_answers_202_and_opens_a_normal_upload(
    client: httpx.AsyncClient,
):
    data = blob_bytes("not-there", 300)
    digest = sha256(data)
    await push_blob(client, "src/other", b"unrelated")
    resp = await client.post(
        "/v2/dst/repo/blobs/uploads/", params={"mount": digest, "from": "src/other"}
    )
    assert resp.status_code == 202
    location = resp.headers["location"]
    assert location_path(resp).startswith("/v2/dst/repo/blobs/uploads/")
    assert (await client.get(f"/v2/dst/repo/blobs/{digest}")).status_code == 404
    # The session is an ordinary upload.
    done = await client.put(with_digest(location, digest), content=data)
    assert done.status_code == 201
    got = await client.get(f"/v2/dst/repo/blobs/{digest}")
    assert got.content == data


async def test_mount_from_an_unknown_repository_answers_202(client: httpx.AsyncClient):
    resp = await client.post(
        "/v2/dst/repo/blobs/uploads/",
        params={"mount": sha256(b"nowhere"), "from": "no/such/repo"},
    )
    assert resp.status_code == 202
    assert resp.headers["location"]


async def test_mount_without_from_of_a_blob_nowhere_answers_202(client: httpx.AsyncClient):
    resp = await client.post("/v2/dst/repo/blobs/uploads/", params={"mount": sha256(b"nowhere")})
    assert resp.status_code == 202
    assert resp.headers["location"]


async def test_mount_into_the_repository_that_already_has_the_blob_answers_201(
    client: httpx.AsyncClient,
):
    data = blob_bytes("self-mount", 100)
    digest = sha256(data)
    await push_blob(client, "self/repo", data)
    resp = await client.post(
        "/v2/self/repo/blobs/uploads/", params={"mount": digest, "from": "self/repo"}
    )
    assert resp.status_code == 201
    assert (await client.get(f"/v2/self/repo/blobs/{digest}")).content == data


async def test_a_mounted_blob_survives_deletion_from_the_source_repository(
    client: httpx.AsyncClient,
):
    data = blob_bytes("mount-then-delete", 100)
    digest = sha256(data)
    await push_blob(client, "src/gone", data)
    resp = await client.post(
        "/v2/dst/kept/blobs/uploads/", params={"mount": digest, "from": "src/gone"}
    )
    assert resp.status_code == 201
    assert (await client.delete(f"/v2/src/gone/blobs/{digest}")).status_code == 202
    got = await client.get(f"/v2/dst/kept/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == data


@pytest.mark.parametrize("digest", MALFORMED_DIGESTS)
async def test_mount_with_a_malformed_digest_answers_400_digest_invalid(
    client: httpx.AsyncClient, digest: str
):
    await push_blob(client, "src/repo", b"x")
    resp = await client.post(
        "/v2/dst/repo/blobs/uploads/", params={"mount": digest, "from": "src/repo"}
    )
    assert_oci_error(resp, 400, "DIGEST_INVALID")


async def test_mount_with_an_invalid_from_name_does_not_fail_with_500(
    client: httpx.AsyncClient,
):
    resp = await client.post(
        "/v2/dst/repo/blobs/uploads/", params={"mount": sha256(b"x"), "from": "../Bad"}
    )
    assert resp.status_code in (202, 400), resp.status_code
    if resp.status_code == 400:
        assert_oci_error(resp, 400, "NAME_INVALID")


async def test_mount_from_a_repository_whose_copy_was_deleted_answers_202(
    client: httpx.AsyncClient,
):
    data = blob_bytes("deleted-source", 100)
    digest = sha256(data)
    await push_blob(client, "src/deleted", data)
    assert (await client.delete(f"/v2/src/deleted/blobs/{digest}")).status_code == 202
    resp = await client.post(
        "/v2/dst/fromdeleted/blobs/uploads/", params={"mount": digest, "from": "src/deleted"}
    )
    assert resp.status_code == 202
    assert (await client.get(f"/v2/dst/fromdeleted/blobs/{digest}")).status_code == 404


async def test_mount_of_a_blob_that_is_only_an_unfinished_upload_answers_202(
    client: httpx.AsyncClient,
):
    data = blob_bytes("unfinished-mount", 100)
    digest = sha256(data)
    location = await start_upload(client, "src/unfinished")
    assert (await client.patch(location, content=data)).status_code == 202
    resp = await client.post(
        "/v2/dst/unfinished/blobs/uploads/", params={"mount": digest, "from": "src/unfinished"}
    )
    assert resp.status_code == 202
    auto = await client.post("/v2/dst/unfinished/blobs/uploads/", params={"mount": digest})
    assert auto.status_code == 202


async def test_mount_with_from_naming_a_repository_without_the_blob_does_not_leak_it(
    client: httpx.AsyncClient,
):
    # `from` names a repository that lacks the blob; the registry may still find it elsewhere
    # (it mounts without `from`), but whatever it answers, the result must be coherent.
    data = blob_bytes("wrong-from", 100)
    digest = sha256(data)
    await push_blob(client, "src/has", data)
    await push_blob(client, "src/hasnot", b"other")
    resp = await client.post(
        "/v2/dst/wrongfrom/blobs/uploads/", params={"mount": digest, "from": "src/hasnot"}
    )
    assert resp.status_code in (201, 202)
    got = await client.get(f"/v2/dst/wrongfrom/blobs/{digest}")
    assert got.status_code == (200 if resp.status_code == 201 else 404)
