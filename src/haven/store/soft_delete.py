"""Soft delete, as ACR's soft-delete policy: what deletions keep, and for how long.

With the policy enabled, deleting a manifest (by digest, by purge or with its repository)
moves it out of `manifests` into `deleted_manifests`, its references into
`deleted_manifest_references`, and every tag it loses into `deleted_tags`; deleting a
tag moves that tag alone. Nothing that reads live content (pulls, listings, referrers,
index pushes, purge, retention) looks at those tables, so a soft-deleted manifest neither
pulls nor lists. Rows are keyed by repository name, not id: deleting a repository removes
its row, and a later push or restore creates it again.

What a soft-deleted manifest holds stays counted in the registry's usage (its references
in `registry_content` are not released), and garbage collection never deletes a blob
that a soft-deleted manifest references, linked or not (`store/gc.py`). Restoring puts
the manifest back, references and blob links included, and points the tag at it.

Each item expires `days` after its deletion, with the days in force when garbage
collection looks (as ACR's purge does): it is purged then, which releases its usage and
queues its blobs for review like any deleted manifest's. Disabling the policy keeps the
days, so what was soft-deleted still expires.
"""

from __future__ import annotations

from dataclasses import dataclass

from haven.errors import ApiError, ManifestBlobUnknown
from haven.store import gc, usage
from haven.store.db import Conn
from haven.store.locks import LOCK_COLUMNS

DAY_MS = 86_400_000
MIN_DAYS, MAX_DAYS, DEFAULT_DAYS = 1, 90, 7
_BLOB = 0  # manifest_references.kind of a blob

_LOCKS = ", ".join(LOCK_COLUMNS)
# The columns a soft-deleted manifest keeps of the live one, in both tables' names.
_MANIFEST_COLUMNS = (
    "digest, media_type, artifact_type, subject_digest, annotations, size, payload, "
    f"created_at, updated_at, config_media_type, architecture, os, {_LOCKS}"
)


@dataclass(frozen=True, slots=True)
class Policy:
    enabled: bool
    days: int
    updated_at: int | None


@dataclass(frozen=True, slots=True)
class DeletedManifest:
    digest: str
    size: int
    media_type: str
    config_media_type: str | None
    architecture: str | None
    os: str | None
    created_at: int
    updated_at: int
    deleted_at: int
    expires_at: int
    tags: list[str]


@dataclass(frozen=True, slots=True)
class DeletedTag:
    name: str
    digest: str
    created_at: int
    deleted_at: int
    expires_at: int


class PoliciesExclusive(ApiError):
    """ACR's rule: soft delete and the retention policy are never enabled together."""

    def __init__(self, enabling: str, enabled: str, command: str) -> None:
        super().__init__(
            409,
            "Conflict",
            f"{enabling} cannot be enabled while {enabled} is enabled (a registry may not "
            f"have both); disable it first: {command}",
        )


# Policy ------------------------------------------------------------------------------


def policy(c: Conn, registry_id: int) -> Policy:
    row = c.one(
        "SELECT soft_delete_enabled, soft_delete_days, soft_delete_updated_at "
        "FROM registries WHERE id = ?",
        registry_id,
    )
    if row is None:
        return Policy(False, DEFAULT_DAYS, None)
    return Policy(bool(row[0]), int(row[1]), None if row[2] is None else int(row[2]))


def enabled(c: Conn, registry_id: int) -> bool:
    """Whether deletions in the registry are soft now (read inside the deleting
    transaction, so a deletion is soft or not as the policy stood when it committed)."""
    return bool(c.value("SELECT soft_delete_enabled FROM registries WHERE id = ?", registry_id))


def _policies_locked(c: Conn, registry_id: int) -> tuple[bool, bool]:
    """(soft delete enabled, retention enabled), with the registry's row locked so that
    two requests enabling one policy each cannot both succeed."""
    lock = " FOR UPDATE" if c.postgres else ""
    row = c.one(
        f"SELECT soft_delete_enabled, retention_days FROM registries WHERE id = ?{lock}",
        registry_id,
    )
    return (False, False) if row is None else (bool(row[0]), row[1] is not None)


def set_policy(c: Conn, registry_id: int, turn_on: bool | None, days: int | None, now: int) -> None:
    """Enable or disable the policy and/or change its days (None: unchanged). Raises
    PoliciesExclusive when enabling it while the retention policy is enabled."""
    soft, retention = _policies_locked(c, registry_id)
    if (turn_on if turn_on is not None else soft) and retention:
        raise PoliciesExclusive(
            "soft delete",
            "the retention policy for untagged manifests",
            "haven config retention update -r <registry> --status disabled",
        )
    c.exec(
        "UPDATE registries SET soft_delete_enabled = COALESCE(?, soft_delete_enabled), "
        "soft_delete_days = COALESCE(?, soft_delete_days), soft_delete_updated_at = ? "
        "WHERE id = ?",
        None if turn_on is None else int(turn_on),
        days,
        now,
        registry_id,
    )


def refuse_retention(c: Conn, registry_id: int) -> None:
    """Raise PoliciesExclusive if soft delete is enabled (before the retention policy is)."""
    soft, _ = _policies_locked(c, registry_id)
    if soft:
        raise PoliciesExclusive(
            "the retention policy",
            "soft delete",
            "haven config soft-delete update -r <registry> --status disabled",
        )


# Keeping what a deletion removes --------------------------------------------------------


def keep_tags(
    c: Conn,
    registry_id: int,
    repository_id: int,
    repository: str,
    now: int,
    *,
    digest: str | None = None,
    name: str | None = None,
) -> None:
    """Keep, as soft-deleted, the repository's tags about to be deleted: those pointing
    at `digest`, the one called `name`, or (neither given) all of them."""
    where, args = "", []
    for column, value in (("manifest_digest", digest), ("name", name)):
        if value is not None:
            where += f" AND t.{column} = ?"
            args.append(value)
    locks = ", ".join("t." + column for column in LOCK_COLUMNS)
    updates = ", ".join(f"{column} = excluded.{column}" for column in LOCK_COLUMNS)
    c.exec(
        "INSERT INTO deleted_tags (registry_id, repository, name, manifest_digest, created_at, "
        f"updated_at, {_LOCKS}, deleted_at) SELECT ?, ?, t.name, t.manifest_digest, "
        f"t.created_at, t.updated_at, {locks}, ? FROM tags t WHERE t.repository_id = ?{where} "
        "ON CONFLICT (registry_id, repository, name, manifest_digest) DO UPDATE SET "
        "created_at = excluded.created_at, updated_at = excluded.updated_at, "
        f"deleted_at = excluded.deleted_at, {updates}",
        registry_id,
        repository,
        now,
        repository_id,
        *args,
    )


def keep_manifest(
    c: Conn, registry_id: int, repository: str, manifest_id: int, now: int
) -> list[str]:
    """Keep a manifest about to be deleted as a soft-deleted one, with its references.

    Returns the digests whose usage references the caller must release: none, since the
    kept copy holds them; or, when the repository has a soft-deleted copy of that digest
    already (it was pushed again after a deletion), its own digest and its blobs', as
    that copy is kept instead (deleted anew) and holds the same references."""
    digest = str(c.value("SELECT digest FROM manifests WHERE id = ?", manifest_id))
    existing = _kept_id(c, registry_id, repository, digest)
    if existing is not None:
        c.exec("UPDATE deleted_manifests SET deleted_at = ? WHERE id = ?", now, existing)
        blobs = c.all(
            "SELECT digest FROM manifest_references WHERE manifest_id = ? AND kind = ?",
            manifest_id,
            _BLOB,
        )
        return [digest, *(str(r[0]) for r in blobs)]
    columns = ", ".join("m." + column.strip() for column in _MANIFEST_COLUMNS.split(","))
    c.exec(
        f"INSERT INTO deleted_manifests (registry_id, repository, {_MANIFEST_COLUMNS}, "
        f"deleted_at) SELECT ?, ?, {columns}, ? FROM manifests m WHERE m.id = ?",
        registry_id,
        repository,
        now,
        manifest_id,
    )
    kept = _kept_id(c, registry_id, repository, digest)
    c.exec(
        "INSERT INTO deleted_manifest_references (deleted_manifest_id, kind, digest) "
        "SELECT ?, kind, digest FROM manifest_references WHERE manifest_id = ?",
        kept,
        manifest_id,
    )
    return []


def _kept_id(c: Conn, registry_id: int, repository: str, digest: str, lock: str = "") -> int | None:
    value = c.value(
        "SELECT id FROM deleted_manifests WHERE registry_id = ? AND repository = ? "
        f"AND digest = ?{lock}",
        registry_id,
        repository,
        digest,
    )
    return None if value is None else int(value)


def forget_tags(c: Conn, registry_id: int, repository: str, digest: str | None = None) -> int:
    """After manifests are deleted for good (`digest`, or with None every manifest of the
    repository): forget the soft-deleted tags that named them, which nothing could be
    restored to any more, unless a soft-deleted copy of that manifest remains. Returns
    how many it forgot."""
    where, args = ("", []) if digest is None else (" AND manifest_digest = ?", [digest])
    return c.exec(
        "DELETE FROM deleted_tags WHERE registry_id = ? AND repository = ?"
        f"{where} AND NOT EXISTS (SELECT 1 FROM deleted_manifests d "
        "WHERE d.registry_id = deleted_tags.registry_id "
        "AND d.repository = deleted_tags.repository AND d.digest = deleted_tags.manifest_digest)",
        registry_id,
        repository,
        *args,
    )


# Restoring ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeptTag:
    created_at: int
    locks: tuple[int, ...]


def claim_manifest(c: Conn, registry_id: int, repository: str, digest: str) -> int | None:
    """The soft-deleted copy of `digest` in the repository, if any, locked until the
    transaction ends (a concurrent restore or purge of it waits, then finds it gone)."""
    return _kept_id(c, registry_id, repository, digest, " FOR UPDATE" if c.postgres else "")


def claim_tag(c: Conn, registry_id: int, repository: str, name: str, digest: str) -> KeptTag | None:
    """Take the soft-deleted tag `name` that named `digest` out of the soft-deleted ones,
    if it is there; None when it is not (never deleted, purged, or restored already)."""
    row = c.one(
        f"SELECT created_at, {_LOCKS} FROM deleted_tags WHERE registry_id = ? "
        "AND repository = ? AND name = ? AND manifest_digest = ?",
        registry_id,
        repository,
        name,
        digest,
    )
    if row is None:
        return None
    removed = c.exec(
        "DELETE FROM deleted_tags WHERE registry_id = ? AND repository = ? AND name = ? "
        "AND manifest_digest = ?",
        registry_id,
        repository,
        name,
        digest,
    )
    return KeptTag(int(row[0]), tuple(int(v) for v in row[1:])) if removed else None


def usage_digests(c: Conn, kept_id: int) -> list[str]:
    """The digests a soft-deleted manifest holds usage references to: its own, and each
    blob it names."""
    digest = c.value("SELECT digest FROM deleted_manifests WHERE id = ?", kept_id)
    blobs = c.all(
        "SELECT digest FROM deleted_manifest_references WHERE deleted_manifest_id = ? AND kind = ?",
        kept_id,
        _BLOB,
    )
    return [str(digest), *(str(r[0]) for r in blobs)]


def bring_back(c: Conn, kept_id: int, repository_id: int) -> None:
    """Put a soft-deleted manifest back into the repository: its row, its references and
    the links of its blobs (whose rows garbage collection has kept). Each blob's row is
    locked before its link is made, as garbage collection locks it before deleting an
    unlinked blob. ManifestBlobUnknown if a blob is gone all the same."""
    columns = ", ".join(column.strip() for column in _MANIFEST_COLUMNS.split(","))
    c.exec(
        f"INSERT INTO manifests (repository_id, {columns}) "
        f"SELECT ?, {columns} FROM deleted_manifests WHERE id = ?",
        repository_id,
        kept_id,
    )
    row = c.one(
        "SELECT m.id, m.created_at FROM manifests m JOIN deleted_manifests d "
        "ON d.digest = m.digest WHERE d.id = ? AND m.repository_id = ?",
        kept_id,
        repository_id,
    )
    assert row is not None, "the manifest was just inserted in this transaction"
    manifest_id, pushed_at = int(row[0]), int(row[1])
    c.exec(
        "INSERT INTO manifest_references (manifest_id, kind, digest) "
        "SELECT ?, kind, digest FROM deleted_manifest_references WHERE deleted_manifest_id = ?",
        manifest_id,
        kept_id,
    )
    lock = " FOR UPDATE" if c.postgres else ""
    for digest in usage_digests(c, kept_id)[1:]:
        if c.value(f"SELECT size FROM blobs WHERE digest = ?{lock}", digest) is None:
            raise ManifestBlobUnknown(
                f"blob {digest} of the soft-deleted manifest is no longer stored; "
                "nothing was restored",
                detail={"digest": digest},
            )
        # Linked as of the original push: deleting the manifest again releases the link
        # (store/gc.py keeps links renewed after a manifest's push).
        c.exec(
            "INSERT INTO repository_blobs (repository_id, digest, created_at, pending) "
            "VALUES (?, ?, ?, 1) ON CONFLICT (repository_id, digest) DO NOTHING",
            repository_id,
            digest,
            pushed_at,
        )


def drop(c: Conn, kept_id: int) -> bool:
    """Remove a soft-deleted manifest's row (its references go with it)."""
    return c.exec("DELETE FROM deleted_manifests WHERE id = ?", kept_id) > 0


# Listing --------------------------------------------------------------------------------


def repositories(c: Conn, registry_id: int, last: str | None, limit: int) -> list[str]:
    """Names of the repositories holding soft-deleted manifests or tags, after `last`."""
    rows = c.all(
        "SELECT repository FROM (SELECT repository FROM deleted_manifests "
        "WHERE registry_id = ? UNION SELECT repository FROM deleted_tags WHERE registry_id = ?"
        ") AS held WHERE repository > ? ORDER BY repository LIMIT ?",
        registry_id,
        registry_id,
        last or "",
        limit,
    )
    return [str(r[0]) for r in rows]


def manifests(
    c: Conn, registry_id: int, repository: str, last: str | None, limit: int
) -> list[DeletedManifest]:
    """The repository's soft-deleted manifests by digest, after `last`, each with the
    soft-deleted tags that named it."""
    days = policy(c, registry_id).days
    rows = c.all(
        "SELECT digest, size, media_type, config_media_type, architecture, os, created_at, "
        "updated_at, deleted_at FROM deleted_manifests WHERE registry_id = ? "
        "AND repository = ? AND digest > ? ORDER BY digest LIMIT ?",
        registry_id,
        repository,
        last or "",
        limit,
    )
    out = []
    for row in rows:
        tags = c.all(
            "SELECT name FROM deleted_tags WHERE registry_id = ? AND repository = ? "
            "AND manifest_digest = ? ORDER BY name",
            registry_id,
            repository,
            row[0],
        )
        created, deleted = int(row[6]), int(row[8])
        out.append(
            DeletedManifest(
                str(row[0]),
                int(row[1]),
                str(row[2]),
                row[3],
                row[4],
                row[5],
                created,
                int(row[7]) or created,
                deleted,
                deleted + days * DAY_MS,
                [str(t[0]) for t in tags],
            )
        )
    return out


def tags(
    c: Conn,
    registry_id: int,
    repository: str,
    name: str | None,
    last: tuple[str, str] | None,
    limit: int,
) -> list[DeletedTag]:
    """The repository's soft-deleted tags (only those called `name`, when given), by name
    and then deletion time, so a tag deleted several times lists its latest deletion
    last; continued after the entry `last` = (tag, digest)."""
    days = policy(c, registry_id).days
    where, args = ("", []) if name is None else (" AND name = ?", [name])
    if last is not None:
        stamp = c.value(
            "SELECT deleted_at FROM deleted_tags WHERE registry_id = ? AND repository = ? "
            "AND name = ? AND manifest_digest = ?",
            registry_id,
            repository,
            *last,
        )
        if stamp is None:
            where, args = where + " AND name > ?", [*args, last[0]]
        else:
            where += (
                " AND (name > ? OR (name = ? AND (deleted_at > ? "
                "OR (deleted_at = ? AND manifest_digest > ?))))"
            )
            args = [*args, last[0], last[0], stamp, stamp, last[1]]
    rows = c.all(
        "SELECT name, manifest_digest, created_at, updated_at, deleted_at FROM deleted_tags "
        f"WHERE registry_id = ? AND repository = ?{where} "
        "ORDER BY name, deleted_at, manifest_digest LIMIT ?",
        registry_id,
        repository,
        *args,
        limit,
    )
    return [
        DeletedTag(
            str(r[0]), str(r[1]), int(r[2]) or int(r[3]), int(r[4]), int(r[4]) + days * DAY_MS
        )
        for r in rows
    ]


# Purging --------------------------------------------------------------------------------


def holders(c: Conn, registry_id: int | None) -> list[tuple[int, int]]:
    """(registry id, days) of the registries holding soft-deleted content (only
    `registry_id`, when given)."""
    where, args = ("", []) if registry_id is None else (" AND g.id = ?", [registry_id])
    rows = c.all(
        "SELECT g.id, g.soft_delete_days FROM registries g WHERE (EXISTS "
        "(SELECT 1 FROM deleted_manifests d WHERE d.registry_id = g.id) OR EXISTS "
        f"(SELECT 1 FROM deleted_tags t WHERE t.registry_id = g.id)){where} ORDER BY g.id",
        *args,
    )
    return [(int(r[0]), int(r[1])) for r in rows]


def expired(c: Conn, registry_id: int, before: int, limit: int) -> list[int]:
    """Ids of the registry's soft-deleted manifests deleted before `before`."""
    rows = c.all(
        "SELECT id FROM deleted_manifests WHERE registry_id = ? AND deleted_at < ? "
        "ORDER BY deleted_at, id LIMIT ?",
        registry_id,
        before,
        limit,
    )
    return [int(r[0]) for r in rows]


def count_expired(c: Conn, registry_id: int, before: int) -> int:
    """How many soft-deleted manifests and tags of the registry a purge would remove."""
    found = 0
    for table in ("deleted_manifests", "deleted_tags"):
        found += int(
            c.value(
                f"SELECT COUNT(*) FROM {table} WHERE registry_id = ? AND deleted_at < ?",
                registry_id,
                before,
            )
        )
    return found


def purge(c: Conn, kept_id: int, before: int, now: int) -> int:
    """Delete for good a soft-deleted manifest deleted before `before`: with it the tags
    that named it unless it is live again, its usage references, and its blobs' links in
    the repository, as deleting a manifest does; its blobs are queued for review, since
    garbage collection kept them unlinked. Returns how many soft-deleted items (the
    manifest and its tags) went: 0 if it is not, or no longer, there."""
    lock = " FOR UPDATE" if c.postgres else ""
    row = c.one(
        "SELECT registry_id, repository, digest, created_at FROM deleted_manifests "
        f"WHERE id = ? AND deleted_at < ?{lock}",
        kept_id,
        before,
    )
    if row is None:
        return 0
    registry_id, repository, digest, pushed_at = int(row[0]), str(row[1]), str(row[2]), row[3]
    held = usage_digests(c, kept_id)
    drop(c, kept_id)
    repository_id = c.value(
        "SELECT id FROM repositories WHERE registry_id = ? AND name = ?", registry_id, repository
    )
    live = repository_id is not None and c.value(
        "SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ?", repository_id, digest
    )
    forgotten = 0 if live else forget_tags(c, registry_id, repository, digest)
    usage.remove_references(c, registry_id, [(d, 1) for d in held])
    blobs = held[1:]
    if repository_id is not None:
        gc.unlink_released(c, int(repository_id), blobs, int(pushed_at), now)
    gc.enqueue(c, blobs, now)
    return 1 + forgotten


def purge_tags(c: Conn, registry_id: int, before: int) -> int:
    """Delete for good the registry's soft-deleted tags deleted before `before`."""
    return c.exec(
        "DELETE FROM deleted_tags WHERE registry_id = ? AND deleted_at < ?", registry_id, before
    )
