"""The content store a deployment is configured with (`HAVEN_STORAGE`)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from haven.config import Settings
from haven.store.content import BlobStore, FilesystemBlobStore


def open_store(settings: Settings) -> BlobStore:
    """`file:///path` (or nothing: the data directory), `azure://…` or `s3://…`."""
    url = settings.storage
    if not url:
        return FilesystemBlobStore(settings.data_dir)
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return FilesystemBlobStore(Path(unquote(urlsplit(url).path)))
    if scheme == "azure":
        from haven.store.azure import AzureBlobStore

        return AzureBlobStore.from_url(url)
    if scheme == "s3":
        from haven.store.s3 import S3BlobStore

        return S3BlobStore.from_url(url)
    raise ValueError(f"HAVEN_STORAGE {url!r}: use file:///path, azure://… or s3://…")
