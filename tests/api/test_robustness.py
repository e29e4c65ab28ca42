"""Odd requests get a 4xx answer in the OCI error format, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .helpers import (
    API_VERSION,
    API_VERSION_HEADER,
    OCI_MANIFEST,
    assert_oci_error,
    blob_bytes,
    make_artifact,
    make_image,
    push_image,
    raw_asgi_request,
    sha256,
    start_upload,
)

ODD_TARGETS = [
    ("GET", "/v2/odd/repo/manifests/"),
    ("PUT", "/v2/odd/repo/manifests/"),
    ("GET", "/v2/odd/repo/blobs/"),
    ("GET", "/v2/odd/repo/blobs/uploads"),
    ("GET", "/v2/odd/repo/blobs/uploads/"),
    ("GET", "/v2/odd/repo/blobs/uploads/a/b"),
    ("GET", "/v2/odd/repo/tags/"),
    ("GET", "/v2/odd/repo/tags/list/"),
    ("GET", "/v2/odd/repo/referrers/"),
    ("GET", "/v2/odd/repo/manifests/" + "t" * 300),
    ("GET", "/v2/odd/repo/manifests/a%00b"),
    ("GET", "/v2/odd%00repo/tags/list"),
    ("GET", "/v2/%C3%A4/tags/list"),
    ("GET", "/v2/odd/repo/manifests/%C3%A4"),
    ("GET", "/v2/odd/repo/manifests/%ff%fe"),
    ("GET", "/v2/%ff/tags/list"),
    ("GET", "/v2/" + "a/" * 200 + "tags/list"),
    ("GET", "/v2/odd/repo/blobs/sha256:" + "a" * 10_000),
    ("POST", "/v2/odd/repo/blobs/uploads/?digest="),
    ("POST", "/v2/odd/repo/blobs/uploads/?mount="),
]

ODD_QUERIES = [
    ("GET", "/v2/odd/repo/tags/list?n=1&n=2"),
    ("GET", "/v2/odd/repo/tags/list?last=%00"),
    ("GET", "/v2/_catalog?last=%ff"),
    ("GET", "/v2/odd/repo/referrers/" + sha256(b"x") + "?artifactType=%00"),
    ("POST", "/v2/odd/repo/blobs/uploads/?mount=&from="),
    ("GET", "/v2/odd/repo/tags/list?unknown=1"),
    ("GET", "/v2/_catalog?last=%00"),
    ("GET", "/v2/_catalog?n=2&last=a%00b"),
    ("GET", "/v2/odd/repo/tags/list?n=2&last=a%00b"),
    ("POST", "/v2/odd/repo/blobs/uploads/?mount=" + sha256(b"x") + "&from=a%00b"),
]


@pytest.mark.parametrize(
    ("method", "target"), ODD_TARGETS, ids=[f"{m}:{t[:80]}" for m, t in ODD_TARGETS]
)
async def test_odd_paths_and_queries_answer_4xx_never_500(
    client: httpx.AsyncClient, app: Any, method: str, target: str
):
    await push_image(client, "odd/repo", make_image("odd"), "latest")
    resp = await raw_asgi_request(app, method, target)
    assert 400 <= resp.status_code < 500, f"{method} {target} -> {resp.status_code} {resp.text}"
    assert resp.headers.get(API_VERSION_HEADER.lower()) == API_VERSION


@pytest.mark.parametrize(
    ("method", "target"), ODD_QUERIES, ids=[f"{m}:{t[:80]}" for m, t in ODD_QUERIES]
)
async def test_odd_query_strings_never_answer_500(
    client: httpx.AsyncClient, app: Any, method: str, target: str
):
    await push_image(client, "odd/repo", make_image("odd"), "latest")
    resp = await raw_asgi_request(app, method, target)
    assert resp.status_code < 500, f"{method} {target} -> {resp.status_code} {resp.text}"
    assert resp.headers.get(API_VERSION_HEADER.lower()) == API_VERSION


async def test_a_layer_whose_upload_was_never_completed_does_not_satisfy_a_manifest(
    client: httpx.AsyncClient,
):
    image = make_image("unfinished")
    for blob in image.blobs[:-1]:
        await client.post(
            "/v2/odd/unfinished/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
        )
    last = image.blobs[-1]
    location = await start_upload(client, "odd/unfinished")
    resp = await client.patch(location, content=last.data)
    assert resp.status_code == 202
    resp = await client.put(
        "/v2/odd/unfinished/manifests/v1",
        content=image.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


async def test_pushing_a_referrer_twice_lists_it_once(client: httpx.AsyncClient):
    base = make_image("dup-base")
    await push_image(client, "odd/dup", base, "v1")
    sig = make_artifact("dup-sig", "application/vnd.example.signature.v1", subject=base)
    await push_image(client, "odd/dup", sig)
    await push_image(client, "odd/dup", sig, "sig")
    resp = await client.get(f"/v2/odd/dup/referrers/{base.digest}")
    assert [d["digest"] for d in resp.json()["manifests"]] == [sig.digest]


async def test_a_manifest_body_that_is_a_blob_digest_is_not_confused_with_a_blob(
    client: httpx.AsyncClient,
):
    image = make_image("blob-vs-manifest")
    await push_image(client, "odd/kinds", image, "v1")
    # A blob is not a manifest, and a manifest pushed as a manifest is not required to be a blob.
    resp = await client.get(f"/v2/odd/kinds/manifests/{image.config_digest}")
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN")


async def test_a_blob_upload_of_a_manifest_does_not_make_it_a_manifest(
    client: httpx.AsyncClient,
):
    image = make_image("blob-not-manifest")
    await client.post(
        "/v2/odd/kinds/blobs/uploads/", params={"digest": image.digest}, content=image.manifest
    )
    await client.post(
        "/v2/odd/kinds/blobs/uploads/",
        params={"digest": sha256(blob_bytes("x"))},
        content=blob_bytes("x"),
    )
    resp = await client.get(f"/v2/odd/kinds/manifests/{image.digest}")
    assert_oci_error(resp, 404, ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))


@pytest.mark.parametrize(
    "where", ["annotation-value", "annotation-key", "artifact-type", "config-media-type"]
)
async def test_a_referrer_with_a_nul_character_in_its_json_strings_never_answers_500(
    client: httpx.AsyncClient, where: str
):
    # JSON strings may carry U+0000 as the escape \u0000; storing and listing must not crash.
    base = make_image("nul-base")
    await push_image(client, "odd/nul", base, "v1")
    if where == "config-media-type":
        referrer = make_image("nul-config", config_media_type="application/x\x00y", subject=base)
    elif where == "artifact-type":
        referrer = make_artifact("nul-at", "application/x\x00y", subject=base)
    elif where == "annotation-key":
        referrer = make_artifact(
            "nul-key", "application/x", subject=base, annotations={"k\x00": "v"}
        )
    else:
        referrer = make_artifact(
            "nul-val", "application/x", subject=base, annotations={"k": "v\x00"}
        )
    assert b"\\u0000" in referrer.manifest
    for blob in referrer.blobs:
        await client.post(
            "/v2/odd/nul/blobs/uploads/", params={"digest": blob.digest}, content=blob.data
        )
    resp = await client.put(
        f"/v2/odd/nul/manifests/{referrer.digest}",
        content=referrer.manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status_code in (201, 400), f"{resp.status_code} {resp.text[:300]}"
    if resp.status_code == 400:
        assert_oci_error(resp, 400, "MANIFEST_INVALID")
        return
    got = await client.get(f"/v2/odd/nul/manifests/{referrer.digest}")
    assert got.content == referrer.manifest
    listed = await client.get(f"/v2/odd/nul/referrers/{base.digest}")
    assert listed.status_code == 200, listed.text[:300]
    (desc,) = listed.json()["manifests"]
    assert desc["digest"] == referrer.digest
    if where in ("annotation-key", "annotation-value"):
        assert desc["annotations"] == referrer.json["annotations"]
    else:
        assert "\x00" in desc["artifactType"]
