"""A small OCI distribution protocol helper so the API tests stay short.

Everything here is written from the OCI distribution-spec v1.1 and image-spec v1.1:
media types, descriptors, the blob upload flow and the error body format.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

# --- media types (image-spec v1.1 and the Docker schema 2 types) -------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_NONDISTRIBUTABLE_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

API_VERSION_HEADER = "Docker-Distribution-API-Version"
API_VERSION = "registry/2.0"

MIB = 1024 * 1024

# The empty JSON object, as image-spec v1.1 defines the "empty descriptor".
EMPTY_JSON = b"{}"

# Digests that are malformed: bad hex, no algorithm, wrong hex length, unknown algorithm.
MALFORMED_DIGESTS = [
    "sha256:xyz",
    "nope",
    "sha256:" + "a" * 63,
    "sha256:" + "a" * 65,
    "sha512:" + "a" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "sha256:" + "A" * 64,
    "sha256:",
    ":" + "a" * 64,
]
# The same, restricted to those that cannot be read as a tag (a tag has no ':').
MALFORMED_DIGEST_REFERENCES = [d for d in MALFORMED_DIGESTS if ":" in d]

OWNER_PASSWORD = "owner-password-for-tests"
OWNER_AUTHORIZATION = "Basic " + base64.b64encode(f"owner:{OWNER_PASSWORD}".encode()).decode()

BASE_URL = "http://localhost:5000"


def app_client(
    app: Any, *, peer: tuple[str, int] = ("127.0.0.1", 40000), **options: Any
) -> httpx.AsyncClient:
    """A client of the in-process app, seen by it as coming from `peer`.

    Blob downloads from an object store answer with a redirect to a signed URL on the
    store (Azurite, the RADOS Gateway: both on 127.0.0.1); the client follows it there
    over real HTTP, as registry clients do. `options` go to httpx.AsyncClient.
    """
    options.setdefault("base_url", BASE_URL)
    options.setdefault("timeout", 60)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=peer),
        mounts={"all://127.0.0.1": httpx.AsyncHTTPTransport()},
        follow_redirects=True,
        **options,
    )


def registry_response(resp: httpx.Response) -> httpx.Response:
    """The registry's own answer to a request: `resp`, or the redirect the client followed
    to an object store (the store's response carries none of the registry's headers)."""
    return resp.history[0] if resp.history else resp


# --- digests ------------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def digest_matches(digest: str, data: bytes) -> bool:
    """Whether `digest` (of any algorithm this suite knows) is the digest of `data`."""
    algorithm, _, _ = digest.partition(":")
    if algorithm == "sha256":
        return sha256(data) == digest
    if algorithm == "sha512":
        return sha512(data) == digest
    return False


def blob_bytes(seed: str, size: int = 64) -> bytes:
    """Deterministic, seed-unique content of exactly `size` bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --- content model ------------------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    data: bytes
    media_type: str = OCI_LAYER

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes plus the blobs and child manifests it needs in the repo."""

    manifest: bytes
    media_type: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[Manifest, ...] = ()
    config: Blob | None = None
    layers: tuple[Blob, ...] = field(default=())

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def size(self) -> int:
        return len(self.manifest)

    @property
    def config_digest(self) -> str:
        assert self.config is not None
        return self.config.digest

    @property
    def layer_digests(self) -> list[str]:
        return [layer.digest for layer in self.layers]

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.manifest)  # type: ignore[no-any-return]

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


Image = Manifest


def _subject_descriptor(subject: Manifest | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if subject is None:
        return None
    if isinstance(subject, Manifest):
        return subject.descriptor()
    return dict(subject)


def make_image(
    seed: str = "image",
    *,
    layers: int = 1,
    layer_size: int = 128,
    media_type: str = OCI_MANIFEST,
    config_media_type: str | None = None,
    layer_media_type: str | None = None,
    config: bytes | None = None,
    artifact_type: str | None = None,
    subject: Manifest | Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    include_media_type: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> Manifest:
    """An image manifest (OCI or Docker schema 2) with its config and layer blobs.

    Distinct seeds give distinct blobs and so distinct manifest digests.
    """
    docker = media_type == DOCKER_MANIFEST
    if config_media_type is None:
        config_media_type = DOCKER_CONFIG if docker else OCI_CONFIG
    if layer_media_type is None:
        layer_media_type = DOCKER_LAYER if docker else OCI_LAYER
    layer_blobs = tuple(
        Blob(blob_bytes(f"{seed}/layer/{i}", layer_size), layer_media_type) for i in range(layers)
    )
    if config is None:
        config = canonical(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [b.digest for b in layer_blobs]},
                "config": {"Labels": {"seed": seed}},
            }
        )
    config_blob = Blob(config, config_media_type)
    doc: dict[str, Any] = {"schemaVersion": 2}
    if include_media_type:
        doc["mediaType"] = media_type
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["config"] = config_blob.descriptor()
    doc["layers"] = [b.descriptor() for b in layer_blobs]
    subject_desc = _subject_descriptor(subject)
    if subject_desc is not None:
        doc["subject"] = subject_desc
    if annotations:
        doc["annotations"] = dict(annotations)
    if extra:
        doc.update(extra)
    return Manifest(
        manifest=canonical(doc),
        media_type=media_type,
        blobs=(config_blob, *layer_blobs),
        config=config_blob,
        layers=layer_blobs,
    )


def image_of(seed: str, layers: Sequence[Blob]) -> Manifest:
    """An image whose config is its own and whose layers are `layers` (shared or not)."""
    config = Blob(canonical({"architecture": "amd64", "os": "linux", "seed": seed}), OCI_CONFIG)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return Manifest(
        canonical(doc), OCI_MANIFEST, (config, *layers), config=config, layers=tuple(layers)
    )


def layer(seed: str, size: int = 1000) -> Blob:
    """A layer blob whose bytes depend on `seed` alone."""
    return Blob(blob_bytes(f"layer/{seed}", size), OCI_LAYER)


def make_artifact(
    seed: str,
    artifact_type: str,
    *,
    subject: Manifest | Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Manifest:
    """An image-spec v1.1 artifact: empty config, one payload layer, `artifactType` set."""
    empty = Blob(EMPTY_JSON, OCI_EMPTY)
    payload = Blob(blob_bytes(f"{seed}/payload", 48), "application/octet-stream")
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty.descriptor(),
        "layers": [payload.descriptor()],
    }
    subject_desc = _subject_descriptor(subject)
    if subject_desc is not None:
        doc["subject"] = subject_desc
    if annotations:
        doc["annotations"] = dict(annotations)
    return Manifest(
        manifest=canonical(doc),
        media_type=OCI_MANIFEST,
        blobs=(empty, payload),
        config=empty,
        layers=(payload,),
    )


def make_index(
    children: Sequence[Manifest],
    *,
    media_type: str = OCI_INDEX,
    artifact_type: str | None = None,
    subject: Manifest | Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    platforms: bool = True,
) -> Manifest:
    """An OCI image index or Docker manifest list over `children`."""
    entries = []
    for i, child in enumerate(children):
        desc = child.descriptor()
        if platforms:
            desc["platform"] = {
                "architecture": ["amd64", "arm64", "s390x", "ppc64le"][i % 4],
                "os": "linux",
            }
        entries.append(desc)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type}
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    doc["manifests"] = entries
    subject_desc = _subject_descriptor(subject)
    if subject_desc is not None:
        doc["subject"] = subject_desc
    if annotations:
        doc["annotations"] = dict(annotations)
    return Manifest(manifest=canonical(doc), media_type=media_type, children=tuple(children))


# --- protocol -----------------------------------------------------------------------------


def location_path(resp: httpx.Response) -> str:
    """The decoded path of a response's Location header (absolute or relative)."""
    location = resp.headers.get("location")
    assert location, f"no Location header on {resp.status_code} {resp.request.url}"
    return unquote(httpx.URL(location).path)


def with_digest(location: str, digest: str) -> str:
    """`<location>?digest=<digest>`, keeping any query the registry put in the location."""
    return str(httpx.URL(location).copy_merge_params({"digest": digest}))


async def start_upload(client: httpx.AsyncClient, repo: str) -> str:
    """POST /v2/<repo>/blobs/uploads/ and return the session's Location."""
    resp = await client.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert resp.status_code == 202, f"POST upload: {resp.status_code} {resp.text[:300]}"
    location = resp.headers.get("location")
    assert location, "202 from POST upload without a Location"
    return location


async def push_blob(
    client: httpx.AsyncClient,
    repo: str,
    data: bytes,
    digest: str | None = None,
) -> httpx.Response:
    """Push a blob with POST then PUT (the flow every registry must support); assert 201."""
    digest = digest or sha256(data)
    location = await start_upload(client, repo)
    resp = await client.put(
        with_digest(location, digest),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status_code == 201, f"PUT upload {digest}: {resp.status_code} {resp.text[:300]}"
    return resp


async def push_chunk(
    client: httpx.AsyncClient, location: str, offset: int, chunk: bytes
) -> httpx.Response:
    """PATCH `chunk` into the upload at `location`, starting at `offset`; asserts 202."""
    resp = await client.patch(
        location,
        content=chunk,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
        },
    )
    assert resp.status_code == 202, resp.text
    return resp


async def push_blobs(client: httpx.AsyncClient, repo: str, blobs: Iterable[Blob]) -> None:
    seen: set[str] = set()
    for blob in blobs:
        if blob.digest not in seen:
            seen.add(blob.digest)
            await push_blob(client, repo, blob.data)


async def push_manifest(
    client: httpx.AsyncClient,
    repo: str,
    reference: str,
    body: bytes,
    media_type: str = OCI_MANIFEST,
) -> httpx.Response:
    """PUT a manifest's bytes; no assertion, so tests can check failures."""
    return await client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )


async def push_image(
    client: httpx.AsyncClient,
    repo: str,
    image: Manifest,
    reference: str | None = None,
) -> httpx.Response:
    """Push an image's blobs (and, for an index, its children) then the manifest; assert 201.

    `reference` defaults to the manifest's digest.
    """
    for child in image.children:
        await push_image(client, repo, child)
    await push_blobs(client, repo, image.blobs)
    resp = await push_manifest(
        client, repo, reference or image.digest, image.manifest, image.media_type
    )
    assert resp.status_code == 201, f"PUT manifest: {resp.status_code} {resp.text[:300]}"
    return resp


def error_codes(resp: httpx.Response) -> list[str]:
    body = resp.json()
    return [e.get("code") for e in body["errors"]]


def assert_oci_error(
    resp: httpx.Response,
    status: int,
    code: str | Sequence[str],
) -> dict[str, Any]:
    """Assert an OCI error response: the status and a JSON errors body carrying `code`.

    `code` may be a sequence of acceptable codes. Returns the matching error entry.
    """
    assert resp.status_code == status, (
        f"expected {status} {code}, got {resp.status_code}: {resp.text[:500]}"
    )
    content_type = resp.headers.get("content-type", "")
    assert "json" in content_type, f"error body is not JSON: {content_type!r} {resp.text[:200]}"
    body = resp.json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), body
    assert body["errors"], "errors list is empty"
    for entry in body["errors"]:
        assert isinstance(entry.get("code"), str), entry
        assert entry["code"].replace("_", "").isalpha() and entry["code"].isupper(), entry
        assert isinstance(entry.get("message", ""), str), entry
    wanted = {code} if isinstance(code, str) else set(code)
    matching = [e for e in body["errors"] if e["code"] in wanted]
    assert matching, f"expected code {sorted(wanted)}, got {[e['code'] for e in body['errors']]}"
    return matching[0]


def next_link(resp: httpx.Response) -> str | None:
    """The target of an RFC 5988 `Link: <...>; rel="next"` header, or None."""
    link = resp.headers.get("link")
    if not link:
        return None
    target, _, params = link.partition(";")
    assert 'rel="next"' in params.replace(" ", ""), link
    target = target.strip()
    assert target.startswith("<") and target.endswith(">"), link
    return target[1:-1]


# --- raw ASGI, for paths an HTTP client would normalise -----------------------------------


@dataclass
class RawResponse:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


async def raw_asgi_request(
    app: Any,
    method: str,
    raw_target: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> RawResponse:
    """Send one request to the ASGI app with the target exactly as given (no normalisation).

    The ASGI `path` is percent-decoded as a real HTTP server would present it, while
    `raw_path` keeps the original bytes.
    """
    import asyncio

    raw_path, _, query = raw_target.partition("?")
    header_list = [(b"host", b"localhost:5000")]
    if not any(k.lower() == "authorization" for k in headers or {}):
        header_list.append((b"authorization", OWNER_AUTHORIZATION.encode()))
    for k, v in (headers or {}).items():
        header_list.append((k.lower().encode("latin-1"), v.encode("latin-1")))
    if body:
        header_list.append((b"content-length", str(len(body)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": header_list,
        "client": ("127.0.0.1", 40000),
        "server": ("localhost", 5000),
        "state": {},
    }
    sent_body = False
    done = asyncio.Event()
    status = 0
    resp_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for k, v in message.get("headers", []):
                resp_headers[k.decode("latin-1").lower()] = v.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(scope, receive, send)
    done.set()
    return RawResponse(status, resp_headers, b"".join(chunks))
