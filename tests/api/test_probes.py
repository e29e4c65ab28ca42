"""Liveness and readiness: `/healthz` says the process is up, `/readyz` that its
database answers and its content store takes writes."""

from __future__ import annotations

import shutil
from typing import Any

import httpx
import pytest

from haven.store.azure import AzureBlobStore
from haven.store.content import FilesystemBlobStore
from haven.store.s3 import S3BlobStore
from haven.web.app import HavenApp


async def test_a_working_node_is_live_and_ready(anonymous: httpx.AsyncClient) -> None:
    for path in ("/healthz", "/readyz"):
        resp = await anonymous.get(path)
        assert (resp.status_code, resp.text) == (200, "ok")


async def test_a_store_that_cannot_be_written_makes_the_node_unready(
    app: HavenApp, anonymous: httpx.AsyncClient
) -> None:
    store = app.content
    if isinstance(store, FilesystemBlobStore):
        shutil.rmtree(store.upload_root)
        store.upload_root.write_text("not a directory")
    elif isinstance(store, AzureBlobStore):
        store._container().delete_container()
    else:
        assert isinstance(store, S3BlobStore)
        store.client.delete_bucket(Bucket=store.bucket)
    resp = await anonymous.get("/readyz")
    assert resp.status_code == 503
    assert resp.text.startswith("storage: ")
    assert (await anonymous.get("/healthz")).status_code == 200


async def test_a_database_that_does_not_answer_makes_the_node_unready(
    app: HavenApp, anonymous: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(fn: Any) -> Any:
        raise ConnectionError("connection refused")

    monkeypatch.setattr(app.db, "read", down)
    resp = await anonymous.get("/readyz")
    assert (resp.status_code, resp.text) == (503, "database: ConnectionError: connection refused\n")
