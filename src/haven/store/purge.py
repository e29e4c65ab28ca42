"""The reads `haven purge` chooses from: every tag of a registry, and the manifests of a
repository that no tag names and nothing else needs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from haven.store.db import Conn

# An untagged manifest `m` that nothing else in its repository needs: no index there lists
# it, and it does not refer (as a signature or SBOM does) to a manifest still there.
UNNEEDED = (
    "NOT EXISTS (SELECT 1 FROM manifest_references mr "
    "JOIN manifests parent ON parent.id = mr.manifest_id "
    "WHERE parent.repository_id = m.repository_id AND mr.kind = 1 AND mr.digest = m.digest) "
    "AND (m.subject_digest IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s "
    "WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest))"
)


@dataclass(frozen=True, slots=True)
class TagRow:
    repository: str
    repository_id: int
    tag: str
    digest: str
    updated_at: int
    locked: bool  # deleteEnabled or writeEnabled switched off


@dataclass(frozen=True, slots=True)
class ManifestRow:
    digest: str
    updated_at: int
    locked: bool


def tags(c: Conn, registry_id: int) -> list[TagRow]:
    rows = c.all(
        "SELECT r.name, r.id, t.name, t.manifest_digest, t.updated_at, "
        "t.delete_enabled, t.write_enabled FROM tags t "
        "JOIN repositories r ON r.id = t.repository_id WHERE r.registry_id = ? "
        "ORDER BY r.name, t.name",
        registry_id,
    )
    return [
        TagRow(str(r[0]), int(r[1]), str(r[2]), str(r[3]), int(r[4]), not (r[5] and r[6]))
        for r in rows
    ]


def repositories(c: Conn, registry_id: int) -> list[tuple[str, int]]:
    rows = c.all(
        "SELECT name, id FROM repositories WHERE registry_id = ? ORDER BY name", registry_id
    )
    return [(str(r[0]), int(r[1])) for r in rows]


def untagged_manifests(
    c: Conn, repository_id: int, ignoring: Sequence[str] = ()
) -> list[ManifestRow]:
    """Manifests no tag names (but those in `ignoring`, which a dry run would have
    deleted), except those an index of the repository lists and those whose subject is
    still in the repository (a signature or SBOM of a kept image)."""
    but = f" AND t.name NOT IN ({', '.join('?' for _ in ignoring)})" if ignoring else ""
    rows = c.all(
        "SELECT m.digest, m.updated_at, m.created_at, m.delete_enabled, m.write_enabled "
        "FROM manifests m WHERE m.repository_id = ? "
        "AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id "
        f"AND t.manifest_digest = m.digest{but}) "
        f"AND {UNNEEDED} ORDER BY m.digest",
        repository_id,
        *ignoring,
    )
    return [ManifestRow(str(r[0]), max(int(r[1]), int(r[2])), not (r[3] and r[4])) for r in rows]
