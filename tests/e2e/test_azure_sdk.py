"""Microsoft's `azure-containerregistry` SDK, unchanged, against Haven over HTTPS.

The SDK signs in as it does with ACR: it exchanges an identity's access token for a
registry refresh token at /oauth2/exchange, then asks /oauth2/token for each scope. The
credential class hands it a Haven management access token where it would use Entra ID.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from auth_support import Pki, ca_context
from azure.containerregistry import ContainerRegistryClient
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from e2e_support import OWNER, HavenServer


class HavenCredential:
    """A TokenCredential that signs in to Haven's token service as an identity."""

    def __init__(self, server: HavenServer, ca: Pki) -> None:
        self._url = server.url
        self._ca = ca

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        with httpx.Client(verify=ca_context(self._ca.ca_cert), timeout=30) as http:
            answer = http.post(
                f"{self._url}/oauth2/token",
                data={
                    "grant_type": "password",
                    "service": "management",
                    "username": OWNER[0],
                    "password": OWNER[1],
                },
            )
        answer.raise_for_status()
        body = answer.json()
        return AccessToken(body["access_token"], int(time.time()) + int(body["expires_in"]))


def _push_image(server: HavenServer, ca: Pki, repository: str, tags: list[str]) -> str:
    config = json.dumps({"architecture": "arm64", "os": "linux", "rootfs": {}}).encode()
    layer = uuid.uuid4().bytes * 64
    with httpx.Client(
        base_url=server.url, verify=ca_context(ca.ca_cert), auth=OWNER, timeout=30
    ) as http:
        for blob in (config, layer):
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            pushed = http.post(f"/v2/{repository}/blobs/uploads/?digest={digest}", content=blob)
            assert pushed.status_code == 201, pushed.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": "sha256:" + hashlib.sha256(layer).hexdigest(),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        for reference in tags or [digest]:
            put = http.put(
                f"/v2/{repository}/manifests/{reference}",
                content=manifest,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            )
            assert put.status_code == 201, put.text
        return digest


@pytest.fixture
def sdk(haven_tls: HavenServer, tls_pki: Pki) -> Iterator[ContainerRegistryClient]:
    client = ContainerRegistryClient(
        f"https://{haven_tls.address}",
        HavenCredential(haven_tls, tls_pki),
        audience="https://management.azure.com",
        connection_verify=str(tls_pki.ca_cert),
    )
    with client:
        yield client


def test_the_sdk_lists_repositories_tags_and_manifests(
    sdk: ContainerRegistryClient, haven_tls: HavenServer, tls_pki: Pki
) -> None:
    repository = f"sdk/list-{uuid.uuid4().hex[:8]}"
    digest = _push_image(haven_tls, tls_pki, repository, ["v1", "latest"])
    assert repository in list(sdk.list_repository_names())

    properties = sdk.get_repository_properties(repository)
    assert (properties.manifest_count, properties.tag_count) == (1, 2)

    tags = {t.name: t.digest for t in sdk.list_tag_properties(repository)}
    assert tags == {"v1": digest, "latest": digest}

    (manifest,) = list(sdk.list_manifest_properties(repository))
    assert manifest.digest == digest
    assert sorted(manifest.tags) == ["latest", "v1"]
    assert (manifest.architecture, manifest.operating_system) == ("arm64", "linux")


def test_the_sdk_locks_a_tag_and_haven_enforces_it(
    sdk: ContainerRegistryClient, haven_tls: HavenServer, tls_pki: Pki
) -> None:
    repository = f"sdk/lock-{uuid.uuid4().hex[:8]}"
    _push_image(haven_tls, tls_pki, repository, ["v1"])
    updated = sdk.update_tag_properties(repository, "v1", can_delete=False, can_write=False)
    assert (updated.can_delete, updated.can_write) == (False, False)
    with pytest.raises(HttpResponseError):
        sdk.delete_tag(repository, "v1")
    sdk.update_tag_properties(repository, "v1", can_delete=True)
    sdk.delete_tag(repository, "v1")
    assert [t.name for t in sdk.list_tag_properties(repository)] == []


def test_the_sdk_deletes_manifests_and_repositories(
    sdk: ContainerRegistryClient, haven_tls: HavenServer, tls_pki: Pki
) -> None:
    repository = f"sdk/delete-{uuid.uuid4().hex[:8]}"
    digest = _push_image(haven_tls, tls_pki, repository, ["v1"])
    manifest = sdk.get_manifest_properties(repository, digest)
    assert manifest.size_in_bytes > 0
    sdk.delete_manifest(repository, digest)
    with pytest.raises(ResourceNotFoundError):
        sdk.get_manifest_properties(repository, digest)
    _push_image(haven_tls, tls_pki, repository, ["v2"])
    sdk.delete_repository(repository)
    assert repository not in list(sdk.list_repository_names())
