"""Manifests: push with validation, pull by tag or digest, delete, referrers."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import orjson

from haven.errors import Denied, DigestInvalid, ManifestUnknown, NameUnknown
from haven.oci.digest import digest_bytes, is_digest, parse_digest
from haven.oci.manifest import ParsedManifest, parse_manifest
from haven.oci.names import validate_tag
from haven.services.manifest_cache import ManifestCache
from haven.store.content import BlobStore
from haven.store.metadata import MetadataStore, Referrer, StoredManifest

# Below this size, hashing and parsing on the event loop is cheaper than a thread hop.
INLINE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class PushedManifest:
    digest: str
    subject: str | None


def _digest_and_parse(
    body: bytes, content_type: str | None, algorithm: str
) -> tuple[str, ParsedManifest]:
    return digest_bytes(body, algorithm), parse_manifest(body, content_type)


IMAGE_CONFIGS = {
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
}
MAX_CONFIG_BYTES = 1024 * 1024


def _read_platform(store: BlobStore, digest: str) -> tuple[str | None, str | None]:
    """An image config's architecture and os (for ACR's manifest listing)."""
    try:
        data = b"".join(store.read_sync(digest, 0, MAX_CONFIG_BYTES + 1))
        config = orjson.loads(data)
    except Exception:  # the platform is a listing nicety: unreadable means unknown
        return None, None
    if not isinstance(config, dict):
        return None, None
    arch, system = config.get("architecture"), config.get("os")
    return (
        arch[:64] if isinstance(arch, str) else None,
        system[:64] if isinstance(system, str) else None,
    )


class ManifestService:
    def __init__(
        self,
        metadata: MetadataStore,
        store: BlobStore,
        pool: ThreadPoolExecutor,
        cache: ManifestCache,
    ) -> None:
        self._metadata = metadata
        self._store = store
        self._pool = pool
        self._cache = cache

    async def get(self, registry_id: int, repository: str, reference: str) -> StoredManifest:
        by_digest = is_digest(reference)
        if by_digest:
            parse_digest(reference)
        else:
            validate_tag(reference)
        key = (registry_id, repository, reference)
        found, epoch = self._cache.lookup(key)
        if found is None:
            found = await self._metadata.get_manifest(registry_id, repository, reference, by_digest)
            if found is not None:
                self._cache.store(key, found, epoch)
        if found is None:
            if not await self._metadata.repository_exists(registry_id, repository):
                raise NameUnknown(f"repository {repository} is not known to this registry")
            raise ManifestUnknown(f"manifest {reference} is not in repository {repository}")
        if found.read_locked_by is not None:
            what = {
                "tag": f"tag {repository}:{reference}",
                "repository": f"repository {repository}",
            }
            raise Denied(
                f"{what.get(found.read_locked_by, f'manifest {repository}@{found.digest}')} "
                "is locked: readEnabled is false",
                detail={"locked": found.read_locked_by, "attribute": "readEnabled"},
            )
        return found

    async def put(
        self,
        registry_id: int,
        repository: str,
        reference: str,
        content_type: str | None,
        body: bytes,
    ) -> PushedManifest:
        if is_digest(reference):
            algorithm, tag = parse_digest(reference).algorithm, None
        else:
            algorithm, tag = "sha256", validate_tag(reference)
        if len(body) <= INLINE_BYTES:
            digest, manifest = _digest_and_parse(body, content_type, algorithm)
        else:
            loop = asyncio.get_running_loop()
            digest, manifest = await loop.run_in_executor(
                self._pool, _digest_and_parse, body, content_type, algorithm
            )
        if tag is None and digest != reference:
            raise DigestInvalid(
                f"manifest bytes have digest {digest}, not {reference}; nothing was stored"
            )
        platform: tuple[str | None, str | None] = (None, None)
        config = manifest.config
        if (
            config is not None
            and config.media_type in IMAGE_CONFIGS
            and config.size <= MAX_CONFIG_BYTES
        ):
            loop = asyncio.get_running_loop()
            platform = await loop.run_in_executor(
                self._pool, _read_platform, self._store, config.digest
            )
        await self._metadata.put_manifest(
            registry_id, repository, digest, manifest, body, tag, platform
        )
        return PushedManifest(digest, manifest.subject.digest if manifest.subject else None)

    async def delete(self, registry_id: int, repository: str, reference: str) -> None:
        if is_digest(reference):
            parse_digest(reference)
            deleted = await self._metadata.delete_manifest(registry_id, repository, reference)
        else:
            validate_tag(reference)
            deleted = await self._metadata.delete_tag(registry_id, repository, reference)
        if not deleted:
            raise ManifestUnknown(f"manifest {reference} is not in repository {repository}")

    async def restore(
        self, registry_id: int, repository: str, digest: str, tag: str | None, force: bool
    ) -> None:
        """Restore the soft-deleted manifest `digest` and/or the soft-deleted tag `tag`
        that named it (see MetadataStore.restore_manifest for what may be refused)."""
        parse_digest(digest)
        if tag is not None:
            validate_tag(tag)
        await self._metadata.restore_manifest(registry_id, repository, digest, tag, force)

    async def referrers(
        self, registry_id: int, repository: str, subject: str, artifact_type: str | None
    ) -> list[Referrer]:
        parse_digest(subject)
        return await self._metadata.referrers(registry_id, repository, subject, artifact_type)
