"""Repository names: the spec's `<name>` grammar, its length limit, and path traversal."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .helpers import (
    assert_oci_error,
    make_image,
    push_image,
    raw_asgi_request,
    sha256,
    start_upload,
)

VALID_NAMES = [
    "a",
    "0",
    "library/ubuntu",
    "a.b",
    "a_b",
    "a__b",
    "a-b",
    "a---b",
    "a-b.c_d__e",
    "deep/nested/path/to/some/repo",
    "9lives/v2.0-beta",
]

INVALID_NAMES = [
    "Upper",
    "library/Ubuntu",
    "-leading",
    "trailing-",
    ".dot",
    "a..b",
    "a___b",
    "a_-b",
    "a.-b",
    "with space",
    "a+b",
    "a@b",
]


@pytest.mark.parametrize("name", VALID_NAMES)
async def test_names_matching_the_spec_grammar_can_push_and_pull(
    client: httpx.AsyncClient, name: str
):
    image = make_image(f"valid-{name}")
    await push_image(client, name, image, "latest")
    resp = await client.get(f"/v2/{name}/manifests/latest")
    assert resp.status_code == 200
    assert resp.content == image.manifest
    tags = await client.get(f"/v2/{name}/tags/list")
    assert tags.json() == {"name": name, "tags": ["latest"]}


def _assert_name_invalid_mentions_rule(resp: httpx.Response) -> None:
    entry = assert_oci_error(resp, 400, "NAME_INVALID")
    message = entry.get("message", "")
    assert "a-z0-9" in message or "lowercase" in message.lower() or "255" in message, message


@pytest.mark.parametrize("name", INVALID_NAMES)
async def test_names_outside_the_spec_grammar_answer_400_name_invalid_with_the_rule(
    client: httpx.AsyncClient, name: str
):
    image = make_image("invalid-name")
    resp = await client.put(
        f"/v2/{name}/manifests/latest",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )
    _assert_name_invalid_mentions_rule(resp)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", "/tags/list"),
        ("GET", "/manifests/latest"),
        ("HEAD", "/manifests/latest"),
        ("PUT", "/manifests/latest"),
        ("DELETE", "/manifests/latest"),
        ("GET", f"/blobs/{sha256(b'x')}"),
        ("DELETE", f"/blobs/{sha256(b'x')}"),
        ("POST", "/blobs/uploads/"),
        ("GET", f"/referrers/{sha256(b'x')}"),
    ],
)
async def test_an_invalid_name_is_rejected_on_every_endpoint(
    client: httpx.AsyncClient, method: str, suffix: str
):
    kwargs: dict[str, Any] = {}
    if method == "PUT":
        image = make_image("every-endpoint")
        kwargs = {"content": image.manifest, "headers": {"Content-Type": image.media_type}}
    resp = await client.request(method, f"/v2/Bad_Name{suffix}", **kwargs)
    if method == "HEAD":
        assert resp.status_code == 400
        assert resp.content == b""
    else:
        assert_oci_error(resp, 400, "NAME_INVALID")


async def test_a_name_of_255_characters_is_accepted(client: httpx.AsyncClient):
    name = "/".join(["a" * 63] * 4)  # 4 * 63 + 3 slashes = 255
    assert len(name) == 255
    location = await start_upload(client, name)
    assert location
    image = make_image("long-name")
    await push_image(client, name, image, "latest")
    resp = await client.get(f"/v2/{name}/manifests/latest")
    assert resp.status_code == 200


async def test_a_name_of_256_characters_answers_400_name_invalid(client: httpx.AsyncClient):
    name = "/".join(["a" * 63] * 4) + "b"
    assert len(name) == 256
    resp = await client.post(f"/v2/{name}/blobs/uploads/")
    entry = assert_oci_error(resp, 400, "NAME_INVALID")
    assert "255" in entry.get("message", "") or "256" in entry.get("message", "")
    image = make_image("too-long")
    resp = await client.put(
        f"/v2/{name}/manifests/latest",
        content=image.manifest,
        headers={"Content-Type": image.media_type},
    )
    assert_oci_error(resp, 400, "NAME_INVALID")


@pytest.mark.parametrize("name", ["team/manifests", "x/tags", "blobs/uploads", "y/referrers"])
async def test_names_containing_route_words_still_address_the_right_repository(
    client: httpx.AsyncClient, name: str
):
    image = make_image(f"route-{name}")
    await push_image(client, name, image, "latest")
    resp = await client.get(f"/v2/{name}/manifests/latest")
    assert resp.status_code == 200
    assert resp.content == image.manifest
    blob = await client.get(f"/v2/{name}/blobs/{image.config_digest}")
    assert blob.status_code == 200
    assert blob.content == image.config.data  # type: ignore[union-attr]
    tags = await client.get(f"/v2/{name}/tags/list")
    assert tags.json() == {"name": name, "tags": ["latest"]}


@pytest.mark.parametrize(
    "target",
    [
        "/v2/../x/manifests/latest",
        "/v2/a/../x/manifests/latest",
        "/v2/a/%2e%2e/x/tags/list",
        "/v2/a/%2E%2E/x/manifests/latest",
        "/v2/./x/tags/list",
        "/v2/x/./tags/list",
        "/v2/a/..%2fx/tags/list",
        "/v2/a%2f..%2fx/tags/list",
        "/v2/X/tags/list",
        "/v2/x//tags/list",
        "/v2//x/tags/list",
    ],
)
async def test_path_traversal_and_malformed_paths_never_reach_a_repository(
    client: httpx.AsyncClient, app: Any, target: str
):
    image = make_image("traversal")
    await push_image(client, "x", image, "latest")
    resp = await raw_asgi_request(app, "GET", target)
    assert resp.status_code in (400, 404), f"{target} -> {resp.status_code} {resp.text[:200]}"
    if resp.status_code == 400:
        assert_oci_error(resp, 400, "NAME_INVALID")  # type: ignore[arg-type]


async def test_uppercase_names_never_alias_the_lowercase_repository(client: httpx.AsyncClient):
    image = make_image("case")
    await push_image(client, "library/alpine", image, "latest")
    for name in ("Library/alpine", "library/ALPINE", "LIBRARY/ALPINE"):
        resp = await client.get(f"/v2/{name}/manifests/latest")
        assert resp.status_code in (400, 404), name
        if resp.status_code == 400:
            assert_oci_error(resp, 400, "NAME_INVALID")
