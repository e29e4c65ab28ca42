"""Parsing and structural validation of manifests (image-spec v1.1, Docker schema 2).

This module only reads the document: whether the blobs and child manifests it names are
present is the manifest service's question. The bytes are never re-serialised; what is
stored and served is exactly what the client sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from haven.errors import ManifestInvalid
from haven.oci.digest import parse_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

IMAGE_KINDS = {OCI_MANIFEST, DOCKER_MANIFEST}
INDEX_KINDS = {OCI_INDEX, DOCKER_MANIFEST_LIST}
MANIFEST_MEDIA_TYPES = IMAGE_KINDS | INDEX_KINDS

# Layers a registry may not have: the client fetches them from `urls` instead.
NON_DISTRIBUTABLE_LAYERS = {
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}

_MEDIA_TYPE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$"
)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None

    @property
    def may_be_absent(self) -> bool:
        """A foreign layer the registry need not hold."""
        return bool(self.urls) and self.media_type in NON_DISTRIBUTABLE_LAYERS


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    children: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str] | None = field(default=None, hash=False)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_KINDS

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return ((self.config,) if self.config else ()) + self.layers


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid(f"{where}: a descriptor must be an object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not _MEDIA_TYPE.match(media_type):
        raise ManifestInvalid(f"{where}: mediaType must be a media type string")
    digest = value.get("digest")
    if not isinstance(digest, str):
        raise ManifestInvalid(f"{where}: digest must be a string")
    try:
        parse_digest(digest)
    except Exception as exc:
        raise ManifestInvalid(f"{where}: {exc}") from None
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid(f"{where}: size must be a non-negative integer")
    urls = value.get("urls") or ()
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise ManifestInvalid(f"{where}: urls must be a list of strings")
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid(f"{where}: artifactType must be a string")
    return Descriptor(media_type, digest, size, tuple(urls), artifact_type)


def _descriptors(document: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    values = document.get(key)
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ManifestInvalid(f"{key} must be a list of descriptors")
    return tuple(_descriptor(v, f"{key}[{i}]") for i, v in enumerate(values))


def _kind(document: dict[str, Any], content_type: str | None) -> str:
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid("mediaType must be a string")
    header = (content_type or "").split(";", 1)[0].strip().lower() or None
    if header in DOCKER_SCHEMA1 or declared in DOCKER_SCHEMA1:
        raise ManifestInvalid("Docker schema 1 manifests are not accepted: push schema 2 or OCI")
    if declared and header and declared != header:
        raise ManifestInvalid(
            f"the manifest's mediaType {declared!r} does not match Content-Type {header!r}"
        )
    kind = declared or header
    if kind is None or kind in {"application/json", "application/octet-stream"}:
        # The OCI types let mediaType be omitted; the shape tells which document it is.
        kind = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if kind not in MANIFEST_MEDIA_TYPES:
        raise ManifestInvalid(
            f"unsupported manifest media type {kind!r}: expected one of "
            + ", ".join(sorted(MANIFEST_MEDIA_TYPES))
        )
    return kind


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Parse a manifest body; raises ManifestInvalid naming what is wrong."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ManifestInvalid(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    media_type = _kind(document, content_type)

    artifact_type = document.get("artifactType")
    if artifact_type is not None and (
        not isinstance(artifact_type, str) or not _MEDIA_TYPE.match(artifact_type)
    ):
        raise ManifestInvalid("artifactType must be a media type string")
    subject = None
    if document.get("subject") is not None:
        subject = _descriptor(document["subject"], "subject")
    annotations = document.get("annotations")
    if annotations is not None and (
        not isinstance(annotations, dict)
        or not all(isinstance(v, str) for v in annotations.values())
    ):
        raise ManifestInvalid("annotations must map strings to strings")

    if media_type in INDEX_KINDS:
        if not isinstance(document.get("manifests"), list):
            raise ManifestInvalid("an index must have a manifests list")
        if "config" in document or "layers" in document:
            raise ManifestInvalid("an index has no config or layers")
        return ParsedManifest(
            media_type=media_type,
            config=None,
            layers=(),
            children=_descriptors(document, "manifests"),
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )

    if "config" not in document:
        raise ManifestInvalid("an image manifest must have a config descriptor")
    if "manifests" in document:
        raise ManifestInvalid("an image manifest has no manifests list")
    if not isinstance(document.get("layers", []), list):
        raise ManifestInvalid("layers must be a list of descriptors")
    config = _descriptor(document["config"], "config")
    if media_type == DOCKER_MANIFEST and "layers" not in document:
        raise ManifestInvalid("a Docker schema 2 manifest must have layers")
    return ParsedManifest(
        media_type=media_type,
        config=config,
        layers=_descriptors(document, "layers"),
        children=(),
        subject=subject,
        # The referrers API reports an image's config type when artifactType is absent.
        artifact_type=artifact_type or config.media_type,
        annotations=annotations,
    )
