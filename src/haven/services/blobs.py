"""Reading, mounting and deleting blobs through a repository.

Content is stored once per deployment, but a repository reads only what it links: a
digest that another repository holds is BLOB_UNKNOWN here until pushed or mounted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from haven.errors import BlobUnknown
from haven.oci.digest import parse_digest
from haven.store.content import BlobStore
from haven.store.metadata import MetadataStore


@dataclass(frozen=True, slots=True)
class BlobFile:
    """A blob to send from the filesystem."""

    digest: str
    size: int
    path: Path


@dataclass(frozen=True, slots=True)
class BlobObject:
    """A blob in an object store: handed out as a signed URL or streamed."""

    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class BlobBytes:
    """A manifest read through the blobs endpoint: small, sent from memory."""

    digest: str
    media_type: str
    data: bytes


class BlobService:
    def __init__(self, metadata: MetadataStore, store: BlobStore) -> None:
        self._metadata = metadata
        self._store = store

    async def get(
        self, registry_id: int, repository: str, digest: str
    ) -> BlobFile | BlobObject | BlobBytes:
        parse_digest(digest)
        size = await self._metadata.blob_size_in_repository(registry_id, repository, digest)
        if size is not None:
            path = self._store.local_path(digest)
            return BlobObject(digest, size) if path is None else BlobFile(digest, size, path)
        # Manifests are content too; clients may fetch them by digest as blobs.
        manifest = await self._metadata.get_manifest(registry_id, repository, digest, True)
        if manifest is not None:
            return BlobBytes(digest, manifest.media_type, manifest.payload)
        raise BlobUnknown(f"blob {digest} is not in repository {repository}")

    async def mount(
        self, registry_id: int, repository: str, digest: str, source: str | None
    ) -> bool:
        parse_digest(digest)
        return await self._metadata.mount_blob(registry_id, repository, digest, source)

    async def delete(self, registry_id: int, repository: str, digest: str) -> None:
        parse_digest(digest)
        if not await self._metadata.unlink_blob(registry_id, repository, digest):
            raise BlobUnknown(f"blob {digest} is not in repository {repository}")

    async def download_url(self, digest: str, expires_in: float) -> str | None:
        return await asyncio.to_thread(self._store.download_url_sync, digest, expires_in)

    def stream(self, digest: str, offset: int, length: int) -> Iterator[bytes]:
        """A blocking iterator over a range of the blob (Starlette runs it in a thread)."""
        return self._store.read_sync(digest, offset, length)
