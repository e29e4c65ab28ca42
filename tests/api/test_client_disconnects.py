"""A client that goes away mid-upload leaves no visible blob and no stray files."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from haven.store.content import FilesystemBlobStore
from haven.web.app import HavenApp

from .helpers import OWNER_AUTHORIZATION


async def _call_with_disconnect(app: HavenApp, method: str, path: str, query: str) -> list[Any]:
    """Drive the ASGI app with a body that stops after one chunk: the client vanished."""
    messages = iter(
        [
            {"type": "http.request", "body": b"x" * 65536, "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[Any] = []

    async def receive() -> Any:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"localhost:5000"),
            (b"content-length", b"10000000"),
            (b"authorization", OWNER_AUTHORIZATION.encode()),
        ],
        "server": ("localhost", 5000),
        "client": ("127.0.0.1", 1234),
    }
    await app(scope, receive, send)
    return sent


async def test_monolithic_push_cut_short_stores_nothing(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    digest = "sha256:" + hashlib.sha256(b"x" * 10_000_000).hexdigest()
    await _call_with_disconnect(app, "POST", "/v2/cut/short/blobs/uploads/", f"digest={digest}")
    resp = await client.head(f"/v2/cut/short/blobs/{digest}")
    assert resp.status_code == 404
    if isinstance(app.content, FilesystemBlobStore):
        assert list(app.content.upload_root.iterdir()) == []
    assert app.content.stat_sync(digest) is None
    assert [name for name, _, _ in app.content.scan_sync()] == []


async def test_chunk_cut_short_leaves_a_resumable_upload_and_no_blob(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    start = await client.post("/v2/cut/chunk/blobs/uploads/")
    location = start.headers["location"]
    await _call_with_disconnect(app, "PATCH", location, "")
    status = await client.get(location)
    assert status.status_code == 204
    received = int(status.headers["range"].split("-")[1]) + 1
    assert received in (1, 65536)  # "0-0" for nothing, else the bytes that arrived
    rest = b"x" * (100_000 - (received if received == 65536 else 0))
    whole = b"x" * 100_000
    digest = "sha256:" + hashlib.sha256(whole).hexdigest()
    done = await client.put(f"{location}?digest={digest}", content=rest)
    assert done.status_code == 201
    assert (await client.get(f"/v2/cut/chunk/blobs/{digest}")).content == whole
