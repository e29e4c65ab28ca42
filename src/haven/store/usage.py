"""Storage accounting and quotas, kept exact inside the transactions that change content.

A registry uses the bytes of the distinct manifests its repositories hold and of the
distinct blobs those manifests reference: a layer shared by two images or two
repositories counts once; the same layer in two registries counts in each (and is
stored once). Blobs uploaded but not (yet) referenced by any manifest count nothing.

`registry_content` holds, per registry and digest, how many references keep it: one per
manifest row with that digest, plus one per manifest that references it as a blob. When
a digest gains its first reference its size is added to `registries.used_bytes`; when it
loses its last, its size is taken off. Both happen in the transaction that adds or
removes the reference, so the figure is exact the moment a push or delete returns, and a
push that would exceed the quota is refused in the same transaction that would have
stored it. `recount` recomputes everything from the manifests themselves, to check.
Soft-deleted manifests (`store/soft_delete.py`) keep their references, so they count
until they are purged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from haven.errors import Denied
from haven.skus import included_storage
from haven.store.db import Conn

# manifest_references.kind of a blob (1 is a child manifest).
_BLOB = 0


@dataclass(frozen=True, slots=True)
class Usage:
    used_bytes: int
    quota_bytes: int


def add_references(c: Conn, registry_id: int, sizes: dict[str, int]) -> None:
    """One more reference to each digest of `sizes` (digest → size) in the registry;
    Denied, changing nothing, when the digests that are new to the registry would take
    it past its quota."""
    grown = 0
    # Rows are locked in digest order, so concurrent pushes cannot deadlock on them.
    for digest, size in sorted(sizes.items()):
        inserted = c.exec(
            "INSERT INTO registry_content (registry_id, digest, size, refs) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (registry_id, digest) DO NOTHING",
            registry_id,
            digest,
            size,
        )
        if inserted:
            grown += size
        else:
            c.exec(
                "UPDATE registry_content SET refs = refs + 1 WHERE registry_id = ? AND digest = ?",
                registry_id,
                digest,
            )
    if grown == 0:
        return
    row = c.one(
        "UPDATE registries SET used_bytes = used_bytes + ? WHERE id = ? "
        "RETURNING used_bytes, quota_bytes, sku",
        grown,
        registry_id,
    )
    assert row is not None, f"registry {registry_id} vanished"
    used, quota = int(row[0]), _quota(row[1], row[2])
    if used > quota:
        raise QuotaExceeded(used - grown, grown, quota)


def remove_references(c: Conn, registry_id: int, counts: Iterable[tuple[str, int]]) -> None:
    """`count` fewer references to each digest; the last one gone releases its bytes."""
    released = 0
    for digest, count in sorted(counts):
        c.exec(
            "UPDATE registry_content SET refs = refs - ? WHERE registry_id = ? AND digest = ?",
            count,
            registry_id,
            digest,
        )
        size = c.value(
            "DELETE FROM registry_content WHERE registry_id = ? AND digest = ? AND refs <= 0 "
            "RETURNING size",
            registry_id,
            digest,
        )
        if size is not None:
            released += int(size)
    if released:
        c.exec(
            "UPDATE registries SET used_bytes = used_bytes - ? WHERE id = ?",
            released,
            registry_id,
        )


def repository_references(c: Conn, repository_id: int) -> Counter[str]:
    """Every reference the repository's manifests hold, counted (before it is deleted)."""
    counts: Counter[str] = Counter()
    for digest, count in c.all(
        "SELECT digest, COUNT(*) FROM ("
        "SELECT m.digest AS digest FROM manifests m WHERE m.repository_id = ? "
        "UNION ALL "
        "SELECT mr.digest AS digest FROM manifest_references mr "
        "JOIN manifests m ON m.id = mr.manifest_id WHERE m.repository_id = ? AND mr.kind = ?"
        ") AS refs GROUP BY digest",
        repository_id,
        repository_id,
        _BLOB,
    ):
        counts[str(digest)] = int(count)
    return counts


def usage(c: Conn, registry_id: int) -> Usage:
    row = c.one("SELECT used_bytes, quota_bytes, sku FROM registries WHERE id = ?", registry_id)
    if row is None:
        return Usage(0, 0)
    return Usage(int(row[0]), _quota(row[1], row[2]))


def recount(c: Conn, registry_id: int) -> int:
    """The registry's usage computed from its manifests alone, ignoring the counters:
    the live ones and the soft-deleted ones, which count until they are purged."""
    blobs = c.value(
        "SELECT COALESCE(SUM(b.size), 0) FROM blobs b WHERE b.digest IN ("
        "SELECT mr.digest FROM manifest_references mr "
        "JOIN manifests m ON m.id = mr.manifest_id "
        "JOIN repositories r ON r.id = m.repository_id "
        "WHERE r.registry_id = ? AND mr.kind = ? "
        "UNION SELECT dr.digest FROM deleted_manifest_references dr "
        "JOIN deleted_manifests d ON d.id = dr.deleted_manifest_id "
        "WHERE d.registry_id = ? AND dr.kind = ?)",
        registry_id,
        _BLOB,
        registry_id,
        _BLOB,
    )
    manifests = c.value(
        "SELECT COALESCE(SUM(size), 0) FROM (SELECT m.digest, m.size "
        "FROM manifests m JOIN repositories r ON r.id = m.repository_id "
        "WHERE r.registry_id = ? UNION SELECT d.digest, d.size FROM deleted_manifests d "
        "WHERE d.registry_id = ?) AS distinct_manifests",
        registry_id,
        registry_id,
    )
    return int(blobs) + int(manifests)


def _quota(override: int | None, sku: str) -> int:
    """An operator's override, else what the SKU includes."""
    return int(override) if override is not None else included_storage(str(sku))


class QuotaExceeded(Denied):
    def __init__(self, used: int, adding: int, quota: int) -> None:
        super().__init__(
            f"storage quota exceeded: the registry uses {used} of its {quota} bytes, and this "
            f"push would add {adding}; nothing was stored",
            detail={"usedBytes": used, "addingBytes": adding, "quotaBytes": quota},
        )
