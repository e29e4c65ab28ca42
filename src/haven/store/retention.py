"""The retention policy for untagged manifests: its settings, and what it has expired."""

from __future__ import annotations

from dataclasses import dataclass

from haven.store.db import Conn
from haven.store.purge import UNNEEDED

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Policy:
    registry_id: int
    days: int
    enabled_at: int


def policy(c: Conn, registry_id: int) -> Policy | None:
    row = c.one(
        "SELECT retention_days, retention_enabled_at FROM registries WHERE id = ?", registry_id
    )
    if row is None or row[0] is None:
        return None
    return Policy(registry_id, int(row[0]), int(row[1]))


def policies(c: Conn) -> list[Policy]:
    rows = c.all(
        "SELECT id, retention_days, retention_enabled_at FROM registries "
        "WHERE retention_days IS NOT NULL ORDER BY id"
    )
    return [Policy(int(r[0]), int(r[1]), int(r[2])) for r in rows]


def set_policy(c: Conn, registry_id: int, days: int | None, now: int) -> None:
    """Enable (or change the days of) the policy, or disable it with None. It applies to
    manifests that became untagged since it was first enabled, so changing the days
    keeps that moment."""
    if days is None:
        c.exec(
            "UPDATE registries SET retention_days = NULL, retention_enabled_at = NULL WHERE id = ?",
            registry_id,
        )
        return
    c.exec(
        "UPDATE registries SET retention_days = ?, "
        "retention_enabled_at = COALESCE(retention_enabled_at, ?) WHERE id = ?",
        days,
        now,
        registry_id,
    )


def expired(c: Conn, rule: Policy, now: int, limit: int) -> list[tuple[str, str]]:
    """(repository, digest) of the manifests the policy deletes now: untagged since it
    was enabled, for longer than its days, not locked against deletion, not listed by an
    index of their repository and not referring to a manifest that is still there."""
    rows = c.all(
        "SELECT r.name, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id "
        "WHERE r.registry_id = ? AND m.untagged_at IS NOT NULL AND m.untagged_at >= ? "
        "AND m.untagged_at < ? AND m.delete_enabled = 1 AND r.delete_enabled = 1 "
        "AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id "
        "AND t.manifest_digest = m.digest) "
        f"AND {UNNEEDED} ORDER BY m.untagged_at LIMIT ?",
        rule.registry_id,
        rule.enabled_at,
        now - rule.days * DAY_MS,
        limit,
    )
    return [(str(r[0]), str(r[1])) for r in rows]
