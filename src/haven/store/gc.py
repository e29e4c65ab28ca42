"""Garbage collection's queries: which links and blobs nothing needs any more.

Reclaiming happens in two steps, both online:

1. Links. A repository links a blob when it is uploaded or mounted there; the link is
   pending until a pass finds, after the grace period, that a manifest references it. Deleting a
   manifest removes, in the same transaction, the links of the blobs it referenced that
   no other manifest of the repository references (unless the blob was uploaded or
   mounted again after that manifest was pushed: someone is about to use it). Deleting a
   repository removes all its links. Links that no manifest ever came to reference are
   removed once they are older than a grace period (an upload abandoned by its client).
2. Blobs. Every removed link puts its digest on a review queue. A review that has waited
   the review delay deletes the blob's file and row if the blob is still linked nowhere
   and no soft-deleted manifest references it (`store/soft_delete.py`: those keep their
   blobs, linked or not, until they are purged, which queues the blobs again).
   It does so with the blob's row locked (a whole write transaction on SQLite, `FOR
   UPDATE` on PostgreSQL); linking a blob locks the same row and, after an upload, makes
   sure the file is there (`store/content.py`'s spare copy), so a blob that an upload
   or mount is about to link is either kept or put back, never lost.

No global lock and no read-only mode: each step is a short transaction of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from haven.store.db import Conn

_BLOB = 0  # manifest_references.kind of a blob

# A link is stale when no manifest of its repository references the blob. The search
# starts from the references to the digest (`+` keeps SQLite from starting from every
# manifest of the repository instead, which made each delete cost O(repository size)).
_UNREFERENCED = (
    "NOT EXISTS (SELECT 1 FROM manifest_references mr "
    "JOIN manifests m ON m.id = mr.manifest_id "
    "WHERE +m.repository_id = repository_blobs.repository_id "
    "AND mr.digest = repository_blobs.digest AND mr.kind = 0)"
)

# A blob that garbage collection must keep: linked by a repository, or referenced by a
# soft-deleted manifest. One statement, so that it reads one snapshot: a restore that
# relinks a blob and drops its soft-deleted manifest is seen entirely or not at all.
_KEPT = (
    "SELECT 1 WHERE EXISTS (SELECT 1 FROM repository_blobs WHERE digest = ?) "
    "OR EXISTS (SELECT 1 FROM deleted_manifest_references WHERE digest = ? AND kind = 0)"
)
_UNKEPT = (
    "NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest) "
    "AND NOT EXISTS (SELECT 1 FROM deleted_manifest_references dr "
    "WHERE dr.digest = b.digest AND dr.kind = 0)"
)


def enqueue(c: Conn, digests: Iterable[str], now: int) -> None:
    c.exec_many(
        "INSERT INTO gc_blob_reviews (digest, queued_at) VALUES (?, ?) "
        "ON CONFLICT (digest) DO UPDATE SET queued_at = excluded.queued_at",
        [(digest, now) for digest in sorted(set(digests))],
    )


def enqueue_repository(c: Conn, repository_id: int, now: int) -> None:
    """Queue every blob the repository links (before the repository is deleted)."""
    digests = c.all("SELECT digest FROM repository_blobs WHERE repository_id = ?", repository_id)
    enqueue(c, (str(d[0]) for d in digests), now)


def enqueue_registry(c: Conn, registry_id: int, now: int) -> None:
    """Queue every blob the registry's repositories link or its soft-deleted manifests
    reference (before it is deleted)."""
    digests = c.all(
        "SELECT rb.digest FROM repository_blobs rb "
        "JOIN repositories r ON r.id = rb.repository_id WHERE r.registry_id = ? "
        "UNION SELECT dr.digest FROM deleted_manifest_references dr "
        "JOIN deleted_manifests d ON d.id = dr.deleted_manifest_id "
        "WHERE d.registry_id = ? AND dr.kind = 0",
        registry_id,
        registry_id,
    )
    enqueue(c, (str(d[0]) for d in digests), now)


def unlink_released(
    c: Conn, repository_id: int, digests: Sequence[str], pushed_at: int, now: int
) -> list[str]:
    """After a manifest pushed at `pushed_at` is deleted: remove the links of its blobs
    that no remaining manifest of the repository references and that were not linked
    again since; queue them for review. A link renewed since (the blob uploaded or
    mounted again) may be for a push in flight: it becomes pending again, so the sweep
    of abandoned uploads removes it after the grace period unless a manifest takes it
    up. Returns the digests unlinked."""
    released = []
    for digest in sorted(set(digests)):
        removed = c.exec(
            "DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ? "
            f"AND created_at <= ? AND {_UNREFERENCED}",
            repository_id,
            digest,
            pushed_at,
        )
        if removed:
            released.append(digest)
        else:
            c.exec(
                "UPDATE repository_blobs SET pending = 1 WHERE repository_id = ? "
                f"AND digest = ? AND pending = 0 AND {_UNREFERENCED}",
                repository_id,
                digest,
            )
    enqueue(c, released, now)
    return released


def _stale(registry_id: int | None) -> tuple[str, list[int]]:
    """The condition of a stale link (pending, older than a cutoff given as the next
    argument, referenced by no manifest), limited to one registry when given."""
    where = f"repository_blobs.pending = 1 AND repository_blobs.created_at < ? AND {_UNREFERENCED}"
    if registry_id is None:
        return where, []
    return "repository_id IN (SELECT id FROM repositories WHERE registry_id = ?) AND " + where, [
        registry_id
    ]


def stale_links(
    c: Conn, registry_id: int | None, linked_before: int, limit: int
) -> list[tuple[int, str]]:
    """Links that no manifest references and that are older than `linked_before`."""
    where, args = _stale(registry_id)
    rows = c.all(
        f"SELECT repository_id, digest FROM repository_blobs WHERE {where} "
        "ORDER BY repository_id, digest LIMIT ?",
        *args,
        linked_before,
        limit,
    )
    return [(int(r[0]), str(r[1])) for r in rows]


def count_stale_links(c: Conn, registry_id: int | None, linked_before: int) -> int:
    where, args = _stale(registry_id)
    return int(
        c.value(f"SELECT COUNT(*) FROM repository_blobs WHERE {where}", *args, linked_before)
    )


def has_old_pending_links(c: Conn, linked_before: int) -> bool:
    """Whether any link older than the grace period is still pending (a pass that finds
    none writes nothing)."""
    return (
        c.value(
            "SELECT 1 FROM repository_blobs WHERE pending = 1 AND created_at < ? LIMIT 1",
            linked_before,
        )
        is not None
    )


def settle_pending_links(c: Conn, linked_before: int) -> int:
    """Old pending links that a manifest has come to reference are pending no more, so
    each pass looks at the links that may be abandoned uploads, and at no others."""
    return c.exec(
        "UPDATE repository_blobs SET pending = 0 WHERE pending = 1 AND created_at < ? "
        f"AND NOT {_UNREFERENCED}",
        linked_before,
    )


def remove_stale_links(
    c: Conn, links: Sequence[tuple[int, str]], linked_before: int, now: int
) -> int:
    """Remove those of `links` that are still stale; queue their blobs."""
    removed = []
    for repository_id, digest in links:
        if c.exec(
            "DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ? "
            f"AND created_at < ? AND {_UNREFERENCED}",
            repository_id,
            digest,
            linked_before,
        ):
            removed.append(digest)
    enqueue(c, removed, now)
    return len(removed)


def enqueue_unlinked_blobs(c: Conn, now: int) -> int:
    """Queue every blob linked nowhere and kept by no soft-deleted manifest (a full pass,
    after a crash or an upgrade)."""
    return c.exec(
        "INSERT INTO gc_blob_reviews (digest, queued_at) "
        f"SELECT b.digest, ? FROM blobs b WHERE {_UNKEPT} "
        "ON CONFLICT (digest) DO NOTHING",
        now,
    )


def due_reviews(c: Conn, queued_before: int, limit: int) -> list[str]:
    rows = c.all(
        "SELECT digest FROM gc_blob_reviews WHERE queued_at <= ? ORDER BY digest LIMIT ?",
        queued_before,
        limit,
    )
    return [str(r[0]) for r in rows]


def collect(
    c: Conn, digests: Sequence[str], queued_before: int, delete_file: Callable[[str], int]
) -> tuple[int, int]:
    """Delete each blob of `digests` that is still linked nowhere and referenced by no
    soft-deleted manifest, file and row, with its row locked; drop their reviews.
    Returns (blobs deleted, bytes freed)."""
    deleted = freed = 0
    lock = " FOR UPDATE" if c.postgres else ""
    for digest in digests:
        # The blob's row first, then its review: the order uploads and deletes lock in.
        size = c.value(f"SELECT size FROM blobs WHERE digest = ?{lock}", digest)
        queued = c.value("SELECT queued_at FROM gc_blob_reviews WHERE digest = ?", digest)
        if queued is None or int(queued) > queued_before:
            continue  # reviewed already, or queued again since: wait for the later review
        c.exec("DELETE FROM gc_blob_reviews WHERE digest = ?", digest)
        if size is None:
            # No row to lock: an upload may be publishing these bytes right now. A file
            # without a row is left to the full pass, which waits for its grace period.
            continue
        if c.value(_KEPT, digest, digest) is not None:
            continue
        # The file goes first, inside the transaction: if the commit then fails, a row
        # without a file remains, linked nowhere, which nobody can read and the next
        # upload of those bytes repairs.
        freed += delete_file(digest)
        c.exec("DELETE FROM blobs WHERE digest = ?", digest)
        deleted += 1
    return deleted, freed


def would_collect(c: Conn, queued_before: int) -> tuple[int, int]:
    """What the due reviews would delete now (for a dry run): (blobs, bytes)."""
    row = c.one(
        "SELECT COUNT(*), COALESCE(SUM(b.size), 0) FROM gc_blob_reviews q "
        f"JOIN blobs b ON b.digest = q.digest WHERE q.queued_at <= ? AND {_UNKEPT}",
        queued_before,
    )
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def known_blobs(c: Conn, digests: Sequence[str]) -> set[str]:
    """Which of `digests` have a blob row."""
    found: set[str] = set()
    for start in range(0, len(digests), 500):
        batch = digests[start : start + 500]
        marks = ", ".join("?" for _ in batch)
        found.update(
            str(r[0]) for r in c.all(f"SELECT digest FROM blobs WHERE digest IN ({marks})", *batch)
        )
    return found


def take_lease(c: Conn, name: str, holder: str, now: int, until: int) -> bool:
    """Hold the named lease until `until` unless someone else holds it now."""
    c.exec(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, 0) "
        "ON CONFLICT (name) DO NOTHING",
        name,
        holder,
    )
    return bool(
        c.exec(
            "UPDATE leases SET holder = ?, expires_at = ? "
            "WHERE name = ? AND (expires_at < ? OR holder = ?)",
            holder,
            until,
            name,
            now,
            holder,
        )
    )
