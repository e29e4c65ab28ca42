"""The metadata store: every query Haven runs, in one place, on SQLite or PostgreSQL.

Methods speak registries, repositories, blobs, manifests and tags; each runs as one
thread hop (`Database.read` / `Database.write`). Repositories are created by the first
write that gives them content, so a cancelled upload leaves no empty repository behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from haven.errors import Conflict, Denied, ManifestBlobUnknown, ManifestInvalid, ManifestUnknown
from haven.oci.manifest import ParsedManifest
from haven.store import gc, soft_delete, usage
from haven.store.db import Conn, Database
from haven.store.locks import LOCK_COLUMNS

BLOB, MANIFEST = 0, 1


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: str
    media_type: str
    payload: bytes
    # Which lock forbids reading it, if any: "repository", "manifest" or "tag".
    read_locked_by: str | None = None


@dataclass(frozen=True, slots=True)
class Referrer:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


@dataclass(frozen=True, slots=True)
class Upload:
    id: str
    registry_id: int
    repository: str
    hash_state: bytes | None = None  # the sha256 state after the last chunk (resumable)


def _repository_id(c: Conn, registry_id: int, name: str) -> int | None:
    value = c.value(
        "SELECT id FROM repositories WHERE registry_id = ? AND name = ?", registry_id, name
    )
    return None if value is None else int(value)


def _ensure_repository(c: Conn, registry_id: int, name: str) -> int:
    found = _repository_id(c, registry_id, name)
    if found is not None:
        return found
    c.exec(
        "INSERT INTO repositories (registry_id, name, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (registry_id, name) DO NOTHING",
        registry_id,
        name,
        now_ms(),
    )
    created = _repository_id(c, registry_id, name)
    assert created is not None
    return created


def _linked_blob_size(c: Conn, registry_id: int, repository: str, digest: str) -> int | None:
    """The size of a blob that `repository` links, or None."""
    value = c.value(
        "SELECT b.size FROM repositories r "
        "JOIN repository_blobs rb ON rb.repository_id = r.id "
        "JOIN blobs b ON b.digest = rb.digest "
        "WHERE r.registry_id = ? AND r.name = ? AND rb.digest = ?",
        registry_id,
        repository,
        digest,
    )
    return None if value is None else int(value)


def _locked(what: str, name: str, attribute: str) -> Denied:
    return Denied(
        f"{what} {name} is locked: {attribute} is false; change it with haven repository update",
        detail={"locked": what, "attribute": attribute},
    )


def _require_writable(c: Conn, repository_id: int, repository: str) -> None:
    if not c.value("SELECT write_enabled FROM repositories WHERE id = ?", repository_id):
        raise _locked("repository", repository, "writeEnabled")


def _note_if_untagged(c: Conn, repository_id: int, digest: str, stamp: int) -> None:
    """Record when a manifest became untagged (for the retention policy), if it is."""
    c.exec(
        "UPDATE manifests SET untagged_at = ? WHERE repository_id = ? AND digest = ? "
        "AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = manifests.repository_id "
        "AND t.manifest_digest = manifests.digest)",
        stamp,
        repository_id,
        digest,
    )


def _link_blob(
    c: Conn, repository_id: int, digest: str, size: int, ensure: Callable[[], None] | None = None
) -> None:
    """Link a blob into a repository. `ensure` (after an upload) makes sure the bytes are
    there: it runs with the blob's row locked, so garbage collection, which deletes a
    blob's file and row under the same lock, cannot interleave.

    A link's `created_at` is when it was last linked: an upload or mount of a blob that
    the repository holds already renews it, so garbage collection's grace period for
    links no manifest references yet starts again."""
    stamp = now_ms()
    c.exec(
        "INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) "
        "ON CONFLICT (digest) DO UPDATE SET size = excluded.size",
        digest,
        size,
        stamp,
    )
    if ensure is not None:
        ensure()
    c.exec(
        "INSERT INTO repository_blobs (repository_id, digest, created_at, pending) "
        "VALUES (?, ?, ?, 1) ON CONFLICT (repository_id, digest) "
        "DO UPDATE SET created_at = excluded.created_at, pending = 1",
        repository_id,
        digest,
        stamp,
    )


class MetadataStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Registries ------------------------------------------------------------------

    def ensure_registry_sync(self, name: str, login_servers: Sequence[str]) -> int:
        def work(c: Conn) -> int:
            c.exec(
                "INSERT INTO registries (name, created_at) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                name,
                now_ms(),
            )
            registry_id = int(c.value("SELECT id FROM registries WHERE name = ?", name))
            for host in login_servers:
                c.exec(
                    "INSERT INTO login_servers (host, registry_id) VALUES (?, ?) "
                    "ON CONFLICT (host) DO NOTHING",
                    host.lower(),
                    registry_id,
                )
            return registry_id

        return self.db.write_sync(work)

    async def login_servers(self) -> dict[str, int]:
        rows = await self.db.read(lambda c: c.all("SELECT host, registry_id FROM login_servers"))
        return {str(host): int(rid) for host, rid in rows}

    # Blobs -----------------------------------------------------------------------

    async def blob_size_in_repository(
        self, registry_id: int, repository: str, digest: str
    ) -> int | None:
        """The blob's size if `repository` may read it, else None; Denied when the
        repository is locked against reads."""

        def work(c: Conn) -> int | None:
            row = c.one(
                "SELECT b.size, r.read_enabled FROM repositories r "
                "JOIN repository_blobs rb ON rb.repository_id = r.id "
                "JOIN blobs b ON b.digest = rb.digest "
                "WHERE r.registry_id = ? AND r.name = ? AND rb.digest = ?",
                registry_id,
                repository,
                digest,
            )
            if row is None:
                return None
            if not row[1]:
                raise _locked("repository", repository, "readEnabled")
            return int(row[0])

        return await self.db.read(work)

    async def require_room(self, registry_id: int, digest: str, size: int) -> None:
        """Denied (QuotaExceeded) when a blob new to the registry would not fit in its
        quota. Advisory: the push of the manifest that references it decides, inside its
        transaction, so concurrent uploads cannot jointly overshoot the quota."""

        def work(c: Conn) -> None:
            known = c.value(
                "SELECT 1 FROM registry_content WHERE registry_id = ? AND digest = ?",
                registry_id,
                digest,
            )
            if known is not None:
                return
            current = usage.usage(c, registry_id)
            if current.used_bytes + size > current.quota_bytes:
                raise usage.QuotaExceeded(current.used_bytes, size, current.quota_bytes)

        await self.db.read(work)

    async def link_blob(
        self,
        registry_id: int,
        repository: str,
        digest: str,
        size: int,
        ensure: Callable[[], None] | None = None,
    ) -> None:
        def work(c: Conn) -> None:
            repository_id = _ensure_repository(c, registry_id, repository)
            _require_writable(c, repository_id, repository)
            _link_blob(c, repository_id, digest, size, ensure)

        await self.db.write(work, content=False)

    async def complete_upload(
        self,
        upload_id: str,
        registry_id: int,
        repository: str,
        digest: str,
        size: int,
        ensure: Callable[[], None],
    ) -> None:
        """Link a verified, published blob and forget its upload, in one transaction."""

        def work(c: Conn) -> None:
            repository_id = _ensure_repository(c, registry_id, repository)
            _require_writable(c, repository_id, repository)
            _link_blob(c, repository_id, digest, size, ensure)
            c.exec("DELETE FROM uploads WHERE id = ?", upload_id)

        await self.db.write(work, content=False)

    async def mount_blob(
        self, registry_id: int, repository: str, digest: str, source: str | None
    ) -> bool:
        """Link a blob that another repository of the registry holds.

        With `source`, only that repository is looked at; without it, any repository of
        the registry. Returns False when no such blob is linked there.
        """

        def work(c: Conn) -> bool:
            if source is not None:
                size = _linked_blob_size(c, registry_id, source, digest)
            else:
                size = c.value(
                    "SELECT b.size FROM blobs b WHERE b.digest = ? AND EXISTS ("
                    "SELECT 1 FROM repository_blobs rb JOIN repositories r "
                    "ON r.id = rb.repository_id WHERE rb.digest = b.digest "
                    "AND r.registry_id = ?)",
                    digest,
                    registry_id,
                )
            if size is None:
                return False
            repository_id = _ensure_repository(c, registry_id, repository)
            _require_writable(c, repository_id, repository)
            _link_blob(c, repository_id, digest, int(size))
            return True

        return await self.db.write(work, content=False)

    async def unlink_blob(self, registry_id: int, repository: str, digest: str) -> bool:
        def work(c: Conn) -> bool:
            repository_id = _repository_id(c, registry_id, repository)
            if repository_id is None:
                return False
            removed = c.exec(
                "DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?",
                repository_id,
                digest,
            )
            gc.enqueue(c, [digest] if removed else [], now_ms())
            return removed > 0

        return await self.db.write(work, content=False)

    # Uploads ---------------------------------------------------------------------

    async def create_upload(self, upload_id: str, registry_id: int, repository: str) -> None:
        def work(c: Conn) -> None:
            repository_id = _repository_id(c, registry_id, repository)
            if repository_id is not None:
                _require_writable(c, repository_id, repository)
            c.exec(
                "INSERT INTO uploads (id, registry_id, repository, created_at) VALUES (?, ?, ?, ?)",
                upload_id,
                registry_id,
                repository,
                now_ms(),
            )

        await self.db.write(work, content=False)

    async def get_upload(self, upload_id: str) -> Upload | None:
        row = await self.db.read(
            lambda c: c.one(
                "SELECT id, registry_id, repository, hash_state FROM uploads WHERE id = ?",
                upload_id,
            )
        )
        if row is None:
            return None
        state = None if row[3] is None else bytes(row[3])
        return Upload(str(row[0]), int(row[1]), str(row[2]), state)

    async def save_upload_hash(self, upload_id: str, state: bytes | None) -> None:
        await self.db.write(
            lambda c: c.exec("UPDATE uploads SET hash_state = ? WHERE id = ?", state, upload_id),
            content=False,
        )

    async def delete_upload(self, upload_id: str) -> None:
        await self.db.write(
            lambda c: c.exec("DELETE FROM uploads WHERE id = ?", upload_id), content=False
        )

    # Manifests -------------------------------------------------------------------

    async def get_manifest(
        self, registry_id: int, repository: str, reference: str, by_digest: bool
    ) -> StoredManifest | None:
        if by_digest:
            sql = (
                "SELECT m.digest, m.media_type, m.payload, r.read_enabled, m.read_enabled, 1 "
                "FROM repositories r JOIN manifests m ON m.repository_id = r.id "
                "WHERE r.registry_id = ? AND r.name = ? AND m.digest = ?"
            )
        else:
            sql = (
                "SELECT m.digest, m.media_type, m.payload, r.read_enabled, m.read_enabled, "
                "t.read_enabled FROM repositories r "
                "JOIN tags t ON t.repository_id = r.id "
                "JOIN manifests m ON m.repository_id = r.id AND m.digest = t.manifest_digest "
                "WHERE r.registry_id = ? AND r.name = ? AND t.name = ?"
            )
        row = await self.db.read(lambda c: c.one(sql, registry_id, repository, reference))
        if row is None:
            return None
        levels = zip(("repository", "manifest", "tag"), row[3:6], strict=True)
        locked = next((what for what, ok in levels if not ok), None)
        return StoredManifest(str(row[0]), str(row[1]), bytes(row[2]), locked)

    async def repository_exists(self, registry_id: int, repository: str) -> bool:
        return await self.db.read(lambda c: _repository_id(c, registry_id, repository)) is not None

    async def put_manifest(
        self,
        registry_id: int,
        repository: str,
        digest: str,
        manifest: ParsedManifest,
        payload: bytes,
        tag: str | None,
        platform: tuple[str | None, str | None] = (None, None),
    ) -> None:
        """Store a manifest (and move `tag` to it) once everything it names is present.

        Raises ManifestBlobUnknown naming the first missing blob or child manifest,
        ManifestInvalid when a descriptor's size disagrees with what is stored, and
        Denied when the repository or the tag is locked against writes. The checks and
        the write happen in one transaction.
        """
        annotations = orjson.dumps(manifest.annotations).decode() if manifest.annotations else None

        def work(c: Conn) -> None:
            repository_id = _ensure_repository(c, registry_id, repository)
            _require_writable(c, repository_id, repository)
            current = None
            if tag is not None:
                current = c.one(
                    "SELECT manifest_digest, write_enabled FROM tags "
                    "WHERE repository_id = ? AND name = ?",
                    repository_id,
                    tag,
                )
                if current is not None and not current[1] and current[0] != digest:
                    raise _locked("tag", f"{repository}:{tag}", "writeEnabled")
            references: list[tuple[int, str]] = []
            blob_sizes: dict[str, int] = {}
            for blob in manifest.blobs:
                size = c.value(
                    "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest "
                    "WHERE rb.repository_id = ? AND rb.digest = ?",
                    repository_id,
                    blob.digest,
                )
                if size is None:
                    if blob.may_be_absent:
                        continue
                    raise ManifestBlobUnknown(
                        f"blob {blob.digest} is not in repository {repository}",
                        detail={"digest": blob.digest},
                    )
                if int(size) != blob.size:
                    raise ManifestInvalid(
                        f"descriptor of {blob.digest} says {blob.size} bytes, "
                        f"the stored blob has {size}"
                    )
                references.append((BLOB, blob.digest))
                blob_sizes[blob.digest] = int(size)
            for child in manifest.children:
                size = c.value(
                    "SELECT size FROM manifests WHERE repository_id = ? AND digest = ?",
                    repository_id,
                    child.digest,
                )
                if size is None:
                    raise ManifestBlobUnknown(
                        f"manifest {child.digest} is not in repository {repository}",
                        detail={"digest": child.digest},
                    )
                if int(size) != child.size:
                    raise ManifestInvalid(
                        f"descriptor of {child.digest} says {child.size} bytes, "
                        f"the stored manifest has {size}"
                    )
                references.append((MANIFEST, child.digest))
            stamp = now_ms()
            inserted = c.exec(
                "INSERT INTO manifests (repository_id, digest, media_type, artifact_type, "
                "subject_digest, annotations, size, payload, created_at, updated_at, "
                "config_media_type, architecture, os) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (repository_id, digest) DO NOTHING",
                repository_id,
                digest,
                manifest.media_type,
                manifest.artifact_type,
                manifest.subject.digest if manifest.subject else None,
                annotations,
                len(payload),
                payload,
                stamp,
                stamp,
                manifest.config.media_type if manifest.config else None,
                platform[0],
                platform[1],
            )
            c.exec("UPDATE repositories SET updated_at = ? WHERE id = ?", stamp, repository_id)
            manifest_id = c.value(
                "SELECT id FROM manifests WHERE repository_id = ? AND digest = ?",
                repository_id,
                digest,
            )
            c.exec_many(
                "INSERT INTO manifest_references (manifest_id, kind, digest) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                [(manifest_id, kind, ref) for kind, ref in dict.fromkeys(references)],
            )
            if inserted:
                usage.add_references(c, registry_id, {digest: len(payload), **blob_sizes})
            if tag is not None:
                c.exec(
                    "INSERT INTO tags (repository_id, name, manifest_digest, updated_at, "
                    "created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (repository_id, name) "
                    "DO UPDATE SET manifest_digest = excluded.manifest_digest, "
                    "updated_at = excluded.updated_at",
                    repository_id,
                    tag,
                    digest,
                    stamp,
                    stamp,
                )
                c.exec(
                    "UPDATE manifests SET untagged_at = NULL "
                    "WHERE repository_id = ? AND digest = ?",
                    repository_id,
                    digest,
                )
                if current is not None and current[0] != digest:
                    _note_if_untagged(c, repository_id, str(current[0]), stamp)
            elif inserted:
                _note_if_untagged(c, repository_id, digest, stamp)

        await self.db.write(work)

    async def delete_manifest(self, registry_id: int, repository: str, digest: str) -> bool:
        """Delete a manifest and every tag pointing at it; Denied when the repository,
        the manifest or one of those tags is locked against deletion. With the registry's
        soft delete enabled they are kept as soft-deleted (store/soft_delete.py): their
        usage and blob links stay."""

        def work(c: Conn) -> bool:
            row = c.one(
                "SELECT r.id, r.delete_enabled, m.delete_enabled FROM repositories r "
                "JOIN manifests m ON m.repository_id = r.id "
                "WHERE r.registry_id = ? AND r.name = ? AND m.digest = ?",
                registry_id,
                repository,
                digest,
            )
            if row is None:
                return False
            repository_id = int(row[0])
            if not row[1]:
                raise _locked("repository", repository, "deleteEnabled")
            if not row[2]:
                raise _locked("manifest", f"{repository}@{digest}", "deleteEnabled")
            locked_tag = c.value(
                "SELECT name FROM tags WHERE repository_id = ? AND manifest_digest = ? "
                "AND delete_enabled = 0 LIMIT 1",
                repository_id,
                digest,
            )
            if locked_tag is not None:
                raise _locked("tag", f"{repository}:{locked_tag}", "deleteEnabled")
            # Rows are locked in the order a push locks them (repository, then usage),
            # so that a delete and a push on PostgreSQL cannot deadlock.
            stamp = now_ms()
            c.exec("UPDATE repositories SET updated_at = ? WHERE id = ?", stamp, repository_id)
            soft = soft_delete.enabled(c, registry_id)
            if soft:
                soft_delete.keep_tags(
                    c, registry_id, repository_id, repository, stamp, digest=digest
                )
            c.exec(
                "DELETE FROM tags WHERE repository_id = ? AND manifest_digest = ?",
                repository_id,
                digest,
            )
            found = c.one(
                "SELECT id, created_at FROM manifests WHERE repository_id = ? AND digest = ?",
                repository_id,
                digest,
            )
            assert found is not None, "the manifest was just read in this transaction"
            manifest_id, pushed_at = int(found[0]), int(found[1])
            if soft:
                released = soft_delete.keep_manifest(c, registry_id, repository, manifest_id, stamp)
                c.exec("DELETE FROM manifests WHERE id = ?", manifest_id)
                usage.remove_references(c, registry_id, [(d, 1) for d in released])
                return True
            blobs = [
                str(r[0])
                for r in c.all(
                    "SELECT digest FROM manifest_references WHERE manifest_id = ? AND kind = 0",
                    manifest_id,
                )
            ]
            c.exec("DELETE FROM manifests WHERE id = ?", manifest_id)
            # The references it held: its own digest and each blob it names, once each.
            usage.remove_references(c, registry_id, [(d, 1) for d in (digest, *blobs)])
            gc.unlink_released(c, repository_id, blobs, pushed_at, stamp)
            soft_delete.forget_tags(c, registry_id, repository, digest)
            return True

        return await self.db.write(work)

    async def delete_tag(self, registry_id: int, repository: str, tag: str) -> bool:
        def work(c: Conn) -> bool:
            row = c.one(
                "SELECT r.id, r.delete_enabled, t.delete_enabled, t.manifest_digest "
                "FROM repositories r JOIN tags t ON t.repository_id = r.id "
                "WHERE r.registry_id = ? AND r.name = ? AND t.name = ?",
                registry_id,
                repository,
                tag,
            )
            if row is None:
                return False
            if not row[1]:
                raise _locked("repository", repository, "deleteEnabled")
            if not row[2]:
                raise _locked("tag", f"{repository}:{tag}", "deleteEnabled")
            repository_id, stamp = int(row[0]), now_ms()
            if soft_delete.enabled(c, registry_id):
                soft_delete.keep_tags(c, registry_id, repository_id, repository, stamp, name=tag)
            c.exec("DELETE FROM tags WHERE repository_id = ? AND name = ?", repository_id, tag)
            _note_if_untagged(c, repository_id, str(row[3]), stamp)
            return True

        return await self.db.write(work)

    async def restore_manifest(
        self, registry_id: int, repository: str, digest: str, tag: str | None, force: bool
    ) -> None:
        """Restore a soft-deleted manifest and/or point `tag` at it again.

        What comes back: the soft-deleted manifest `digest` of the repository if there is
        one (its references and blob links with it), and the soft-deleted tag `tag` that
        named it. With `tag`, the tag points at the manifest afterwards even if it was
        never soft-deleted as its tag. Raises ManifestUnknown when there is nothing of the
        kind to restore (never deleted, purged, or restored already: of two concurrent
        restores of one item, exactly one succeeds); Conflict when `tag` points at
        another manifest now, unless `force`; Denied when the repository or that tag is
        locked against writes.
        """

        def work(c: Conn) -> None:
            stamp = now_ms()
            repository_id = _ensure_repository(c, registry_id, repository)
            _require_writable(c, repository_id, repository)
            # The repository's row first, as a push and a delete lock it: concurrent
            # restores of one repository queue here, and each finds what the last left.
            c.exec("UPDATE repositories SET updated_at = ? WHERE id = ?", stamp, repository_id)
            kept_tag = (
                soft_delete.claim_tag(c, registry_id, repository, tag, digest)
                if tag is not None
                else None
            )
            kept = soft_delete.claim_manifest(c, registry_id, repository, digest)
            live = (
                c.value(
                    "SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?",
                    repository_id,
                    digest,
                )
                is not None
            )
            if kept is None and (kept_tag is None or not live):
                what = f"{repository}:{tag} naming {digest}" if tag else f"{repository}@{digest}"
                raise ManifestUnknown(
                    f"nothing soft-deleted to restore: {what} is not soft-deleted (never "
                    "deleted, purged, or restored already)",
                    detail={"digest": digest, "tag": tag},
                )
            current = None
            if tag is not None:
                current = c.one(
                    "SELECT manifest_digest, write_enabled FROM tags "
                    "WHERE repository_id = ? AND name = ?",
                    repository_id,
                    tag,
                )
            moved = current is not None and str(current[0]) != digest
            if current is not None and moved:
                if not force:
                    raise Conflict(
                        f"tag {repository}:{tag} points at {current[0]} now; restore with "
                        "force (-f/--force) to move it to the restored manifest",
                        detail={"tag": tag, "digest": str(current[0])},
                    )
                if not current[1]:
                    raise _locked("tag", f"{repository}:{tag}", "writeEnabled")
            if kept is not None:
                if live:
                    # Pushed again since: the live manifest holds the same references.
                    held = soft_delete.usage_digests(c, kept)
                    usage.remove_references(c, registry_id, [(d, 1) for d in held])
                else:
                    soft_delete.bring_back(c, kept, repository_id)
                soft_delete.drop(c, kept)
            if tag is None:
                if not live:
                    _note_if_untagged(c, repository_id, digest, stamp)
                return
            locks = kept_tag.locks if kept_tag is not None else (1,) * len(LOCK_COLUMNS)
            c.exec(
                "INSERT INTO tags (repository_id, name, manifest_digest, updated_at, created_at, "
                f"{', '.join(LOCK_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repository_id, name) "
                "DO UPDATE SET manifest_digest = excluded.manifest_digest, "
                "updated_at = excluded.updated_at",
                repository_id,
                tag,
                digest,
                stamp,
                kept_tag.created_at if kept_tag is not None and kept_tag.created_at else stamp,
                *locks,
            )
            c.exec(
                "UPDATE manifests SET untagged_at = NULL WHERE repository_id = ? AND digest = ?",
                repository_id,
                digest,
            )
            if current is not None and moved:
                _note_if_untagged(c, repository_id, str(current[0]), stamp)

        return await self.db.write(work)

    # Listing ---------------------------------------------------------------------

    async def list_tags(
        self, registry_id: int, repository: str, last: str | None, limit: int
    ) -> list[str] | None:
        """Up to `limit` listable tags after `last`, sorted; None if the repository is
        unknown; Denied when the repository is locked against listing."""

        def work(c: Conn) -> list[str] | None:
            row = c.one(
                "SELECT id, list_enabled FROM repositories WHERE registry_id = ? AND name = ?",
                registry_id,
                repository,
            )
            if row is None:
                return None
            if not row[1]:
                raise _locked("repository", repository, "listEnabled")
            rows = c.all(
                "SELECT name FROM tags WHERE repository_id = ? AND name > ? "
                "AND list_enabled = 1 ORDER BY name LIMIT ?",
                int(row[0]),
                last or "",
                limit,
            )
            return [str(r[0]) for r in rows]

        return await self.db.read(work)

    async def list_repositories(self, registry_id: int, last: str | None, limit: int) -> list[str]:
        rows = await self.db.read(
            lambda c: c.all(
                "SELECT name FROM repositories WHERE registry_id = ? AND name > ? "
                "AND list_enabled = 1 ORDER BY name LIMIT ?",
                registry_id,
                last or "",
                limit,
            )
        )
        return [str(r[0]) for r in rows]

    async def referrers(
        self, registry_id: int, repository: str, subject: str, artifact_type: str | None
    ) -> list[Referrer]:
        sql = (
            "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations "
            "FROM repositories r JOIN manifests m ON m.repository_id = r.id "
            "WHERE r.registry_id = ? AND r.name = ? AND m.subject_digest = ?"
        )
        args: list[object] = [registry_id, repository, subject]
        if artifact_type is not None:
            sql += " AND m.artifact_type = ?"
            args.append(artifact_type)
        sql += " ORDER BY m.created_at, m.digest"
        rows = await self.db.read(lambda c: c.all(sql, *args))
        return [
            Referrer(
                str(r[0]),
                str(r[1]),
                int(r[2]),
                r[3],
                orjson.loads(r[4]) if r[4] else None,
            )
            for r in rows
        ]
