"""end-2 and end-10: pulling, checking, ranging, isolating and deleting blobs."""

from __future__ import annotations

import httpx
import pytest

from .helpers import (
    MALFORMED_DIGESTS,
    assert_oci_error,
    blob_bytes,
    digest_matches,
    make_image,
    push_blob,
    push_blobs,
    push_manifest,
    registry_response,
    sha256,
    sha512,
)


async def test_a_pushed_blob_reads_back_byte_exact_with_its_digest_and_length(
    client: httpx.AsyncClient,
):
    data = blob_bytes("pull", 5000)
    digest = sha256(data)
    await push_blob(client, "pull/blob", data)
    resp = await client.get(f"/v2/pull/blob/blobs/{digest}")
    assert resp.status_code == 200
    assert resp.content == data
    assert registry_response(resp).headers["docker-content-digest"] == digest
    assert int(resp.headers["content-length"]) == len(data)


async def test_head_of_a_blob_gives_length_and_digest_and_no_body(client: httpx.AsyncClient):
    data = blob_bytes("head", 777)
    digest = sha256(data)
    await push_blob(client, "pull/head", data)
    resp = await client.head(f"/v2/pull/head/blobs/{digest}")
    assert resp.status_code == 200
    assert resp.content == b""
    assert int(resp.headers["content-length"]) == 777
    assert resp.headers["docker-content-digest"] == digest


async def test_get_of_an_unknown_blob_answers_404_blob_unknown(client: httpx.AsyncClient):
    await push_blob(client, "pull/unknown", b"something")
    resp = await client.get(f"/v2/pull/unknown/blobs/{sha256(b'something else')}")
    assert_oci_error(resp, 404, "BLOB_UNKNOWN")


async def test_head_of_an_unknown_blob_answers_404_with_no_body(client: httpx.AsyncClient):
    await push_blob(client, "pull/unknown", b"something")
    resp = await client.head(f"/v2/pull/unknown/blobs/{sha256(b'something else')}")
    assert resp.status_code == 404
    assert resp.content == b""


async def test_get_of_a_blob_in_an_unknown_repository_answers_404(client: httpx.AsyncClient):
    resp = await client.get(f"/v2/never/pushed/blobs/{sha256(b'x')}")
    assert_oci_error(resp, 404, ("BLOB_UNKNOWN", "NAME_UNKNOWN"))


@pytest.mark.parametrize("digest", MALFORMED_DIGESTS)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_malformed_blob_digest_answers_400_digest_invalid(
    client: httpx.AsyncClient, method: str, digest: str
):
    await push_blob(client, "pull/malformed", b"present")
    resp = await client.request(method, f"/v2/pull/malformed/blobs/{digest}")
    assert_oci_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", MALFORMED_DIGESTS)
async def test_head_with_a_malformed_blob_digest_answers_400(
    client: httpx.AsyncClient, digest: str
):
    await push_blob(client, "pull/malformed", b"present")
    resp = await client.head(f"/v2/pull/malformed/blobs/{digest}")
    assert resp.status_code == 400
    assert resp.content == b""


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-0", 0, 0), ("bytes=10-19", 10, 19), ("bytes=0-99", 0, 99), ("bytes=90-99", 90, 99)],
)
async def test_a_range_request_answers_206_with_content_range_and_the_slice(
    client: httpx.AsyncClient, range_header: str, start: int, end: int
):
    data = blob_bytes("range", 100)
    digest = sha256(data)
    await push_blob(client, "pull/range", data)
    resp = await client.get(f"/v2/pull/range/blobs/{digest}", headers={"Range": range_header})
    assert resp.status_code == 206
    assert resp.content == data[start : end + 1]
    assert resp.headers["content-range"] == f"bytes {start}-{end}/100"
    assert int(resp.headers["content-length"]) == end - start + 1


async def test_resuming_a_pull_with_ranges_reassembles_the_blob(client: httpx.AsyncClient):
    data = blob_bytes("resume", 10_000)
    digest = sha256(data)
    await push_blob(client, "pull/resume", data)
    parts = []
    for start in range(0, 10_000, 3_000):
        end = min(start + 2_999, 9_999)
        resp = await client.get(
            f"/v2/pull/resume/blobs/{digest}", headers={"Range": f"bytes={start}-{end}"}
        )
        assert resp.status_code == 206
        parts.append(resp.content)
    assert b"".join(parts) == data


@pytest.mark.parametrize("range_header", ["bytes=100-200", "bytes=1000-1001", "bytes=100-"])
async def test_an_unsatisfiable_range_answers_416(client: httpx.AsyncClient, range_header: str):
    data = blob_bytes("range416", 100)
    await push_blob(client, "pull/range", data)
    resp = await client.get(f"/v2/pull/range/blobs/{sha256(data)}", headers={"Range": range_header})
    assert resp.status_code == 416


async def test_a_blob_pushed_to_one_repository_is_not_readable_through_another(
    client: httpx.AsyncClient,
):
    data = blob_bytes("isolated", 300)
    digest = sha256(data)
    await push_blob(client, "team/a", data)
    await push_blob(client, "team/b", b"b has something else")
    resp = await client.get(f"/v2/team/b/blobs/{digest}")
    assert_oci_error(resp, 404, "BLOB_UNKNOWN")
    head = await client.head(f"/v2/team/b/blobs/{digest}")
    assert head.status_code == 404
    ranged = await client.get(f"/v2/team/b/blobs/{digest}", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 404
    # Once pushed there too, it is readable.
    await push_blob(client, "team/b", data)
    resp = await client.get(f"/v2/team/b/blobs/{digest}")
    assert resp.status_code == 200
    assert resp.content == data


async def test_delete_of_a_blob_answers_202_and_then_it_is_unknown(client: httpx.AsyncClient):
    data = blob_bytes("delete", 200)
    digest = sha256(data)
    await push_blob(client, "del/blob", data)
    resp = await client.delete(f"/v2/del/blob/blobs/{digest}")
    assert resp.status_code == 202
    assert_oci_error(await client.get(f"/v2/del/blob/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    head = await client.head(f"/v2/del/blob/blobs/{digest}")
    assert head.status_code == 404


async def test_delete_of_an_unknown_blob_answers_404_blob_unknown(client: httpx.AsyncClient):
    await push_blob(client, "del/blob", b"present")
    resp = await client.delete(f"/v2/del/blob/blobs/{sha256(b'absent')}")
    assert_oci_error(resp, 404, "BLOB_UNKNOWN")


async def test_deleting_a_blob_from_one_repository_leaves_it_in_another(
    client: httpx.AsyncClient,
):
    data = blob_bytes("shared", 64)
    digest = sha256(data)
    await push_blob(client, "share/one", data)
    await push_blob(client, "share/two", data)
    resp = await client.delete(f"/v2/share/one/blobs/{digest}")
    assert resp.status_code == 202
    assert (await client.get(f"/v2/share/one/blobs/{digest}")).status_code == 404
    still = await client.get(f"/v2/share/two/blobs/{digest}")
    assert still.status_code == 200
    assert still.content == data


async def test_a_blob_can_be_pushed_again_after_it_was_deleted(client: httpx.AsyncClient):
    data = blob_bytes("again", 64)
    digest = sha256(data)
    await push_blob(client, "del/again", data)
    assert (await client.delete(f"/v2/del/again/blobs/{digest}")).status_code == 202
    await push_blob(client, "del/again", data)
    resp = await client.get(f"/v2/del/again/blobs/{digest}")
    assert resp.status_code == 200
    assert resp.content == data


async def test_a_sha512_blob_pushes_and_reads_back_by_its_sha512_digest(
    client: httpx.AsyncClient,
):
    data = blob_bytes("sha512", 4096)
    digest = sha512(data)
    resp = await push_blob(client, "algo/sha512", data, digest)
    assert resp.headers.get("docker-content-digest") in (None, digest, sha256(data))
    got = await client.get(f"/v2/algo/sha512/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == data
    served = got.headers.get("docker-content-digest")
    if served is not None:
        assert digest_matches(served, data)
    head = await client.head(f"/v2/algo/sha512/blobs/{digest}")
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == 4096


async def test_a_sha512_blob_with_the_wrong_content_answers_digest_invalid(
    client: httpx.AsyncClient,
):
    data = blob_bytes("sha512-wrong", 100)
    wrong = sha512(b"other content")
    resp = await client.post(
        "/v2/algo/sha512/blobs/uploads/", params={"digest": wrong}, content=data
    )
    assert_oci_error(resp, 400, "DIGEST_INVALID")
    assert (await client.get(f"/v2/algo/sha512/blobs/{wrong}")).status_code == 404
    assert (await client.get(f"/v2/algo/sha512/blobs/{sha512(data)}")).status_code == 404


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=90-", 90, 99), ("bytes=-10", 90, 99), ("bytes=95-1000", 95, 99), ("bytes=0-", 0, 99)],
)
async def test_open_suffix_and_overlong_ranges_follow_rfc_9110(
    client: httpx.AsyncClient, range_header: str, start: int, end: int
):
    data = blob_bytes("rfc9110", 100)
    await push_blob(client, "pull/rfc", data)
    resp = await client.get(f"/v2/pull/rfc/blobs/{sha256(data)}", headers={"Range": range_header})
    assert resp.status_code == 206
    assert resp.content == data[start : end + 1]
    assert resp.headers["content-range"] == f"bytes {start}-{end}/100"


@pytest.mark.parametrize("range_header", ["bytes=abc", "bytes=5-2", "bytes="])
async def test_an_invalid_byte_range_is_ignored_or_refused_never_500(
    client: httpx.AsyncClient, range_header: str
):
    # RFC 9110 14.2: a server MAY ignore or reject an invalid ranges-specifier.
    data = blob_bytes("bad-range", 100)
    await push_blob(client, "pull/badrange", data)
    resp = await client.get(
        f"/v2/pull/badrange/blobs/{sha256(data)}", headers={"Range": range_header}
    )
    assert resp.status_code in (200, 400, 416), resp.status_code
    if resp.status_code == 200:
        assert resp.content == data


async def test_a_range_in_an_unknown_unit_is_ignored(client: httpx.AsyncClient):
    # RFC 9110 14.2: an origin server MUST ignore a range unit it does not understand.
    data = blob_bytes("unit-range", 100)
    await push_blob(client, "pull/unitrange", data)
    resp = await client.get(
        f"/v2/pull/unitrange/blobs/{sha256(data)}", headers={"Range": "items=0-5"}
    )
    assert resp.status_code == 200
    assert resp.content == data


async def test_a_multi_range_request_is_served_whole_or_as_ranges_never_500(
    client: httpx.AsyncClient,
):
    data = blob_bytes("multi-range", 100)
    await push_blob(client, "pull/multirange", data)
    resp = await client.get(
        f"/v2/pull/multirange/blobs/{sha256(data)}", headers={"Range": "bytes=0-1,5-6"}
    )
    assert resp.status_code in (200, 206, 416), resp.status_code
    if resp.status_code == 200:
        assert resp.content == data


async def test_a_range_on_an_empty_blob_is_unsatisfiable(client: httpx.AsyncClient):
    await push_blob(client, "pull/emptyrange", b"")
    resp = await client.get(
        f"/v2/pull/emptyrange/blobs/{sha256(b'')}", headers={"Range": "bytes=0-0"}
    )
    assert resp.status_code in (200, 416)
    assert resp.content == b""


async def test_a_manifest_cannot_use_a_blob_deleted_from_its_repository(
    client: httpx.AsyncClient,
):
    image = make_image("deleted-layer")
    await push_blobs(client, "del/layer", image.blobs)
    layer = image.layers[0]
    assert (await client.delete(f"/v2/del/layer/blobs/{layer.digest}")).status_code == 202
    resp = await push_manifest(client, "del/layer", "v1", image.manifest)
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


async def test_a_large_blob_streams_back_intact(client: httpx.AsyncClient):
    data = blob_bytes("big-pull", 12 * 1024 * 1024 + 7)
    digest = sha256(data)
    resp = await client.post("/v2/pull/big/blobs/uploads/", params={"digest": digest}, content=data)
    assert resp.status_code == 201
    got = await client.get(f"/v2/pull/big/blobs/{digest}")
    assert got.status_code == 200
    assert len(got.content) == len(data)
    assert got.content == data
    tail = await client.get(
        f"/v2/pull/big/blobs/{digest}", headers={"Range": f"bytes={len(data) - 10}-"}
    )
    assert tail.status_code == 206
    assert tail.content == data[-10:]
