"""end-1 (GET /v2/), the API version header, the error body format and unsupported methods."""

from __future__ import annotations

import httpx
import pytest

from .helpers import (
    API_VERSION,
    API_VERSION_HEADER,
    OCI_MANIFEST,
    assert_oci_error,
    blob_bytes,
    make_image,
    push_image,
    registry_response,
    sha256,
    start_upload,
)


async def test_version_check_answers_200_with_an_empty_json_object(client: httpx.AsyncClient):
    resp = await client.get("/v2/")
    assert resp.status_code == 200
    assert resp.json() == {}
    assert "json" in resp.headers["content-type"]
    assert resp.headers[API_VERSION_HEADER] == API_VERSION


async def test_every_v2_response_carries_the_api_version_header(client: httpx.AsyncClient):
    image = make_image("headers")
    responses: list[httpx.Response] = []
    responses.append(await client.get("/v2/"))
    location = await start_upload(client, "hdr/repo")
    responses.append(await client.get(location))  # 204
    responses.append(
        await client.patch(location, content=b"abc", headers={"Content-Range": "0-2"})
    )  # 202
    responses.append(
        await client.patch(location, content=b"abc", headers={"Content-Range": "0-2"})
    )  # 416
    responses.append(await client.delete(location))  # 204
    responses.append(
        await client.put(
            "/v2/hdr/repo/manifests/x", content=b"not json", headers={"Content-Type": OCI_MANIFEST}
        )
    )  # 400
    put = await push_image(client, "hdr/repo", image, "v1")
    responses.append(put)  # 201
    responses.append(await client.get("/v2/hdr/repo/manifests/v1"))  # 200
    responses.append(await client.head("/v2/hdr/repo/manifests/v1"))  # 200, HEAD
    responses.append(
        await client.get(
            f"/v2/hdr/repo/blobs/{image.config_digest}", headers={"Range": "bytes=0-1"}
        )
    )  # 206
    responses.append(await client.get("/v2/hdr/repo/manifests/missing"))  # 404
    responses.append(await client.head(f"/v2/hdr/repo/blobs/{sha256(b'nothing')}"))  # 404
    responses.append(await client.get("/v2/hdr/repo/blobs/sha256:xyz"))  # 400
    responses.append(await client.get("/v2/UPPER/tags/list"))  # 400 / 404
    responses.append(await client.post("/v2/hdr/repo/manifests/v1"))  # 405
    responses.append(await client.get("/v2/hdr/repo/tags/list"))
    responses.append(await client.get("/v2/_catalog"))
    responses.append(await client.get(f"/v2/hdr/repo/referrers/{image.digest}"))
    for resp in map(registry_response, responses):
        assert resp.headers.get(API_VERSION_HEADER) == API_VERSION, (
            f"{resp.request.method} {resp.request.url} -> {resp.status_code} lacks the header"
        )


async def test_error_bodies_carry_code_message_and_detail(client: httpx.AsyncClient):
    resp = await client.get(f"/v2/some/repo/blobs/{sha256(b'absent')}")
    assert_oci_error(resp, 404, "BLOB_UNKNOWN")
    (entry,) = resp.json()["errors"]
    assert set(entry) >= {"code", "message", "detail"}
    assert isinstance(entry["message"], str) and entry["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/some/repo/manifests/latest"),
        ("PATCH", "/v2/some/repo/manifests/latest"),
        ("PUT", "/v2/some/repo/tags/list"),
        ("DELETE", "/v2/some/repo/tags/list"),
        ("POST", "/v2/_catalog"),
        ("DELETE", "/v2/"),
        ("PUT", f"/v2/some/repo/referrers/{sha256(b'x')}"),
        ("POST", f"/v2/some/repo/blobs/{sha256(b'x')}"),
    ],
)
async def test_a_method_the_route_does_not_allow_answers_405_unsupported(
    client: httpx.AsyncClient, method: str, path: str
):
    resp = await client.request(method, path, content=b"")
    assert_oci_error(resp, 405, "UNSUPPORTED")
    assert resp.headers.get(API_VERSION_HEADER) == API_VERSION


async def test_head_error_responses_have_no_body(client: httpx.AsyncClient):
    await push_image(client, "head/errors", make_image("h"), "t")
    for path in (
        f"/v2/head/errors/blobs/{sha256(blob_bytes('absent'))}",
        "/v2/head/errors/manifests/absent",
        f"/v2/head/errors/manifests/{sha256(b'absent')}",
    ):
        resp = await client.head(path)
        assert resp.status_code == 404, path
        assert resp.content == b""


async def test_head_of_the_version_check_answers_200(client: httpx.AsyncClient):
    resp = await client.head("/v2/")
    assert resp.status_code == 200
    assert resp.headers.get(API_VERSION_HEADER) == API_VERSION


async def test_an_unknown_v2_path_answers_404_with_the_version_header(
    client: httpx.AsyncClient,
):
    resp = await client.get("/v2/some/repo/nonsense/path")
    assert resp.status_code in (400, 404)
    assert resp.headers.get(API_VERSION_HEADER) == API_VERSION
