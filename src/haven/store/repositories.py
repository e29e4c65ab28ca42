"""Queries behind ACR's repository API (`/acr/v1/`): attributes, tag and manifest
details, lock changes, repository deletion, and soft-deleted content (`/acr/v1/_deleted/`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from haven.errors import Denied
from haven.store import gc, retention, soft_delete, usage
from haven.store.db import Conn, Database
from haven.store.locks import LOCK_COLUMNS, LOCK_NAMES
from haven.store.metadata import now_ms
from haven.store.usage import Usage

_LOCKS_SQL = ", ".join(LOCK_COLUMNS)


def _attributes(values: Sequence[Any]) -> dict[str, bool]:
    return {name: bool(v) for name, v in zip(LOCK_NAMES, values, strict=True)}


@dataclass(frozen=True, slots=True)
class RepositoryDetail:
    id: int
    name: str
    created_at: int
    updated_at: int
    manifest_count: int
    tag_count: int
    attributes: dict[str, bool]


@dataclass(frozen=True, slots=True)
class TagDetail:
    name: str
    digest: str
    created_at: int
    updated_at: int
    attributes: dict[str, bool]


@dataclass(frozen=True, slots=True)
class ManifestDetail:
    digest: str
    size: int
    created_at: int
    updated_at: int
    media_type: str
    config_media_type: str | None
    architecture: str | None
    os: str | None
    tags: list[str]
    attributes: dict[str, bool]


def _repository(c: Conn, registry_id: int, name: str) -> RepositoryDetail | None:
    row = c.one(
        f"SELECT id, name, created_at, updated_at, {_LOCKS_SQL} FROM repositories "
        "WHERE registry_id = ? AND name = ?",
        registry_id,
        name,
    )
    if row is None:
        return None
    repository_id = int(row[0])
    manifests = int(
        c.value("SELECT COUNT(*) FROM manifests WHERE repository_id = ?", repository_id)
    )
    tags = int(c.value("SELECT COUNT(*) FROM tags WHERE repository_id = ?", repository_id))
    created = int(row[2])
    return RepositoryDetail(
        repository_id,
        str(row[1]),
        created,
        int(row[3]) or created,
        manifests,
        tags,
        _attributes(row[4:8]),
    )


def _tag(row: Sequence[Any]) -> TagDetail:
    updated = int(row[3])
    return TagDetail(
        str(row[0]), str(row[1]), int(row[2]) or updated, updated, _attributes(row[4:8])
    )


_TAG_COLUMNS = "t.name, t.manifest_digest, t.created_at, t.updated_at, " + ", ".join(
    "t." + c for c in LOCK_COLUMNS
)
_MANIFEST_COLUMNS = (
    "m.digest, m.size, m.created_at, m.updated_at, m.media_type, m.config_media_type, "
    f"m.architecture, m.os, {', '.join('m.' + c for c in LOCK_COLUMNS)}"
)


def _manifests(c: Conn, repository_id: int, rows: list[Sequence[Any]]) -> list[ManifestDetail]:
    out = []
    for row in rows:
        tags = [
            str(t[0])
            for t in c.all(
                "SELECT name FROM tags WHERE repository_id = ? AND manifest_digest = ? "
                "ORDER BY name",
                repository_id,
                row[0],
            )
        ]
        created = int(row[2])
        out.append(
            ManifestDetail(
                str(row[0]),
                int(row[1]),
                created,
                int(row[3]) or created,
                str(row[4]),
                row[5],
                row[6],
                row[7],
                tags,
                _attributes(row[8:12]),
            )
        )
    return out


def _order(orderby: str | None, alias: str, name_column: str) -> str:
    if orderby == "timedesc":
        return f"ORDER BY {alias}.updated_at DESC, {alias}.{name_column}"
    if orderby == "timeasc":
        return f"ORDER BY {alias}.updated_at ASC, {alias}.{name_column}"
    return f"ORDER BY {alias}.{name_column}"


def _after(
    c: Conn,
    orderby: str | None,
    alias: str,
    name_column: str,
    table: str,
    repository_id: int,
    last: str | None,
) -> tuple[str, list[Any]]:
    """The WHERE fragment that continues a listing after the entry named `last`."""
    if not last:
        return "", []
    if orderby not in ("timedesc", "timeasc"):
        return f" AND {alias}.{name_column} > ?", [last]
    stamp = c.value(
        f"SELECT updated_at FROM {table} WHERE repository_id = ? AND {name_column} = ?",
        repository_id,
        last,
    )
    if stamp is None:
        return f" AND {alias}.{name_column} > ?", [last]
    op = "<" if orderby == "timedesc" else ">"
    column = f"{alias}.{name_column}"
    return (
        f" AND ({alias}.updated_at {op} ? OR ({alias}.updated_at = ? AND {column} > ?))",
        [stamp, stamp, last],
    )


class RepositoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def repository(self, registry_id: int, name: str) -> RepositoryDetail | None:
        return await self.db.read(lambda c: _repository(c, registry_id, name))

    async def set_repository_attributes(
        self, registry_id: int, name: str, changes: dict[str, bool]
    ) -> RepositoryDetail | None:
        def work(c: Conn) -> RepositoryDetail | None:
            found = _repository(c, registry_id, name)
            if found is None:
                return None
            for attribute, value in changes.items():
                c.exec(
                    f"UPDATE repositories SET {LOCK_NAMES[attribute]} = ? WHERE id = ?",
                    int(value),
                    found.id,
                )
            return _repository(c, registry_id, name)

        return await self.db.write(work)

    async def delete_repository(
        self, registry_id: int, name: str
    ) -> tuple[list[str], list[str]] | None:
        """Delete a repository with its manifests, tags and blob links; returns the
        deleted manifest digests and tags. Denied when anything in it is locked. With the
        registry's soft delete enabled, its manifests and tags are kept as soft-deleted
        (their usage stays; garbage collection keeps their blobs unlinked)."""

        def work(c: Conn) -> tuple[list[str], list[str]] | None:
            found = _repository(c, registry_id, name)
            if found is None:
                return None
            if not found.attributes["deleteEnabled"]:
                raise Denied(f"repository {name} is locked: deleteEnabled is false")
            for table, what in (("manifests", "digest"), ("tags", "name")):
                locked = c.value(
                    f"SELECT {what} FROM {table} WHERE repository_id = ? AND delete_enabled = 0 "
                    "LIMIT 1",
                    found.id,
                )
                if locked is not None:
                    raise Denied(
                        f"repository {name} holds {locked}, which is locked: deleteEnabled is false"
                    )
            digests = [
                str(r[0])
                for r in c.all(
                    "SELECT digest FROM manifests WHERE repository_id = ? ORDER BY digest", found.id
                )
            ]
            tags = [
                str(r[0])
                for r in c.all(
                    "SELECT name FROM tags WHERE repository_id = ? ORDER BY name", found.id
                )
            ]
            stamp = now_ms()
            if soft_delete.enabled(c, registry_id):
                soft_delete.keep_tags(c, registry_id, found.id, name, stamp)
                held: Counter[str] = Counter()
                for row in c.all("SELECT id FROM manifests WHERE repository_id = ?", found.id):
                    held.update(soft_delete.keep_manifest(c, registry_id, name, int(row[0]), stamp))
            else:
                held = usage.repository_references(c, found.id)
            gc.enqueue_repository(c, found.id, stamp)
            c.exec("DELETE FROM repositories WHERE id = ?", found.id)
            usage.remove_references(c, registry_id, held.items())
            soft_delete.forget_tags(c, registry_id, name)
            return digests, tags

        return await self.db.write(work)

    async def tags(
        self, repository_id: int, last: str | None, n: int, orderby: str | None, digest: str | None
    ) -> list[TagDetail]:
        def work(c: Conn) -> list[TagDetail]:
            after, args = _after(c, orderby, "t", "name", "tags", repository_id, last)
            where = "WHERE t.repository_id = ?" + after
            params: list[Any] = [repository_id, *args]
            if digest is not None:
                where += " AND t.manifest_digest = ?"
                params.append(digest)
            rows = c.all(
                f"SELECT {_TAG_COLUMNS} FROM tags t {where} {_order(orderby, 't', 'name')} LIMIT ?",
                *params,
                n,
            )
            return [_tag(r) for r in rows]

        return await self.db.read(work)

    async def tag(self, repository_id: int, name: str) -> TagDetail | None:
        row = await self.db.read(
            lambda c: c.one(
                f"SELECT {_TAG_COLUMNS} FROM tags t WHERE t.repository_id = ? AND t.name = ?",
                repository_id,
                name,
            )
        )
        return None if row is None else _tag(row)

    async def set_tag_attributes(
        self, repository_id: int, name: str, changes: dict[str, bool]
    ) -> TagDetail | None:
        def work(c: Conn) -> None:
            for attribute, value in changes.items():
                c.exec(
                    f"UPDATE tags SET {LOCK_NAMES[attribute]} = ? "
                    "WHERE repository_id = ? AND name = ?",
                    int(value),
                    repository_id,
                    name,
                )

        await self.db.write(work)
        return await self.tag(repository_id, name)

    async def manifests(
        self, repository_id: int, last: str | None, n: int, orderby: str | None
    ) -> list[ManifestDetail]:
        def work(c: Conn) -> list[ManifestDetail]:
            after, args = _after(c, orderby, "m", "digest", "manifests", repository_id, last)
            rows = c.all(
                f"SELECT {_MANIFEST_COLUMNS} FROM manifests m WHERE m.repository_id = ?{after} "
                f"{_order(orderby, 'm', 'digest')} LIMIT ?",
                repository_id,
                *args,
                n,
            )
            return _manifests(c, repository_id, rows)

        return await self.db.read(work)

    async def manifest(self, repository_id: int, digest: str) -> ManifestDetail | None:
        def work(c: Conn) -> ManifestDetail | None:
            rows = c.all(
                f"SELECT {_MANIFEST_COLUMNS} FROM manifests m "
                "WHERE m.repository_id = ? AND m.digest = ?",
                repository_id,
                digest,
            )
            found = _manifests(c, repository_id, rows)
            return found[0] if found else None

        return await self.db.read(work)

    async def set_manifest_attributes(
        self, repository_id: int, digest: str, changes: dict[str, bool]
    ) -> ManifestDetail | None:
        def work(c: Conn) -> None:
            for attribute, value in changes.items():
                c.exec(
                    f"UPDATE manifests SET {LOCK_NAMES[attribute]} = ? "
                    "WHERE repository_id = ? AND digest = ?",
                    int(value),
                    repository_id,
                    digest,
                )

        await self.db.write(work)
        return await self.manifest(repository_id, digest)

    async def usage(self, registry_id: int) -> Usage:
        """Bytes used (exact as of the last commit) and the registry's quota."""
        return await self.db.read(lambda c: usage.usage(c, registry_id))

    async def check_usage(self, registry_id: int) -> tuple[Usage, int]:
        """The recorded usage and a recount from the manifests, read in one snapshot."""

        def work(c: Conn) -> tuple[Usage, int]:
            return usage.usage(c, registry_id), usage.recount(c, registry_id)

        # A write transaction, so that no push commits between the two reads.
        return await self.db.write(work, content=False)

    async def retention_policy(self, registry_id: int) -> retention.Policy | None:
        return await self.db.read(lambda c: retention.policy(c, registry_id))

    async def set_retention_policy(self, registry_id: int, days: int | None) -> None:
        """Enable (days) or disable (None) the retention policy; PoliciesExclusive when
        enabling it while soft delete is enabled."""

        def work(c: Conn) -> None:
            if days is not None:
                soft_delete.refuse_retention(c, registry_id)
            retention.set_policy(c, registry_id, days, now_ms())

        await self.db.write(work, content=False)

    # Soft delete -----------------------------------------------------------------------

    async def soft_delete_policy(self, registry_id: int) -> soft_delete.Policy:
        return await self.db.read(lambda c: soft_delete.policy(c, registry_id))

    async def set_soft_delete_policy(
        self, registry_id: int, enabled: bool | None, days: int | None
    ) -> soft_delete.Policy:
        """Change the soft-delete policy; PoliciesExclusive when enabling it while the
        retention policy is enabled."""

        def work(c: Conn) -> soft_delete.Policy:
            soft_delete.set_policy(c, registry_id, enabled, days, now_ms())
            return soft_delete.policy(c, registry_id)

        return await self.db.write(work, content=False)

    async def deleted_repositories(self, registry_id: int, last: str | None, n: int) -> list[str]:
        return await self.db.read(lambda c: soft_delete.repositories(c, registry_id, last, n))

    async def deleted_manifests(
        self, registry_id: int, repository: str, last: str | None, n: int
    ) -> list[soft_delete.DeletedManifest]:
        return await self.db.read(
            lambda c: soft_delete.manifests(c, registry_id, repository, last, n)
        )

    async def deleted_tags(
        self,
        registry_id: int,
        repository: str,
        tag: str | None,
        last: tuple[str, str] | None,
        n: int,
    ) -> list[soft_delete.DeletedTag]:
        return await self.db.read(
            lambda c: soft_delete.tags(c, registry_id, repository, tag, last, n)
        )

    async def counts(self, registry_id: int) -> dict[str, int]:
        def work(c: Conn) -> dict[str, int]:
            return {
                "tokens": int(
                    c.value("SELECT COUNT(*) FROM tokens WHERE registry_id = ?", registry_id)
                ),
                "scope_maps": int(
                    c.value(
                        "SELECT COUNT(*) FROM scope_maps WHERE registry_id = ? AND system = 0",
                        registry_id,
                    )
                ),
                "ip_rules": int(
                    c.value("SELECT COUNT(*) FROM network_rules WHERE registry_id = ?", registry_id)
                ),
            }

        return await self.db.read(work)
