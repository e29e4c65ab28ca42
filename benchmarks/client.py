"""The distribution-spec v1.1 operations the scenarios time, over one aiohttp session.

aiohttp rather than httpx: on this machine 3,000 small requests at concurrency 32 cost the
client 0.5 s of CPU with aiohttp and about 7 s with httpx, and with two cores every client
cycle is a cycle the server under test does not get. Blob downloads bypass aiohttp for a
leaner reader (`rawpull`), for the same reason.

Every unexpected answer raises `RegistryError` carrying the exact request and response, so a
failing scenario reports what the server got wrong instead of a meaningless number.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from benchmarks.auth import Authorizer, scope_key
from benchmarks.payload import LargeBlob, SmallBlob
from benchmarks.rawpull import PullError, raw_pull
from benchmarks.servers import Deployment

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCTET = "application/octet-stream"
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

T = TypeVar("T")


class RegistryError(RuntimeError):
    """A request got an answer the spec does not allow for it."""

    def __init__(self, method: str, url: str, status: int, headers: Any, body: bytes) -> None:
        self.method, self.url, self.status = method, url, status
        text = body[:500].decode(errors="replace")
        hdrs = ", ".join(f"{k}: {v}" for k, v in headers.items()) if headers else ""
        super().__init__(f"{method} {url} -> HTTP {status} [{hdrs}] {text}")


def new_session(connections: int = 128) -> aiohttp.ClientSession:
    """One pooled session per registry; big read buffers keep large pulls cheap."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=connections),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300),
        read_bufsize=1 << 20,
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


async def run_bounded(
    concurrency: int, items: Iterable[T], work: Callable[[T], Awaitable[object]]
) -> None:
    """Run `work` on every item with at most `concurrency` in flight, via a fixed worker pool
    (cheaper than one task per item behind a semaphore when there are thousands of items)."""
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:  # a shared iterator: each item goes to exactly one worker
            await work(item)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class RegistryClient:
    """A registry at `base_url`, spoken to as the spec describes, with `auth` when the
    registry requires credentials (see `benchmarks.auth`)."""

    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, auth: Authorizer | None = None
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.auth = auth
        self.redirected_pulls = 0  # blob GETs answered with a redirect to the bytes

    def _url(self, path_or_url: str) -> URL:
        return URL(urljoin(self.base_url + "/", path_or_url), encoded=True)

    async def auth_headers(self, path: str) -> dict[str, str]:
        """The Authorization header for a request on `path`, fetching a token first if none
        is fresh; empty for an open registry."""
        if self.auth is None:
            return {}
        headers = self.auth.header(path)
        if not headers and scope_key(path) is not None:
            await self.auth.prepare(self.base_url, path)
            headers = self.auth.header(path)
        return headers

    async def _expect(
        self,
        method: str,
        url: URL,
        statuses: tuple[int, ...],
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> tuple[int, Any, bytes]:
        headers = dict(headers or {})
        if "Authorization" not in headers:
            headers.update(await self.auth_headers(url.path))
        async with self.session.request(
            method, url, allow_redirects=True, headers=headers, data=data
        ) as resp:
            body = await resp.read()
            status, resp_headers = resp.status, resp.headers
        # A token that expired since it was fetched: renew once and resend, if the body can
        # be sent again (a streamed body cannot; it always follows a POST that renewed it).
        challenge = resp_headers.get("WWW-Authenticate", "")
        if (
            status == 401
            and self.auth is not None
            and isinstance(data, bytes | None)
            and await self.auth.on_challenge(url.path, challenge)
        ):
            headers.update(self.auth.header(url.path))
            async with self.session.request(
                method, url, allow_redirects=True, headers=headers, data=data
            ) as resp:
                body = await resp.read()
                status, resp_headers = resp.status, resp.headers
        if status not in statuses:
            raise RegistryError(method, str(url), status, resp_headers, body)
        return status, resp_headers, body

    @staticmethod
    def _with_digest(location: URL, digest: str) -> URL:
        sep = "&" if location.raw_query_string else "?"
        return URL(str(location) + f"{sep}digest={digest}", encoded=True)

    def _location(self, method: str, url: URL, headers: Any) -> URL:
        location = headers.get("Location")
        if not location:
            raise RegistryError(method, str(url), 0, headers, b"no Location header")
        return self._url(location)

    # -- blobs -------------------------------------------------------------------------

    async def start_upload(self, repo: str) -> URL:
        """POST /v2/<name>/blobs/uploads/ -> 202 and the session's Location."""
        url = self._url(f"/v2/{repo}/blobs/uploads/")
        _, headers, _ = await self._expect("POST", url, (202,))
        return self._location("POST", url, headers)

    async def push_monolithic(self, repo: str, blob: LargeBlob) -> None:
        """POST, then one PUT ?digest= carrying the whole blob, streamed."""
        location = await self.start_upload(repo)
        url = self._with_digest(location, blob.digest)
        headers = {"Content-Type": OCTET, "Content-Length": str(blob.size)}
        await self._expect("PUT", url, (201,), data=blob.stream(), headers=headers)

    async def push_chunked(self, repo: str, blob: LargeBlob, chunk_size: int) -> None:
        """POST, one PATCH per chunk with Content-Range, then an empty PUT ?digest=."""
        location = await self.start_upload(repo)
        for start in range(0, blob.size, chunk_size):
            end = min(start + chunk_size, blob.size)
            headers = {
                "Content-Type": OCTET,
                "Content-Length": str(end - start),
                "Content-Range": f"{start}-{end - 1}",
            }
            _, resp_headers, _ = await self._expect(
                "PATCH", location, (202,), data=blob.stream(start, end), headers=headers
            )
            location = self._location("PATCH", location, resp_headers)
        url = self._with_digest(location, blob.digest)
        await self._expect("PUT", url, (201,), headers={"Content-Length": "0"})

    async def push_small(self, repo: str, blob: SmallBlob) -> None:
        """POST, then PUT ?digest= with the bytes: the two-request monolithic upload."""
        location = await self.start_upload(repo)
        url = self._with_digest(location, blob.digest)
        await self._expect("PUT", url, (201,), data=blob.data, headers={"Content-Type": OCTET})

    async def mount_or_push(self, repo: str, blob: SmallBlob, source: str) -> bool:
        """Cross-repository mount of `blob` from `source`; when the registry declines (202)
        the upload session it opened instead is filled by an ordinary PUT. True if mounted."""
        url = self._url(f"/v2/{repo}/blobs/uploads/?mount={blob.digest}&from={source}")
        auth = {}
        if self.auth is not None:
            auth = await self.auth.header_for_scopes(
                self.base_url, f"repository:{repo}:pull,push", f"repository:{source}:pull"
            )
        status, headers, _ = await self._expect("POST", url, (201, 202), headers=auth)
        if status == 202:
            location = self._with_digest(self._location("POST", url, headers), blob.digest)
            await self._expect(
                "PUT", location, (201,), data=blob.data, headers={"Content-Type": OCTET}
            )
        return status == 201

    async def pull(self, repo: str, digest: str, size: int, verify: bool) -> int:
        """GET the blob; check its length, and its sha256 when `verify`; return its length.
        A redirect is followed (and counted in `redirected_pulls`).

        Goes through `rawpull` rather than aiohttp: see that module for why."""
        path = f"/v2/{repo}/blobs/{digest}"
        url = self._url(path)
        headers = await self.auth_headers(path)
        try:
            result = await raw_pull(url.host or "127.0.0.1", url.port or 80, path, verify, headers)
        except PullError as exc:
            raise RegistryError("GET", str(url), 0, {}, str(exc).encode()) from exc
        received, got = result.received, result.digest
        if result.redirects:
            self.redirected_pulls += 1
        if received != size:
            raise RegistryError(
                "GET", str(url), 200, {}, f"got {received} of {size} bytes".encode()
            )
        if verify and got != digest:
            raise RegistryError(
                "GET", str(url), 200, {}, f"received bytes hash to {got}, not the digest".encode()
            )
        return received

    # -- manifests and tags ------------------------------------------------------------

    async def put_manifest(self, repo: str, reference: str, body: bytes) -> None:
        url = self._url(f"/v2/{repo}/manifests/{reference}")
        await self._expect("PUT", url, (201,), data=body, headers={"Content-Type": OCI_MANIFEST})

    async def get(self, path_or_url: str, accept: str | None = None) -> tuple[Any, bytes]:
        headers = {"Accept": accept} if accept else {}
        _, resp_headers, body = await self._expect(
            "GET", self._url(path_or_url), (200,), headers=headers
        )
        return resp_headers, body

    async def walk(self, first: str, key: str) -> tuple[int, int]:
        """Follow `Link: <...>; rel="next"` from `first`; return (pages, entries listed)."""
        pages = entries = 0
        url: str | None = first
        while url is not None:
            headers, body = await self.get(url)
            pages += 1
            entries += len(json.loads(body).get(key) or [])
            match = _LINK_NEXT.search(headers.get("Link", ""))
            url = match.group(1) if match else None
        return pages, entries


def client_for(
    session: aiohttp.ClientSession, server: Deployment, auth_mode: str
) -> RegistryClient:
    """A client for `server`, authenticating (in `auth_mode`) if the server has credentials."""
    auth = None
    if server.credentials is not None:
        auth = Authorizer(server.credentials, auth_mode, session)
    return RegistryClient(session, server.base_url, auth)


def image_manifest(
    config: SmallBlob, layers: list[SmallBlob], annotations: dict[str, str] | None = None
) -> bytes:
    """A minimal OCI image manifest; distinct annotations make distinct manifests."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": len(config.data)},
        "layers": [
            {"mediaType": OCI_LAYER, "digest": layer.digest, "size": len(layer.data)}
            for layer in layers
        ],
    }
    if annotations:
        doc["annotations"] = annotations
    return json.dumps(doc, separators=(",", ":")).encode()
