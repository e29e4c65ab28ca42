"""The ORAS Python SDK against Haven: artifacts, artifactType, subject and the referrers API.

The SDK's `push` builds the manifest itself and has no artifactType parameter, so where an
explicit `artifactType` is needed the manifest is assembled here (per the OCI image spec's
guidance for artifacts: the empty config descriptor plus the artifact's own layers) and
uploaded with the SDK's own `upload_blob` / `upload_manifest`.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import oras.client
import oras.oci
import pytest
from e2e_support import (
    MANIFEST_ACCEPT,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    OWNER,
    sha256_digest,
)

pytestmark = pytest.mark.e2e

SBOM_TYPE = "application/vnd.haven.e2e.sbom.v1+json"
SIGNATURE_CONFIG_TYPE = "application/vnd.haven.e2e.signature.config.v1+json"
MODEL_CONFIG_TYPE = "application/vnd.haven.e2e.model.config.v1+json"
TITLE = "org.opencontainers.image.title"
EMPTY_JSON = b"{}"


class OrasClient(oras.client.OrasClient):  # type: ignore[misc]
    """The SDK's client minus its retry-with-backoff wrapper around every request.

    That wrapper sleeps up to minutes on a server error before giving up; the suite wants
    a 5xx from Haven to fail the test at once, with the response in hand.
    """

    do_request = getattr(
        oras.client.OrasClient.do_request, "__wrapped__", oras.client.OrasClient.do_request
    )


@pytest.fixture
def client(registry: str) -> OrasClient:
    # HTTP Basic on every request: the SDK's token backend keeps the first token it gets
    # and never asks for a wider one, so a push after a pull-scoped token cannot succeed.
    signed_in = OrasClient(hostname=registry, insecure=True, auth_backend="basic")
    # Credentials for this client only; login() would also write ~/.docker/config.json.
    signed_in.auth.set_basic_auth(*OWNER)
    return signed_in


def empty_config_descriptor() -> dict[str, Any]:
    return {
        "mediaType": OCI_EMPTY,
        "digest": sha256_digest(EMPTY_JSON),
        "size": len(EMPTY_JSON),
        "data": base64.b64encode(EMPTY_JSON).decode(),
    }


def push_artifact_with_type(
    client: OrasClient,
    tmp_path: Path,
    target: str,
    artifact_type: str,
    files: dict[str, bytes],
    layer_media_type: str = "application/vnd.haven.e2e.file.v1",
) -> tuple[dict[str, Any], Any]:
    """Push an artifact manifest with an explicit artifactType through the SDK's uploads."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    container = client.get_container(target)
    empty = tmp_path / f"empty-{os.urandom(4).hex()}.json"
    empty.write_bytes(EMPTY_JSON)
    config = empty_config_descriptor()
    uploaded = client.upload_blob(str(empty), container, config)
    assert uploaded.status_code in (200, 201), uploaded.text
    layers = []
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        layer = oras.oci.NewLayer(str(path), media_type=layer_media_type)
        layer["annotations"] = {TITLE: name}
        uploaded = client.upload_blob(str(path), container, layer)
        assert uploaded.status_code in (200, 201), uploaded.text
        layers.append(layer)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config,
        "layers": layers,
    }
    response = client.upload_manifest(manifest, container)
    assert response.status_code == 201, f"{response.status_code} {response.text}"
    return manifest, response


def descriptor_of(http: httpx.Client, repository: str, reference: str) -> dict[str, Any]:
    """The descriptor of a stored manifest, from the exact bytes Haven serves."""
    response = http.get(
        f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert response.status_code == 200, response.text
    digest = sha256_digest(response.content)
    assert response.headers["docker-content-digest"] == digest
    return {
        "mediaType": response.headers["content-type"].split(";")[0].strip(),
        "digest": digest,
        "size": len(response.content),
    }


def test_oras_sdk_pushes_a_file_artifact_and_pulls_it_back_byte_exact(
    client: OrasClient, registry: str, repo: Callable[[str], str], tmp_path: Path
) -> None:
    repository = repo("model")
    target = f"{registry}/{repository}:v1"
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(300_000))
    config = tmp_path / "config.json"
    config.write_bytes(b'{"framework": "haven-e2e"}')

    pushed = client.push(
        target=target,
        files=[f"{weights}:application/vnd.haven.e2e.weights"],
        manifest_config=f"{config}:{MODEL_CONFIG_TYPE}",
        manifest_annotations={"org.opencontainers.image.description": "e2e"},
        disable_path_validation=True,
    )
    assert pushed.status_code == 201, pushed.text
    pulled = client.pull(target=target, outdir=str(tmp_path / "pulled"))

    assert [Path(path).name for path in pulled] == ["weights.bin"]
    assert Path(pulled[0]).read_bytes() == weights.read_bytes()
    manifest = client.get_manifest(target)
    assert manifest["config"]["mediaType"] == MODEL_CONFIG_TYPE
    assert manifest["config"]["digest"] == sha256_digest(config.read_bytes())
    assert manifest["layers"][0]["mediaType"] == "application/vnd.haven.e2e.weights"
    assert manifest["annotations"] == {"org.opencontainers.image.description": "e2e"}
    assert client.get_tags(f"{registry}/{repository}") == ["v1"]


def test_oras_artifact_with_an_explicit_artifact_type_round_trips_byte_exact(
    client: OrasClient,
    registry: str,
    repo: Callable[[str], str],
    http: httpx.Client,
    tmp_path: Path,
) -> None:
    repository = repo("sbom")
    target = f"{registry}/{repository}:sbom"
    sbom = json.dumps({"spdxVersion": "SPDX-2.3", "name": os.urandom(8).hex()}).encode()

    manifest, response = push_artifact_with_type(
        client, tmp_path / "push", target, SBOM_TYPE, {"sbom.spdx.json": sbom}
    )

    stored = descriptor_of(http, repository, "sbom")
    assert response.headers["docker-content-digest"] == stored["digest"]
    assert stored["mediaType"] == OCI_MANIFEST
    served = client.get_manifest(target)
    assert served["artifactType"] == SBOM_TYPE
    assert served == manifest
    pulled = client.pull(target=target, outdir=str(tmp_path / "pulled"))
    assert [Path(path).read_bytes() for path in pulled] == [sbom]


def test_referrers_api_lists_referrers_with_their_artifact_type_and_filters_by_it(
    client: OrasClient,
    registry: str,
    repo: Callable[[str], str],
    http: httpx.Client,
    tmp_path: Path,
) -> None:
    repository = repo("refs")
    subject_target = f"{registry}/{repository}:app"
    push_artifact_with_type(
        client,
        tmp_path / "subject",
        subject_target,
        "application/vnd.haven.e2e.app.v1",
        {"app.bin": os.urandom(10_000)},
    )
    subject = descriptor_of(http, repository, "app")

    # Referrer 1: the SDK's own push with `subject`; it sets no artifactType, so the
    # referrers API must report the config's mediaType instead (distribution spec 1.1).
    signature = tmp_path / "signature.sig"
    signature.write_bytes(os.urandom(256))
    signature_config = tmp_path / "signature-config.json"
    signature_config.write_bytes(b'{"signer": "haven-e2e"}')
    signed = client.push(
        target=f"{registry}/{repository}:signature",
        files=[f"{signature}:application/vnd.haven.e2e.signature"],
        manifest_config=f"{signature_config}:{SIGNATURE_CONFIG_TYPE}",
        subject=oras.oci.Subject(**subject),
        disable_path_validation=True,
    )
    assert signed.status_code == 201, signed.text
    assert signed.headers.get("oci-subject") == subject["digest"], dict(signed.headers)
    signature_descriptor = descriptor_of(http, repository, "signature")

    # Referrer 2: an explicit artifactType with annotations, pushed untagged (by digest),
    # as signing and SBOM tools do.
    sbom_manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SBOM_TYPE,
        "config": empty_config_descriptor(),
        "layers": [empty_config_descriptor()],
        "subject": subject,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    # (The empty blob is already in the repository: the subject's config is the same.)
    sbom_bytes = json.dumps(sbom_manifest, separators=(",", ":")).encode()
    sbom_digest = sha256_digest(sbom_bytes)
    put = http.put(
        f"/v2/{repository}/manifests/{sbom_digest}",
        content=sbom_bytes,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert put.status_code == 201, put.text
    assert put.headers.get("oci-subject") == subject["digest"], dict(put.headers)

    listing = http.get(f"/v2/{repository}/referrers/{subject['digest']}")
    assert listing.status_code == 200, listing.text
    assert listing.headers["content-type"].split(";")[0] == OCI_INDEX
    index = listing.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    by_digest = {entry["digest"]: entry for entry in index["manifests"]}
    assert set(by_digest) == {signature_descriptor["digest"], sbom_digest}
    signature_entry = dict(by_digest[signature_descriptor["digest"]])
    # The SDK writes `"annotations": {}`; an empty map may be echoed or left out.
    assert not signature_entry.pop("annotations", None)
    assert signature_entry == {
        "mediaType": OCI_MANIFEST,
        "digest": signature_descriptor["digest"],
        "size": signature_descriptor["size"],
        "artifactType": SIGNATURE_CONFIG_TYPE,
    }
    assert by_digest[sbom_digest] == {
        "mediaType": OCI_MANIFEST,
        "digest": sbom_digest,
        "size": len(sbom_bytes),
        "artifactType": SBOM_TYPE,
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }

    filtered = http.get(
        f"/v2/{repository}/referrers/{subject['digest']}", params={"artifactType": SBOM_TYPE}
    )
    assert filtered.status_code == 200, filtered.text
    assert filtered.headers.get("oci-filters-applied") == "artifactType"
    assert [entry["digest"] for entry in filtered.json()["manifests"]] == [sbom_digest]

    other = http.get(
        f"/v2/{repository}/referrers/{subject['digest']}",
        params={"artifactType": SIGNATURE_CONFIG_TYPE},
    )
    assert [entry["digest"] for entry in other.json()["manifests"]] == [
        signature_descriptor["digest"]
    ]
    none = http.get(
        f"/v2/{repository}/referrers/{subject['digest']}",
        params={"artifactType": "application/vnd.haven.e2e.nothing"},
    )
    assert none.status_code == 200
    assert none.json()["manifests"] == []

    # The referrer is an artifact like any other: the SDK pulls its file back intact.
    pulled = client.pull(
        target=f"{registry}/{repository}:signature", outdir=str(tmp_path / "pulled")
    )
    assert [Path(path).read_bytes() for path in pulled] == [signature.read_bytes()]


def test_referrers_api_answers_an_empty_index_for_a_digest_without_referrers(
    http: httpx.Client,
    client: OrasClient,
    registry: str,
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    repository = repo("lonely")
    push_artifact_with_type(
        client, tmp_path / "push", f"{registry}/{repository}:v1", SBOM_TYPE, {"a.json": b"{}"}
    )
    lonely = descriptor_of(http, repository, "v1")

    for digest in (lonely["digest"], sha256_digest(os.urandom(32))):
        response = http.get(f"/v2/{repository}/referrers/{digest}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].split(";")[0] == OCI_INDEX
        assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_oras_sdk_pushes_a_directory_and_pulls_it_back_unpacked(
    client: OrasClient, registry: str, repo: Callable[[str], str], tmp_path: Path
) -> None:
    repository = repo("dir")
    target = f"{registry}/{repository}:v1"
    source = tmp_path / "bundle"
    (source / "nested").mkdir(parents=True)
    files = {"a.txt": b"alpha\n", "nested/b.bin": os.urandom(20_000)}
    for name, content in files.items():
        (source / name).write_bytes(content)

    # The SDK tars and gzips a directory into one layer (the ORAS convention).
    pushed = client.push(target=target, files=[str(source)], disable_path_validation=True)
    assert pushed.status_code == 201, pushed.text
    client.pull(target=target, outdir=str(tmp_path / "out"))

    for name, content in files.items():
        assert (tmp_path / "out" / "bundle" / name).read_bytes() == content


def test_oras_sdk_delete_removes_the_artifact_manifest(
    client: OrasClient,
    registry: str,
    repo: Callable[[str], str],
    http: httpx.Client,
    tmp_path: Path,
) -> None:
    repository = repo("delete")
    target = f"{registry}/{repository}:v1"
    push_artifact_with_type(client, tmp_path / "push", target, SBOM_TYPE, {"x.json": b"[]"})
    pushed = descriptor_of(http, repository, "v1")

    # The SDK resolves the tag with HEAD and deletes the manifest by digest.
    assert client.delete_tag(target, "v1") is True

    assert http.get(f"/v2/{repository}/manifests/{pushed['digest']}").status_code == 404
    assert http.get(f"/v2/{repository}/manifests/v1").status_code == 404
    assert client.get_tags(f"{registry}/{repository}") == []
