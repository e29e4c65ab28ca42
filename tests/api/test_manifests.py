"""end-3 and end-7: pushing and pulling manifests of every supported kind."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from .helpers import (
    DOCKER_FOREIGN_LAYER,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    MALFORMED_DIGEST_REFERENCES,
    MIB,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    OCI_NONDISTRIBUTABLE_LAYER,
    Blob,
    assert_oci_error,
    blob_bytes,
    canonical,
    location_path,
    make_artifact,
    make_image,
    make_index,
    push_blob,
    push_blobs,
    push_image,
    push_manifest,
    sha256,
    sha512,
)


async def _get(client: httpx.AsyncClient, repo: str, ref: str) -> httpx.Response:
    return await client.get(f"/v2/{repo}/manifests/{ref}")


# --- push and pull ------------------------------------------------------------------------


async def test_put_manifest_by_tag_answers_201_with_location_and_digest(
    client: httpx.AsyncClient,
):
    image = make_image("put-tag")
    await push_blobs(client, "img/app", image.blobs)
    resp = await push_manifest(client, "img/app", "v1", image.manifest)
    assert resp.status_code == 201
    assert resp.headers["docker-content-digest"] == image.digest
    assert location_path(resp).startswith("/v2/img/app/manifests/")
    pulled = await client.get(resp.headers["location"])
    assert pulled.status_code == 200
    assert pulled.content == image.manifest


@pytest.mark.parametrize("by", ["tag", "digest"])
async def test_get_manifest_returns_the_exact_bytes_type_digest_and_length(
    client: httpx.AsyncClient, by: str
):
    image = make_image("get")
    await push_image(client, "img/get", image, "latest")
    resp = await _get(client, "img/get", "latest" if by == "tag" else image.digest)
    assert resp.status_code == 200
    assert resp.content == image.manifest
    assert resp.headers["content-type"] == OCI_MANIFEST
    assert resp.headers["docker-content-digest"] == image.digest
    assert int(resp.headers["content-length"]) == len(image.manifest)


@pytest.mark.parametrize("by", ["tag", "digest"])
async def test_head_manifest_gives_the_get_headers_and_no_body(client: httpx.AsyncClient, by: str):
    image = make_image("head")
    await push_image(client, "img/head", image, "latest")
    ref = "latest" if by == "tag" else image.digest
    resp = await client.head(f"/v2/img/head/manifests/{ref}")
    assert resp.status_code == 200
    assert resp.content == b""
    assert resp.headers["content-type"] == OCI_MANIFEST
    assert resp.headers["docker-content-digest"] == image.digest
    assert int(resp.headers["content-length"]) == len(image.manifest)


async def test_a_manifest_with_odd_whitespace_and_key_order_is_stored_byte_exact(
    client: httpx.AsyncClient,
):
    image = make_image("whitespace")
    await push_blobs(client, "img/ws", image.blobs)
    doc = image.json
    reordered: dict[str, Any] = {
        "layers": doc["layers"],
        "annotations": {"note": "ünïcödé ✓", "empty": ""},
        "config": doc["config"],
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
    }
    body = (
        b"\n  "
        + json.dumps(reordered, indent="\t", separators=(" ,  ", " :   "), ensure_ascii=False)
        .replace("\n", "\r\n")
        .encode()
        + b"\n\n   \t"
    )
    resp = await push_manifest(client, "img/ws", "odd", body)
    assert resp.status_code == 201, resp.text
    assert resp.headers["docker-content-digest"] == sha256(body)
    by_tag = await _get(client, "img/ws", "odd")
    assert by_tag.content == body
    by_digest = await _get(client, "img/ws", sha256(body))
    assert by_digest.content == body
    assert by_digest.headers["docker-content-digest"] == sha256(body)


async def test_a_manifest_without_a_media_type_field_takes_the_content_type(
    client: httpx.AsyncClient,
):
    image = make_image("no-media-type", include_media_type=False)
    await push_image(client, "img/nomt", image, "v1")
    resp = await _get(client, "img/nomt", "v1")
    assert resp.content == image.manifest
    assert resp.headers["content-type"] == OCI_MANIFEST


async def test_a_content_type_with_parameters_is_accepted(client: httpx.AsyncClient):
    image = make_image("ct-params")
    await push_blobs(client, "img/params", image.blobs)
    resp = await push_manifest(
        client, "img/params", "v1", image.manifest, OCI_MANIFEST + "; charset=utf-8"
    )
    assert resp.status_code == 201
    got = await _get(client, "img/params", "v1")
    assert got.headers["content-type"].split(";")[0].strip() == OCI_MANIFEST


async def test_a_docker_schema2_manifest_round_trips_with_its_media_type(
    client: httpx.AsyncClient,
):
    image = make_image("docker", media_type=DOCKER_MANIFEST, layers=2)
    await push_image(client, "img/docker", image, "v2")
    resp = await _get(client, "img/docker", "v2")
    assert resp.status_code == 200
    assert resp.content == image.manifest
    assert resp.headers["content-type"] == DOCKER_MANIFEST
    head = await client.head(f"/v2/img/docker/manifests/{image.digest}")
    assert head.headers["content-type"] == DOCKER_MANIFEST


async def test_a_docker_manifest_list_round_trips_with_its_media_type(
    client: httpx.AsyncClient,
):
    children = [make_image(f"dl-{i}", media_type=DOCKER_MANIFEST) for i in range(2)]
    index = make_index(children, media_type=DOCKER_MANIFEST_LIST)
    await push_image(client, "img/dlist", index, "multi")
    resp = await _get(client, "img/dlist", "multi")
    assert resp.status_code == 200
    assert resp.content == index.manifest
    assert resp.headers["content-type"] == DOCKER_MANIFEST_LIST
    for child in children:
        got = await _get(client, "img/dlist", child.digest)
        assert got.content == child.manifest
        assert got.headers["content-type"] == DOCKER_MANIFEST


async def test_an_oci_index_round_trips_and_its_children_pull_by_digest(
    client: httpx.AsyncClient,
):
    children = [make_image(f"idx-{i}") for i in range(3)]
    index = make_index(children, annotations={"org.example": "multi"})
    await push_image(client, "img/index", index, "multi")
    resp = await _get(client, "img/index", "multi")
    assert resp.status_code == 200
    assert resp.content == index.manifest
    assert resp.headers["content-type"] == OCI_INDEX
    assert resp.headers["docker-content-digest"] == index.digest
    for child in children:
        got = await _get(client, "img/index", child.digest)
        assert got.status_code == 200
        assert got.content == child.manifest


async def test_an_index_of_indexes_is_accepted(client: httpx.AsyncClient):
    leaf = make_image("nested-leaf")
    inner = make_index([leaf])
    outer = make_index([inner], platforms=False)
    await push_image(client, "img/nested", outer, "top")
    assert (await _get(client, "img/nested", "top")).content == outer.manifest


async def test_an_artifact_with_artifact_type_and_empty_config_round_trips(
    client: httpx.AsyncClient,
):
    artifact = make_artifact("art", "application/vnd.example.thing.v1")
    await push_image(client, "img/artifact", artifact, "thing")
    resp = await _get(client, "img/artifact", "thing")
    assert resp.status_code == 200
    assert resp.content == artifact.manifest
    assert resp.headers["content-type"] == OCI_MANIFEST


async def test_put_manifest_by_matching_digest_answers_201_and_creates_no_tag(
    client: httpx.AsyncClient,
):
    image = make_image("by-digest")
    await push_blobs(client, "img/bydigest", image.blobs)
    resp = await push_manifest(client, "img/bydigest", image.digest, image.manifest)
    assert resp.status_code == 201
    assert resp.headers["docker-content-digest"] == image.digest
    assert location_path(resp) == f"/v2/img/bydigest/manifests/{image.digest}"
    got = await _get(client, "img/bydigest", image.digest)
    assert got.content == image.manifest
    tags = await client.get("/v2/img/bydigest/tags/list")
    assert tags.status_code == 200
    assert tags.json()["tags"] == []


async def test_put_manifest_by_digest_whose_bytes_do_not_match_answers_digest_invalid(
    client: httpx.AsyncClient,
):
    image = make_image("digest-mismatch")
    await push_blobs(client, "img/mismatch", image.blobs)
    wrong = sha256(image.manifest + b" ")
    resp = await push_manifest(client, "img/mismatch", wrong, image.manifest)
    assert_oci_error(resp, 400, "DIGEST_INVALID")
    assert (await _get(client, "img/mismatch", wrong)).status_code == 404
    assert (await _get(client, "img/mismatch", image.digest)).status_code == 404


@pytest.mark.parametrize("digest", MALFORMED_DIGEST_REFERENCES)
async def test_put_manifest_by_a_malformed_digest_answers_400_digest_invalid(
    client: httpx.AsyncClient, digest: str
):
    image = make_image("malformed-put")
    await push_blobs(client, "img/malformed", image.blobs)
    resp = await push_manifest(client, "img/malformed", digest, image.manifest)
    assert_oci_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", MALFORMED_DIGEST_REFERENCES)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_malformed_manifest_digest_answers_400_digest_invalid(
    client: httpx.AsyncClient, method: str, digest: str
):
    await push_image(client, "img/malformed", make_image("m"), "latest")
    resp = await client.request(method, f"/v2/img/malformed/manifests/{digest}")
    assert_oci_error(resp, 400, "DIGEST_INVALID")


@pytest.mark.parametrize("digest", MALFORMED_DIGEST_REFERENCES)
async def test_head_with_a_malformed_manifest_digest_answers_400(
    client: httpx.AsyncClient, digest: str
):
    await push_image(client, "img/malformed", make_image("m"), "latest")
    resp = await client.head(f"/v2/img/malformed/manifests/{digest}")
    assert resp.status_code == 400
    assert resp.content == b""


# --- unknown ------------------------------------------------------------------------------


async def test_get_of_an_unknown_tag_answers_404_manifest_unknown(client: httpx.AsyncClient):
    await push_image(client, "img/unknown", make_image("u"), "present")
    assert_oci_error(await _get(client, "img/unknown", "absent"), 404, "MANIFEST_UNKNOWN")


async def test_get_of_an_unknown_digest_answers_404_manifest_unknown(client: httpx.AsyncClient):
    await push_image(client, "img/unknown", make_image("u"), "present")
    resp = await _get(client, "img/unknown", sha256(b"no such manifest"))
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN")


async def test_get_of_a_manifest_in_an_unknown_repository_answers_404(
    client: httpx.AsyncClient,
):
    resp = await _get(client, "no/such/repo", "latest")
    assert_oci_error(resp, 404, ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))


async def test_head_of_an_unknown_manifest_answers_404_with_no_body(client: httpx.AsyncClient):
    await push_image(client, "img/unknown", make_image("u"), "present")
    resp = await client.head("/v2/img/unknown/manifests/absent")
    assert resp.status_code == 404
    assert resp.content == b""


async def test_a_manifest_is_not_readable_through_another_repository(
    client: httpx.AsyncClient,
):
    image = make_image("iso")
    await push_image(client, "iso/a", image, "v1")
    await push_image(client, "iso/b", make_image("other"), "v1")
    assert_oci_error(await _get(client, "iso/b", image.digest), 404, "MANIFEST_UNKNOWN")
    got = await _get(client, "iso/b", "v1")
    assert got.content != image.manifest


# --- references to blobs and manifests ----------------------------------------------------


async def test_a_manifest_whose_config_blob_is_missing_answers_manifest_blob_unknown(
    client: httpx.AsyncClient,
):
    image = make_image("no-config")
    for layer in image.layers:
        await push_blob(client, "ref/missing", layer.data)
    resp = await push_manifest(client, "ref/missing", "v1", image.manifest)
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")
    assert (await _get(client, "ref/missing", "v1")).status_code == 404


async def test_a_manifest_whose_layer_blob_is_missing_answers_manifest_blob_unknown(
    client: httpx.AsyncClient,
):
    image = make_image("no-layer", layers=3)
    await push_blob(client, "ref/missing", image.config.data)  # type: ignore[union-attr]
    for layer in image.layers[:2]:
        await push_blob(client, "ref/missing", layer.data)
    resp = await push_manifest(client, "ref/missing", "v1", image.manifest)
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


async def test_blobs_present_only_in_another_repository_do_not_satisfy_a_manifest(
    client: httpx.AsyncClient,
):
    image = make_image("other-repo-blobs")
    await push_blobs(client, "ref/owner", image.blobs)
    resp = await push_manifest(client, "ref/stranger", "v1", image.manifest)
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


async def test_a_docker_manifest_whose_layer_is_missing_answers_manifest_blob_unknown(
    client: httpx.AsyncClient,
):
    image = make_image("docker-missing", media_type=DOCKER_MANIFEST)
    await push_blob(client, "ref/docker", image.config.data)  # type: ignore[union-attr]
    resp = await push_manifest(client, "ref/docker", "v1", image.manifest, DOCKER_MANIFEST)
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
async def test_an_index_whose_child_manifest_is_missing_answers_manifest_blob_unknown(
    client: httpx.AsyncClient, media_type: str
):
    child_type = DOCKER_MANIFEST if media_type == DOCKER_MANIFEST_LIST else OCI_MANIFEST
    present = make_image("child-present", media_type=child_type)
    absent = make_image("child-absent", media_type=child_type)
    await push_image(client, "ref/index", present)
    await push_blobs(client, "ref/index", absent.blobs)  # blobs, but not the manifest itself
    index = make_index([present, absent], media_type=media_type)
    resp = await push_manifest(client, "ref/index", "multi", index.manifest, media_type)
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


async def test_an_index_whose_child_is_only_in_another_repository_is_rejected(
    client: httpx.AsyncClient,
):
    child = make_image("child-elsewhere")
    await push_image(client, "ref/elsewhere", child)
    index = make_index([child])
    resp = await push_manifest(client, "ref/here", "multi", index.manifest, OCI_INDEX)
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize(
    ("media_type", "layer_type"),
    [(OCI_MANIFEST, OCI_NONDISTRIBUTABLE_LAYER), (DOCKER_MANIFEST, DOCKER_FOREIGN_LAYER)],
)
async def test_a_non_distributable_layer_with_urls_is_accepted_without_its_blob(
    client: httpx.AsyncClient, media_type: str, layer_type: str
):
    image = make_image("foreign", media_type=media_type)
    foreign = Blob(blob_bytes("foreign-layer", 4096), layer_type)
    doc = image.json
    doc["layers"].append(foreign.descriptor(urls=["https://example.invalid/layers/foreign.tar.gz"]))
    body = canonical(doc)
    await push_blobs(client, "ref/foreign", image.blobs)
    resp = await push_manifest(client, "ref/foreign", "v1", body, media_type)
    assert resp.status_code == 201, resp.text
    assert (await _get(client, "ref/foreign", "v1")).content == body


async def test_a_non_distributable_layer_without_urls_still_needs_its_blob(
    client: httpx.AsyncClient,
):
    image = make_image("foreign-no-urls")
    foreign = Blob(blob_bytes("foreign-layer-2", 512), OCI_NONDISTRIBUTABLE_LAYER)
    doc = image.json
    doc["layers"].append(foreign.descriptor())
    await push_blobs(client, "ref/foreign", image.blobs)
    resp = await push_manifest(client, "ref/foreign", "v1", canonical(doc))
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("field", ["config", "layer"])
async def test_a_descriptor_size_that_differs_from_the_blob_answers_manifest_invalid(
    client: httpx.AsyncClient, field: str
):
    image = make_image("bad-size")
    await push_blobs(client, "ref/size", image.blobs)
    doc = image.json
    target = doc["config"] if field == "config" else doc["layers"][0]
    target["size"] += 1
    resp = await push_manifest(client, "ref/size", "v1", canonical(doc))
    assert_oci_error(resp, 400, "MANIFEST_INVALID")


async def test_an_index_child_descriptor_with_the_wrong_size_answers_manifest_invalid(
    client: httpx.AsyncClient,
):
    child = make_image("bad-child-size")
    await push_image(client, "ref/size", child)
    desc = child.descriptor()
    desc["size"] -= 1
    body = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]})
    resp = await push_manifest(client, "ref/size", "multi", body, OCI_INDEX)
    assert_oci_error(resp, 400, "MANIFEST_INVALID")


async def test_a_descriptor_with_a_malformed_digest_answers_400(client: httpx.AsyncClient):
    image = make_image("bad-desc-digest")
    await push_blobs(client, "ref/baddesc", image.blobs)
    doc = image.json
    doc["layers"][0]["digest"] = "sha256:not-hex"
    resp = await push_manifest(client, "ref/baddesc", "v1", canonical(doc))
    assert_oci_error(resp, 400, ("MANIFEST_INVALID", "DIGEST_INVALID"))


# --- malformed manifests ------------------------------------------------------------------


def _valid_doc() -> dict[str, Any]:
    return make_image("malformed-base").json


MALFORMED_BODIES: dict[str, bytes] = {
    "not-json": b"this is not json",
    "truncated-json": canonical(_valid_doc())[:-5],
    "empty-body": b"",
    "json-array": b"[]",
    "json-string": b'"manifest"',
    "schema-version-1": canonical({**_valid_doc(), "schemaVersion": 1}),
    "schema-version-3": canonical({**_valid_doc(), "schemaVersion": 3}),
    "schema-version-string": canonical({**_valid_doc(), "schemaVersion": "2"}),
    "schema-version-missing": canonical(
        {k: v for k, v in _valid_doc().items() if k != "schemaVersion"}
    ),
    "config-missing": canonical({k: v for k, v in _valid_doc().items() if k != "config"}),
    "config-not-object": canonical({**_valid_doc(), "config": "sha256:abc"}),
    "layers-not-list": canonical({**_valid_doc(), "layers": {"a": 1}}),
    "layer-without-digest": canonical(
        {**_valid_doc(), "layers": [{"mediaType": OCI_LAYER, "size": 1}]}
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BODIES))
async def test_a_malformed_manifest_answers_400_manifest_invalid(
    client: httpx.AsyncClient, case: str
):
    image = make_image("malformed-base")
    await push_blobs(client, "bad/manifest", image.blobs)
    resp = await push_manifest(client, "bad/manifest", "v1", MALFORMED_BODIES[case])
    assert_oci_error(resp, 400, "MANIFEST_INVALID")
    assert (await _get(client, "bad/manifest", "v1")).status_code == 404


async def test_an_index_without_manifests_answers_manifest_invalid(client: httpx.AsyncClient):
    body = canonical({"schemaVersion": 2, "mediaType": OCI_INDEX})
    resp = await push_manifest(client, "bad/index", "v1", body, OCI_INDEX)
    assert_oci_error(resp, 400, "MANIFEST_INVALID")


@pytest.mark.parametrize(
    ("body_type", "header_type"),
    [
        (OCI_MANIFEST, OCI_INDEX),
        (OCI_MANIFEST, DOCKER_MANIFEST),
        (DOCKER_MANIFEST, OCI_MANIFEST),
        (OCI_INDEX, OCI_MANIFEST),
    ],
)
async def test_a_body_media_type_disagreeing_with_content_type_answers_manifest_invalid(
    client: httpx.AsyncClient, body_type: str, header_type: str
):
    if body_type == OCI_INDEX:
        child = make_image("mt-child")
        await push_image(client, "bad/mediatype", child)
        manifest = make_index([child])
    else:
        manifest = make_image("mt", media_type=body_type)
        await push_blobs(client, "bad/mediatype", manifest.blobs)
    resp = await push_manifest(client, "bad/mediatype", "v1", manifest.manifest, header_type)
    assert_oci_error(resp, 400, "MANIFEST_INVALID")


# --- size limit ---------------------------------------------------------------------------


def _padded(body: bytes, size: int) -> bytes:
    assert len(body) <= size
    return body + b" " * (size - len(body))


async def test_a_manifest_of_exactly_4_mib_is_accepted(client: httpx.AsyncClient):
    image = make_image("four-mib")
    await push_blobs(client, "big/manifest", image.blobs)
    body = _padded(image.manifest, 4 * MIB)
    resp = await push_manifest(client, "big/manifest", "v1", body)
    assert resp.status_code == 201, resp.text[:300]
    got = await _get(client, "big/manifest", "v1")
    assert got.content == body


async def test_a_manifest_over_4_mib_answers_413_size_invalid(client: httpx.AsyncClient):
    image = make_image("over-four-mib")
    await push_blobs(client, "big/manifest", image.blobs)
    body = _padded(image.manifest, 4 * MIB + 1)
    resp = await push_manifest(client, "big/manifest", "v1", body)
    assert_oci_error(resp, 413, "SIZE_INVALID")
    assert (await _get(client, "big/manifest", "v1")).status_code == 404


async def test_a_large_manifest_with_many_layers_is_accepted(client: httpx.AsyncClient):
    image = make_image("many-layers", layers=300, layer_size=16)
    await push_image(client, "big/layers", image, "v1")
    assert (await _get(client, "big/layers", "v1")).content == image.manifest


# --- tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag", ["-leading-dash", ".leading-dot", "a" * 129, "has+plus", "colon:tag", "ä"]
)
async def test_put_manifest_with_an_invalid_tag_answers_400_tag_invalid(
    client: httpx.AsyncClient, tag: str
):
    image = make_image("bad-tag")
    await push_blobs(client, "tags/bad", image.blobs)
    resp = await push_manifest(client, "tags/bad", tag, image.manifest)
    if ":" in tag:
        # Reads as a (malformed) digest reference.
        assert_oci_error(resp, 400, ("TAG_INVALID", "DIGEST_INVALID"))
        return
    entry = assert_oci_error(resp, 400, "TAG_INVALID")
    message = entry.get("message", "")
    assert "128" in message or "a-zA-Z0-9" in message, message


@pytest.mark.parametrize(
    "tag", ["a", "_underscore", "UPPER", "v1.2.3-rc.1_build", "0", "a" * 128, "x-._y"]
)
async def test_put_manifest_with_a_valid_tag_edge_case_is_accepted(
    client: httpx.AsyncClient, tag: str
):
    image = make_image("good-tag")
    await push_image(client, "tags/good", image, tag)
    got = await _get(client, "tags/good", tag)
    assert got.status_code == 200
    assert got.content == image.manifest


async def test_tags_are_case_sensitive(client: httpx.AsyncClient):
    lower = make_image("lower")
    upper = make_image("upper")
    await push_image(client, "tags/case", lower, "latest")
    await push_image(client, "tags/case", upper, "LATEST")
    assert (await _get(client, "tags/case", "latest")).content == lower.manifest
    assert (await _get(client, "tags/case", "LATEST")).content == upper.manifest


async def test_pushing_another_manifest_to_a_tag_moves_the_tag(client: httpx.AsyncClient):
    first = make_image("first")
    second = make_image("second")
    await push_image(client, "tags/move", first, "latest")
    await push_image(client, "tags/move", second, "latest")
    got = await _get(client, "tags/move", "latest")
    assert got.content == second.manifest
    assert got.headers["docker-content-digest"] == second.digest
    # The old manifest is still there by digest.
    assert (await _get(client, "tags/move", first.digest)).content == first.manifest


async def test_one_manifest_may_carry_several_tags(client: httpx.AsyncClient):
    image = make_image("multi-tag")
    await push_image(client, "tags/multi", image, "a")
    for tag in ("b", "c"):
        resp = await push_manifest(client, "tags/multi", tag, image.manifest)
        assert resp.status_code == 201
        assert resp.headers["docker-content-digest"] == image.digest
    for tag in ("a", "b", "c"):
        assert (await _get(client, "tags/multi", tag)).content == image.manifest


async def test_pushing_the_same_manifest_twice_is_idempotent(client: httpx.AsyncClient):
    image = make_image("twice")
    first = await push_image(client, "tags/twice", image, "v1")
    second = await push_manifest(client, "tags/twice", "v1", image.manifest)
    assert second.status_code == 201
    assert second.headers["docker-content-digest"] == first.headers["docker-content-digest"]


# --- subject ------------------------------------------------------------------------------


async def test_a_manifest_with_a_subject_answers_with_oci_subject(client: httpx.AsyncClient):
    base = make_image("subject-base")
    await push_image(client, "subj/app", base, "v1")
    sig = make_artifact("sig", "application/vnd.example.signature.v1", subject=base)
    await push_blobs(client, "subj/app", sig.blobs)
    resp = await push_manifest(client, "subj/app", sig.digest, sig.manifest)
    assert resp.status_code == 201
    assert resp.headers["oci-subject"] == base.digest
    assert resp.headers["docker-content-digest"] == sig.digest


async def test_an_index_with_a_subject_answers_with_oci_subject(client: httpx.AsyncClient):
    base = make_image("subject-base-idx")
    await push_image(client, "subj/app", base, "v1")
    child = make_image("subject-idx-child")
    index = make_index([child], subject=base, artifact_type="application/vnd.example.bundle")
    resp = await push_image(client, "subj/app", index)
    assert resp.headers["oci-subject"] == base.digest


async def test_a_manifest_without_a_subject_has_no_oci_subject_header(
    client: httpx.AsyncClient,
):
    resp = await push_image(client, "subj/none", make_image("plain"), "v1")
    assert "oci-subject" not in resp.headers


async def test_a_manifest_whose_subject_does_not_exist_is_accepted(client: httpx.AsyncClient):
    missing = make_image("never-pushed")
    sbom = make_artifact("sbom", "application/vnd.example.sbom.v1", subject=missing)
    resp = await push_image(client, "subj/orphan", sbom)
    assert resp.headers["oci-subject"] == missing.digest
    assert (await _get(client, "subj/orphan", sbom.digest)).content == sbom.manifest


async def test_a_manifest_over_4_mib_sent_without_content_length_answers_413(
    client: httpx.AsyncClient,
):
    image = make_image("streamed-big")
    await push_blobs(client, "big/streamed", image.blobs)
    body = _padded(image.manifest, 4 * MIB + 1)

    async def stream():
        for i in range(0, len(body), 256 * 1024):
            yield body[i : i + 256 * 1024]

    resp = await client.put(
        "/v2/big/streamed/manifests/v1", content=stream(), headers={"Content-Type": OCI_MANIFEST}
    )
    assert_oci_error(resp, 413, "SIZE_INVALID")
    assert (await _get(client, "big/streamed", "v1")).status_code == 404


async def test_a_manifest_sent_without_content_length_is_stored_byte_exact(
    client: httpx.AsyncClient,
):
    image = make_image("streamed-small")
    await push_blobs(client, "img/streamed", image.blobs)

    async def stream():
        for i in range(0, len(image.manifest), 50):
            yield image.manifest[i : i + 50]

    resp = await client.put(
        "/v2/img/streamed/manifests/v1", content=stream(), headers={"Content-Type": OCI_MANIFEST}
    )
    assert resp.status_code == 201
    assert (await _get(client, "img/streamed", "v1")).content == image.manifest


@pytest.mark.parametrize(
    "subject",
    [
        {"mediaType": OCI_MANIFEST, "size": 10},
        {"mediaType": OCI_MANIFEST, "digest": "sha256:xyz", "size": 10},
        "sha256:" + "a" * 64,
    ],
)
async def test_a_malformed_subject_answers_400(client: httpx.AsyncClient, subject: Any):
    image = make_image("bad-subject")
    await push_blobs(client, "subj/bad", image.blobs)
    doc = image.json
    doc["subject"] = subject
    resp = await push_manifest(client, "subj/bad", "v1", canonical(doc))
    assert_oci_error(resp, 400, ("MANIFEST_INVALID", "DIGEST_INVALID"))


async def test_a_manifest_pushed_by_tag_with_a_subject_answers_with_oci_subject(
    client: httpx.AsyncClient,
):
    base = make_image("tag-subject-base")
    sig = make_artifact("tag-subject", "application/vnd.example.signature.v1", subject=base)
    await push_blobs(client, "subj/tagged", sig.blobs)
    resp = await push_manifest(client, "subj/tagged", "sig", sig.manifest)
    assert resp.status_code == 201
    assert resp.headers["oci-subject"] == base.digest


async def test_get_manifest_with_an_accept_header_for_its_type_returns_it(
    client: httpx.AsyncClient,
):
    image = make_image("accept")
    await push_image(client, "img/accept", image, "v1")
    resp = await client.get(
        "/v2/img/accept/manifests/v1",
        headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}, {DOCKER_MANIFEST}"},
    )
    assert resp.status_code == 200
    assert resp.content == image.manifest
    assert resp.headers["content-type"] == OCI_MANIFEST


# --- image-spec leniency ------------------------------------------------------------------


async def test_unknown_properties_in_a_manifest_and_its_descriptors_are_accepted(
    client: httpx.AsyncClient,
):
    # image-spec: implementations must not error on unknown properties.
    image = make_image("unknown-props")
    await push_blobs(client, "lenient/unknown", image.blobs)
    doc = image.json
    doc["org.example.extension"] = {"anything": [1, 2, 3]}
    doc["config"]["org.example.extra"] = True
    doc["layers"][0]["org.example.extra"] = "yes"
    body = canonical(doc)
    resp = await push_manifest(client, "lenient/unknown", "v1", body)
    assert resp.status_code == 201, resp.text
    assert (await _get(client, "lenient/unknown", "v1")).content == body


async def test_a_manifest_with_no_layers_is_accepted(client: httpx.AsyncClient):
    image = make_image("no-layers", layers=0)
    await push_image(client, "lenient/nolayers", image, "v1")
    assert (await _get(client, "lenient/nolayers", "v1")).content == image.manifest


async def test_a_manifest_may_reference_a_layer_by_its_sha512_digest(
    client: httpx.AsyncClient,
):
    image = make_image("sha512-layer")
    await push_blobs(client, "lenient/sha512", image.blobs)
    extra = blob_bytes("sha512-extra-layer", 300)
    await push_blob(client, "lenient/sha512", extra, sha512(extra))
    doc = image.json
    doc["layers"].append({"mediaType": OCI_LAYER, "digest": sha512(extra), "size": len(extra)})
    body = canonical(doc)
    resp = await push_manifest(client, "lenient/sha512", "v1", body)
    assert resp.status_code == 201, resp.text
    assert (await _get(client, "lenient/sha512", "v1")).content == body


async def test_a_manifest_referencing_a_missing_sha512_layer_is_rejected(
    client: httpx.AsyncClient,
):
    image = make_image("sha512-missing")
    await push_blobs(client, "lenient/sha512", image.blobs)
    doc = image.json
    doc["layers"].append({"mediaType": OCI_LAYER, "digest": sha512(b"absent"), "size": 6})
    resp = await push_manifest(client, "lenient/sha512", "v1", canonical(doc))
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")
