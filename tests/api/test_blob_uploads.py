"""end-4a/4b, end-5, end-6, end-13 and DELETE of an upload: pushing blobs."""

from __future__ import annotations

import re

import httpx
import pytest

from haven.web.app import HavenApp

from .helpers import (
    MALFORMED_DIGESTS,
    assert_oci_error,
    blob_bytes,
    location_path,
    push_blob,
    push_chunk,
    sha256,
    sha512,
    start_upload,
    with_digest,
)

OCTET = {"Content-Type": "application/octet-stream"}


async def _assert_readable(client: httpx.AsyncClient, repo: str, digest: str, data: bytes):
    resp = await client.get(f"/v2/{repo}/blobs/{digest}")
    assert resp.status_code == 200, f"{digest}: {resp.status_code} {resp.text[:200]}"
    assert resp.content == data


async def _assert_absent(client: httpx.AsyncClient, repo: str, digest: str):
    resp = await client.get(f"/v2/{repo}/blobs/{digest}")
    assert resp.status_code == 404, f"{digest} should not be readable: {resp.status_code}"


# --- opening a session --------------------------------------------------------------------


async def test_post_opens_a_session_with_202_location_and_upload_uuid(
    client: httpx.AsyncClient,
):
    resp = await client.post("/v2/up/open/blobs/uploads/", headers={"Content-Length": "0"})
    assert resp.status_code == 202
    location = resp.headers["location"]
    upload_uuid = resp.headers["docker-upload-uuid"]
    assert upload_uuid
    assert upload_uuid in location
    assert location_path(resp).startswith("/v2/up/open/blobs/uploads/")


async def test_two_sessions_get_distinct_locations(client: httpx.AsyncClient):
    first = await start_upload(client, "up/open")
    second = await start_upload(client, "up/open")
    assert first != second


# --- monolithic ---------------------------------------------------------------------------


async def test_post_then_put_pushes_a_blob_and_answers_201_with_its_location(
    client: httpx.AsyncClient,
):
    data = blob_bytes("post-put", 1000)
    digest = sha256(data)
    location = await start_upload(client, "up/mono")
    resp = await client.put(with_digest(location, digest), content=data, headers=OCTET)
    assert resp.status_code == 201
    assert location_path(resp) == f"/v2/up/mono/blobs/{digest}"
    assert resp.headers["docker-content-digest"] == digest
    await _assert_readable(client, "up/mono", digest, data)
    # The Location is a pullable blob URL.
    pulled = await client.get(resp.headers["location"])
    assert pulled.status_code == 200
    assert pulled.content == data


async def test_single_post_with_digest_pushes_a_blob_in_one_request(client: httpx.AsyncClient):
    data = blob_bytes("single-post", 2048)
    digest = sha256(data)
    resp = await client.post(
        "/v2/up/single/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTET
    )
    assert resp.status_code == 201
    assert location_path(resp) == f"/v2/up/single/blobs/{digest}"
    assert resp.headers["docker-content-digest"] == digest
    await _assert_readable(client, "up/single", digest, data)


async def test_monolithic_push_with_wrong_digest_stores_nothing_and_answers_digest_invalid(
    client: httpx.AsyncClient,
):
    data = blob_bytes("wrong-digest", 500)
    claimed = sha256(b"something else entirely")
    resp = await client.post(
        "/v2/up/wrong/blobs/uploads/", params={"digest": claimed}, content=data, headers=OCTET
    )
    assert_oci_error(resp, 400, "DIGEST_INVALID")
    await _assert_absent(client, "up/wrong", claimed)
    await _assert_absent(client, "up/wrong", sha256(data))


async def test_put_with_wrong_digest_answers_digest_invalid_and_the_blob_is_not_readable(
    client: httpx.AsyncClient,
):
    data = blob_bytes("put-wrong", 500)
    claimed = sha256(b"not the data")
    location = await start_upload(client, "up/wrong")
    resp = await client.put(with_digest(location, claimed), content=data, headers=OCTET)
    assert_oci_error(resp, 400, "DIGEST_INVALID")
    await _assert_absent(client, "up/wrong", claimed)
    await _assert_absent(client, "up/wrong", sha256(data))


@pytest.mark.parametrize("digest", MALFORMED_DIGESTS)
async def test_a_malformed_digest_on_single_post_answers_400_digest_invalid(
    client: httpx.AsyncClient, digest: str
):
    resp = await client.post(
        "/v2/up/bad/blobs/uploads/", params={"digest": digest}, content=b"data", headers=OCTET
    )
    assert_oci_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", MALFORMED_DIGESTS)
async def test_a_malformed_digest_on_the_closing_put_answers_400_digest_invalid(
    client: httpx.AsyncClient, digest: str
):
    location = await start_upload(client, "up/bad")
    resp = await client.put(with_digest(location, digest), content=b"data", headers=OCTET)
    assert_oci_error(resp, 400, "DIGEST_INVALID")


async def test_a_closing_put_without_a_digest_answers_400(client: httpx.AsyncClient):
    location = await start_upload(client, "up/nodigest")
    resp = await client.put(location, content=b"data", headers=OCTET)
    assert_oci_error(resp, 400, ("DIGEST_INVALID", "BLOB_UPLOAD_INVALID"))


async def test_a_zero_length_blob_pushes_and_reads_back_empty(client: httpx.AsyncClient):
    digest = sha256(b"")
    location = await start_upload(client, "up/empty")
    resp = await client.put(with_digest(location, digest), content=b"", headers=OCTET)
    assert resp.status_code == 201
    assert resp.headers["docker-content-digest"] == digest
    got = await client.get(f"/v2/up/empty/blobs/{digest}")
    assert got.status_code == 200
    assert got.content == b""
    head = await client.head(f"/v2/up/empty/blobs/{digest}")
    assert head.status_code == 200
    assert head.headers["content-length"] == "0"


async def test_a_zero_length_blob_pushes_by_single_post(client: httpx.AsyncClient):
    digest = sha256(b"")
    resp = await client.post(
        "/v2/up/empty/blobs/uploads/", params={"digest": digest}, content=b"", headers=OCTET
    )
    assert resp.status_code == 201
    await _assert_readable(client, "up/empty", digest, b"")


async def test_pushing_the_same_blob_twice_is_harmless(client: httpx.AsyncClient):
    data = blob_bytes("twice", 300)
    await push_blob(client, "up/twice", data)
    await push_blob(client, "up/twice", data)
    await _assert_readable(client, "up/twice", sha256(data), data)


async def test_a_sha512_blob_pushes_by_single_post(client: httpx.AsyncClient):
    data = blob_bytes("sha512-post", 1500)
    digest = sha512(data)
    resp = await client.post(
        "/v2/up/sha512/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTET
    )
    assert resp.status_code == 201
    assert location_path(resp) == f"/v2/up/sha512/blobs/{digest}"
    await _assert_readable(client, "up/sha512", digest, data)


# --- chunked ------------------------------------------------------------------------------


async def test_chunked_upload_with_content_range_reports_range_and_location_each_chunk(
    client: httpx.AsyncClient,
):
    data = blob_bytes("chunked", 3000)
    digest = sha256(data)
    location = await start_upload(client, "up/chunked")
    for start in range(0, 3000, 1000):
        chunk = data[start : start + 1000]
        resp = await client.patch(
            location,
            content=chunk,
            headers={**OCTET, "Content-Range": f"{start}-{start + len(chunk) - 1}"},
        )
        assert resp.status_code == 202, resp.text
        assert resp.headers["range"] == f"0-{start + len(chunk) - 1}"
        assert resp.headers["location"]
        location = resp.headers["location"]
    resp = await client.put(with_digest(location, digest))
    assert resp.status_code == 201
    assert location_path(resp) == f"/v2/up/chunked/blobs/{digest}"
    assert resp.headers["docker-content-digest"] == digest
    await _assert_readable(client, "up/chunked", digest, data)


async def test_streamed_patches_without_content_range_append_in_order(
    client: httpx.AsyncClient,
):
    data = blob_bytes("streamed", 2500)
    digest = sha256(data)
    location = await start_upload(client, "up/streamed")
    offset = 0
    for size in (1, 999, 1000, 500):
        resp = await client.patch(location, content=data[offset : offset + size], headers=OCTET)
        assert resp.status_code == 202, resp.text
        offset += size
        assert resp.headers["range"] == f"0-{offset - 1}"
        location = resp.headers["location"]
    resp = await client.put(with_digest(location, digest))
    assert resp.status_code == 201
    await _assert_readable(client, "up/streamed", digest, data)


async def test_a_chunked_upload_of_many_chunks_reassembles_exactly(client: httpx.AsyncClient):
    chunk_size = 1024
    count = 200
    data = blob_bytes("many-chunks", chunk_size * count + 17)
    digest = sha256(data)
    location = await start_upload(client, "up/many")
    offset = 0
    while offset < len(data):
        chunk = data[offset : offset + chunk_size]
        resp = await client.patch(
            location,
            content=chunk,
            headers={**OCTET, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
        )
        assert resp.status_code == 202, f"chunk at {offset}: {resp.status_code} {resp.text}"
        offset += len(chunk)
        location = resp.headers["location"]
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == f"0-{len(data) - 1}"
    resp = await client.put(with_digest(location, digest))
    assert resp.status_code == 201
    await _assert_readable(client, "up/many", digest, data)


async def test_a_large_blob_in_megabyte_chunks_reassembles_exactly(client: httpx.AsyncClient):
    data = blob_bytes("large", 5 * 1024 * 1024 + 3)
    digest = sha256(data)
    location = await start_upload(client, "up/large")
    step = 1024 * 1024
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        resp = await client.patch(
            location,
            content=chunk,
            headers={**OCTET, "Content-Range": f"{start}-{start + len(chunk) - 1}"},
        )
        assert resp.status_code == 202
        location = resp.headers["location"]
    resp = await client.put(with_digest(location, digest))
    assert resp.status_code == 201
    await _assert_readable(client, "up/large", digest, data)


async def test_the_final_chunk_may_come_with_the_closing_put(client: httpx.AsyncClient):
    data = blob_bytes("final-in-put", 1500)
    digest = sha256(data)
    location = await start_upload(client, "up/final")
    resp = await client.patch(
        location, content=data[:1000], headers={**OCTET, "Content-Range": "0-999"}
    )
    assert resp.status_code == 202
    location = resp.headers["location"]
    resp = await client.put(
        with_digest(location, digest),
        content=data[1000:],
        headers={**OCTET, "Content-Range": "1000-1499"},
    )
    assert resp.status_code == 201
    await _assert_readable(client, "up/final", digest, data)


async def test_the_final_chunk_may_come_with_the_closing_put_without_content_range(
    client: httpx.AsyncClient,
):
    data = blob_bytes("final-no-range", 1500)
    digest = sha256(data)
    location = await start_upload(client, "up/final")
    resp = await client.patch(location, content=data[:700], headers=OCTET)
    assert resp.status_code == 202
    resp = await client.put(
        with_digest(resp.headers["location"], digest), content=data[700:], headers=OCTET
    )
    assert resp.status_code == 201
    await _assert_readable(client, "up/final", digest, data)


async def test_chunked_upload_with_wrong_final_digest_answers_digest_invalid(
    client: httpx.AsyncClient,
):
    data = blob_bytes("chunk-wrong", 2000)
    location = await start_upload(client, "up/chunkwrong")
    resp = await client.patch(location, content=data, headers={**OCTET, "Content-Range": "0-1999"})
    assert resp.status_code == 202
    claimed = sha256(data[:-1])
    resp = await client.put(with_digest(resp.headers["location"], claimed))
    assert_oci_error(resp, 400, "DIGEST_INVALID")
    await _assert_absent(client, "up/chunkwrong", claimed)
    await _assert_absent(client, "up/chunkwrong", sha256(data))


async def test_a_chunked_sha512_upload_completes(client: httpx.AsyncClient):
    data = blob_bytes("chunk-sha512", 3000)
    digest = sha512(data)
    location = await start_upload(client, "up/chunk512")
    resp = await client.patch(
        location, content=data[:2000], headers={**OCTET, "Content-Range": "0-1999"}
    )
    assert resp.status_code == 202
    resp = await client.put(
        with_digest(resp.headers["location"], digest),
        content=data[2000:],
        headers={**OCTET, "Content-Range": "2000-2999"},
    )
    assert resp.status_code == 201
    await _assert_readable(client, "up/chunk512", digest, data)


@pytest.mark.parametrize("bad_range", ["10-19", "1-10", "5-9"])
async def test_a_first_chunk_not_starting_at_zero_answers_416(
    client: httpx.AsyncClient, bad_range: str
):
    location = await start_upload(client, "up/order")
    resp = await client.patch(
        location, content=blob_bytes("x", 10), headers={**OCTET, "Content-Range": bad_range}
    )
    assert resp.status_code == 416


async def test_a_chunk_whose_start_is_not_the_current_offset_answers_416_and_changes_nothing(
    client: httpx.AsyncClient,
):
    data = blob_bytes("out-of-order", 30)
    digest = sha256(data)
    location = await start_upload(client, "up/order")
    resp = await client.patch(
        location, content=data[:10], headers={**OCTET, "Content-Range": "0-9"}
    )
    assert resp.status_code == 202
    location = resp.headers["location"]
    # A gap: skips bytes 10-19.
    gap = await client.patch(
        location, content=data[20:30], headers={**OCTET, "Content-Range": "20-29"}
    )
    assert gap.status_code == 416
    # A replay: resends bytes 0-9.
    replay = await client.patch(
        location, content=data[:10], headers={**OCTET, "Content-Range": "0-9"}
    )
    assert replay.status_code == 416
    # An overlap: starts inside what was already sent.
    overlap = await client.patch(
        location, content=data[5:15], headers={**OCTET, "Content-Range": "5-14"}
    )
    assert overlap.status_code == 416
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-9"
    # The session still works from the real offset.
    resp = await client.patch(
        location, content=data[10:], headers={**OCTET, "Content-Range": "10-29"}
    )
    assert resp.status_code == 202
    resp = await client.put(with_digest(resp.headers["location"], digest))
    assert resp.status_code == 201
    await _assert_readable(client, "up/order", digest, data)


@pytest.mark.parametrize("content_range", ["0-19", "0-4", "0-0"])
async def test_a_content_range_that_does_not_match_the_body_length_is_rejected(
    client: httpx.AsyncClient, content_range: str
):
    location = await start_upload(client, "up/mismatch")
    resp = await client.patch(
        location, content=blob_bytes("mm", 10), headers={**OCTET, "Content-Range": content_range}
    )
    assert resp.status_code in (400, 416), resp.status_code
    if resp.status_code == 400:
        assert_oci_error(resp, 400, ("BLOB_UPLOAD_INVALID", "SIZE_INVALID"))
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-0"


@pytest.mark.parametrize("content_range", ["bytes", "a-b", "9-0", "-5", "0-", "bytes=0-9x"])
async def test_a_malformed_content_range_is_rejected(client: httpx.AsyncClient, content_range: str):
    location = await start_upload(client, "up/malformed")
    resp = await client.patch(
        location, content=blob_bytes("mf", 10), headers={**OCTET, "Content-Range": content_range}
    )
    assert resp.status_code in (400, 416), resp.status_code
    assert resp.status_code != 500


# --- status, cancel, unknown --------------------------------------------------------------


async def test_get_of_an_empty_upload_answers_204_with_range_0_0(client: httpx.AsyncClient):
    location = await start_upload(client, "up/status")
    resp = await client.get(location)
    assert resp.status_code == 204
    assert resp.headers["range"] == "0-0"
    assert resp.headers["location"]
    assert resp.content == b""


async def test_get_of_an_upload_reports_the_last_received_byte(client: httpx.AsyncClient):
    location = await start_upload(client, "up/status")
    resp = await client.patch(
        location, content=blob_bytes("st", 1234), headers={**OCTET, "Content-Range": "0-1233"}
    )
    assert resp.status_code == 202
    status = await client.get(resp.headers["location"])
    assert status.status_code == 204
    assert status.headers["range"] == "0-1233"
    assert status.headers["location"]
    assert status.headers.get("docker-upload-uuid", "") in status.headers["location"]


async def test_delete_of_an_upload_answers_204_and_the_upload_is_then_unknown(
    client: httpx.AsyncClient,
):
    location = await start_upload(client, "up/cancel")
    resp = await client.patch(location, content=b"partial", headers=OCTET)
    assert resp.status_code == 202
    location = resp.headers["location"]
    resp = await client.delete(location)
    assert resp.status_code == 204
    assert_oci_error(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")


async def test_a_patch_to_a_cancelled_upload_answers_404_blob_upload_unknown(
    client: httpx.AsyncClient,
):
    location = await start_upload(client, "up/cancel")
    assert (await client.delete(location)).status_code == 204
    resp = await client.patch(location, content=b"late", headers={**OCTET, "Content-Range": "0-3"})
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_a_put_to_a_cancelled_upload_answers_404_and_stores_nothing(
    client: httpx.AsyncClient,
):
    data = b"late bytes"
    location = await start_upload(client, "up/cancel")
    assert (await client.delete(location)).status_code == 204
    resp = await client.put(with_digest(location, sha256(data)), content=data, headers=OCTET)
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    await _assert_absent(client, "up/cancel", sha256(data))


async def test_a_completed_upload_is_then_unknown(client: httpx.AsyncClient):
    data = b"complete me"
    location = await start_upload(client, "up/done")
    resp = await client.put(with_digest(location, sha256(data)), content=data, headers=OCTET)
    assert resp.status_code == 201
    assert_oci_error(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    resp = await client.patch(location, content=b"more", headers=OCTET)
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
async def test_an_unknown_upload_id_answers_404_blob_upload_unknown(
    client: httpx.AsyncClient, method: str
):
    await start_upload(client, "up/unknown")
    url = "/v2/up/unknown/blobs/uploads/7d6b0a3c-0c55-4f1c-9d7e-2f0a5d1e6b42"
    params = {"digest": sha256(b"x")} if method == "PUT" else None
    resp = await client.request(
        method, url, params=params, content=b"x" if method != "GET" else b""
    )
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_an_upload_id_that_is_not_a_uuid_answers_404_not_500(client: httpx.AsyncClient):
    await start_upload(client, "up/unknown")
    for upload_id in ("not-a-uuid", "%2e%2e", "0" * 300):
        resp = await client.get(f"/v2/up/unknown/blobs/uploads/{upload_id}")
        assert resp.status_code in (400, 404), f"{upload_id}: {resp.status_code}"


# --- bodies without Content-Length, and sessions across repositories ----------------------


async def _stream(data: bytes, piece: int = 7000):
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


async def test_a_patch_sent_with_chunked_transfer_encoding_is_appended(
    client: httpx.AsyncClient,
):
    data = blob_bytes("te-chunked", 50_000)
    digest = sha256(data)
    location = await start_upload(client, "up/te")
    resp = await client.patch(location, content=_stream(data[:30_000]), headers=OCTET)
    assert resp.status_code == 202
    assert resp.headers["range"] == "0-29999"
    resp = await client.put(
        with_digest(resp.headers["location"], digest), content=_stream(data[30_000:])
    )
    assert resp.status_code == 201
    await _assert_readable(client, "up/te", digest, data)


async def test_a_single_post_sent_with_chunked_transfer_encoding_is_stored(
    client: httpx.AsyncClient,
):
    data = blob_bytes("te-post", 40_000)
    digest = sha256(data)
    resp = await client.post(
        "/v2/up/te/blobs/uploads/", params={"digest": digest}, content=_stream(data)
    )
    assert resp.status_code == 201
    await _assert_readable(client, "up/te", digest, data)


async def test_an_upload_session_is_not_usable_through_another_repository(
    client: httpx.AsyncClient,
):
    data = b"session bytes"
    location = await start_upload(client, "up/owner")
    upload_id = location.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    await start_upload(client, "up/intruder")
    foreign = f"/v2/up/intruder/blobs/uploads/{upload_id}"
    assert_oci_error(await client.get(foreign), 404, "BLOB_UPLOAD_UNKNOWN")
    resp = await client.patch(foreign, content=data, headers=OCTET)
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    resp = await client.put(with_digest(foreign, sha256(data)), content=data, headers=OCTET)
    assert_oci_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")
    await _assert_absent(client, "up/intruder", sha256(data))
    # The owner's session is untouched.
    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["range"] == "0-0"


async def test_deleting_an_upload_twice_answers_404_the_second_time(
    client: httpx.AsyncClient,
):
    location = await start_upload(client, "up/cancel")
    assert (await client.delete(location)).status_code == 204
    assert_oci_error(await client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


async def test_a_closing_put_whose_chunk_does_not_start_at_the_offset_is_refused(
    client: httpx.AsyncClient,
):
    data = blob_bytes("put-gap", 3000)
    digest = sha256(data)
    location = await start_upload(client, "up/putgap")
    resp = await client.patch(
        location, content=data[:1000], headers={**OCTET, "Content-Range": "0-999"}
    )
    assert resp.status_code == 202
    resp = await client.put(
        with_digest(resp.headers["location"], digest),
        content=data[2000:],
        headers={**OCTET, "Content-Range": "2000-2999"},
    )
    assert resp.status_code in (400, 416), resp.status_code
    await _assert_absent(client, "up/putgap", digest)


async def test_a_single_post_of_a_blob_the_repository_already_has_answers_201(
    client: httpx.AsyncClient,
):
    data = blob_bytes("already", 100)
    digest = sha256(data)
    await push_blob(client, "up/already", data)
    resp = await client.post(
        "/v2/up/already/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTET
    )
    assert resp.status_code == 201
    assert resp.headers["docker-content-digest"] == digest


@pytest.mark.parametrize("saved", ["stale", "missing"])
async def test_a_chunk_after_a_lost_hash_state_rebuilds_it_from_the_stored_bytes(
    app: HavenApp, client: httpx.AsyncClient, saved: str
) -> None:
    """A node that died between storing a chunk and saving the hash state leaves a state
    for fewer bytes (or none): the next chunk must not resume from it."""
    chunks = [blob_bytes(f"lost-state-{i}", 100_000 + i) for i in range(3)]
    location = await start_upload(client, "lost/state")
    named = re.search(r"/uploads/([0-9a-f-]{36})", location)
    assert named is not None, location
    upload_id = named[1]
    location = location_path(await push_chunk(client, location, 0, chunks[0]))
    first = await app.metadata.get_upload(upload_id)
    assert first is not None and first.hash_state is not None
    location = location_path(await push_chunk(client, location, len(chunks[0]), chunks[1]))
    # As another node sees it: no state of this process, and the saved one stale or gone.
    app.services.uploads._states.clear()
    await app.metadata.save_upload_hash(upload_id, first.hash_state if saved == "stale" else None)
    location = location_path(
        await push_chunk(client, location, len(chunks[0]) + len(chunks[1]), chunks[2])
    )
    data = b"".join(chunks)
    done = await client.put(with_digest(location, sha256(data)))
    assert done.status_code == 201, done.text
    pulled = await client.get(f"/v2/lost/state/blobs/{sha256(data)}")
    assert pulled.content == data
