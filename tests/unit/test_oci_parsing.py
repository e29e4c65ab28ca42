"""Digests, names, tags and manifests as the specs define them."""

from __future__ import annotations

import orjson
import pytest

from haven.errors import DigestInvalid, ManifestInvalid, NameInvalid, TagInvalid
from haven.oci.digest import parse_digest
from haven.oci.manifest import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
)
from haven.oci.names import validate_name, validate_tag

SHA = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "value",
    [
        "",
        "sha256",
        "sha256:",
        "sha256:xyz",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "md5:" + "a" * 32,
        "sha512:" + "a" * 64,
        "nope",
    ],
)
def test_malformed_or_unverifiable_digests_are_digest_invalid(value: str) -> None:
    with pytest.raises(DigestInvalid):
        parse_digest(value)


def test_sha256_and_sha512_digests_parse() -> None:
    assert str(parse_digest(SHA)) == SHA
    assert parse_digest("sha512:" + "b" * 128).algorithm == "sha512"


@pytest.mark.parametrize("name", ["a", "library/ubuntu", "a.b_c__d---e/f", "x" * 255, "0/1/2/3"])
def test_names_within_the_spec_rules_are_accepted(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "a/",
        "/a",
        "a//b",
        "../a",
        "a/../b",
        "a/%2e%2e",
        "a_",
        "a___b",
        "a.-b",
        "x" * 256,
        "a b",
        "a:b",
    ],
)
def test_names_outside_the_spec_rules_are_name_invalid(name: str) -> None:
    with pytest.raises(NameInvalid, match="lowercase"):
        validate_name(name)


@pytest.mark.parametrize("tag", ["latest", "_x", "v1.2.3-rc_1", "A" * 128])
def test_valid_tags(tag: str) -> None:
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a/b", "A" * 129, "a:b"])
def test_invalid_tags_are_tag_invalid(tag: str) -> None:
    with pytest.raises(TagInvalid):
        validate_tag(tag)


def _descriptor(media_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> dict:
    return {"mediaType": media_type, "digest": SHA, "size": 3}


def test_oci_manifest_without_media_type_is_recognised_by_shape() -> None:
    body = orjson.dumps({"schemaVersion": 2, "config": _descriptor("a/b"), "layers": []})
    parsed = parse_manifest(body, None)
    assert parsed.media_type == OCI_MANIFEST
    assert parsed.artifact_type == "a/b"


def test_index_is_recognised_by_shape_and_lists_children() -> None:
    body = orjson.dumps({"schemaVersion": 2, "manifests": [_descriptor(OCI_MANIFEST)]})
    parsed = parse_manifest(body, None)
    assert parsed.media_type == OCI_INDEX
    assert parsed.is_index and parsed.children[0].digest == SHA


def test_body_media_type_must_agree_with_content_type() -> None:
    body = orjson.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _descriptor(), "layers": []}
    )
    with pytest.raises(ManifestInvalid, match="does not match"):
        parse_manifest(body, DOCKER_MANIFEST)


@pytest.mark.parametrize(
    "document",
    [
        b"not json",
        b"[]",
        b'{"schemaVersion": 1}',
        b'{"schemaVersion": 2, "layers": []}',
        b'{"schemaVersion": 2, "config": {"mediaType": "a/b", "digest": "x", "size": 1}}',
        b'{"schemaVersion": 2, "config": {"mediaType": "a/b", "digest": "'
        + SHA.encode()
        + b'", "size": -1}}',
        b'{"schemaVersion": 2, "manifests": {}}',
    ],
)
def test_malformed_manifests_are_manifest_invalid(document: bytes) -> None:
    with pytest.raises(ManifestInvalid):
        parse_manifest(document, OCI_MANIFEST if b"manifests" not in document else OCI_INDEX)


def test_foreign_layer_with_urls_may_be_absent() -> None:
    foreign = _descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    foreign["urls"] = ["https://example.invalid/layer"]
    body = orjson.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": _descriptor("a/b"),
            "layers": [foreign, _descriptor()],
        }
    )
    parsed = parse_manifest(body, DOCKER_MANIFEST)
    assert [layer.may_be_absent for layer in parsed.layers] == [True, False]


def test_schema1_manifests_are_refused_with_a_reason() -> None:
    with pytest.raises(ManifestInvalid, match="schema 1"):
        parse_manifest(
            b'{"schemaVersion": 2}', "application/vnd.docker.distribution.manifest.v1+prettyjws"
        )
