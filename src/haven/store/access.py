"""Queries for registries' access settings, identities, roles, tokens and signing keys.

All of this is cold-path data: the request path reads it through the access service's
caches, which are rebuilt only when the change counter moves.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from haven.auth.jwts import StoredKey
from haven.store import gc
from haven.store.db import Conn, Database
from haven.store.metadata import now_ms

ADMIN_PASSWORD_NAMES = ("password", "password2")


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    id: int
    name: str
    sku: str
    admin_enabled: bool
    anonymous_pull: bool
    default_action: str
    created_at: int
    login_servers: tuple[str, ...]
    ip_rules: tuple[str, ...]
    quota_bytes: int | None = None  # an operator's override of the SKU's included storage


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    id: str
    name: str
    kind: str
    version: int
    created_at: int


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    id: str
    identity_id: str
    name: str
    hash: str
    expires_at: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    id: str
    identity_id: str
    identity_name: str
    role: str
    registry_id: int | None
    registry_name: str | None
    repository: str | None


@dataclass(frozen=True, slots=True)
class ScopeMapRecord:
    id: str
    registry_id: int
    name: str
    description: str
    actions: tuple[str, ...]
    system: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    registry_id: int
    name: str
    scope_map_id: str
    scope_map_name: str
    status: str
    version: int
    created_at: int


@dataclass(frozen=True, slots=True)
class TokenPasswordRecord:
    name: str
    hash: str
    expires_at: int | None
    created_at: int


class _Taken(Exception):
    """A unique name another row holds; raised to roll a transaction back."""


_REGISTRY_COLUMNS = (
    "id, name, sku, admin_enabled, anonymous_pull, default_action, created_at, quota_bytes"
)


def _registry(c: Conn, row: Sequence[Any]) -> RegistryRecord:
    registry_id = int(row[0])
    hosts = c.all("SELECT host FROM login_servers WHERE registry_id = ? ORDER BY host", registry_id)
    rules = c.all(
        "SELECT address_range FROM network_rules WHERE registry_id = ? ORDER BY address_range",
        registry_id,
    )
    return RegistryRecord(
        id=registry_id,
        name=str(row[1]),
        sku=str(row[2]),
        admin_enabled=bool(row[3]),
        anonymous_pull=bool(row[4]),
        default_action=str(row[5]),
        created_at=int(row[6]),
        login_servers=tuple(str(h[0]) for h in hosts),
        ip_rules=tuple(str(r[0]) for r in rules),
        quota_bytes=None if row[7] is None else int(row[7]),
    )


def _identity(row: Sequence[Any]) -> IdentityRecord:
    return IdentityRecord(str(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]))


def _scope_map(row: Sequence[Any]) -> ScopeMapRecord:
    return ScopeMapRecord(
        str(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        tuple(orjson.loads(row[4])),
        bool(row[5]),
        int(row[6]),
    )


def _token(row: Sequence[Any]) -> TokenRecord:
    return TokenRecord(
        str(row[0]),
        int(row[1]),
        str(row[2]),
        str(row[3]),
        str(row[4]),
        str(row[5]),
        int(row[6]),
        int(row[7]),
    )


_TOKEN_SELECT = (
    "SELECT t.id, t.registry_id, t.name, t.scope_map_id, s.name, t.status, t.version, "
    "t.created_at FROM tokens t JOIN scope_maps s ON s.id = t.scope_map_id "
)
_SCOPE_MAP_SELECT = (
    "SELECT id, registry_id, name, description, actions, system, created_at FROM scope_maps "
)


class AccessStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # Registries ------------------------------------------------------------------

    async def registry(self, name: str) -> RegistryRecord | None:
        def work(c: Conn) -> RegistryRecord | None:
            row = c.one(f"SELECT {_REGISTRY_COLUMNS} FROM registries WHERE name = ?", name.lower())
            return None if row is None else _registry(c, row)

        return await self.db.read(work)

    async def registry_by_id(self, registry_id: int) -> RegistryRecord | None:
        def work(c: Conn) -> RegistryRecord | None:
            row = c.one(f"SELECT {_REGISTRY_COLUMNS} FROM registries WHERE id = ?", registry_id)
            return None if row is None else _registry(c, row)

        return await self.db.read(work)

    async def registries(self) -> list[RegistryRecord]:
        def work(c: Conn) -> list[RegistryRecord]:
            rows = c.all(f"SELECT {_REGISTRY_COLUMNS} FROM registries ORDER BY name")
            return [_registry(c, row) for row in rows]

        return await self.db.read(work)

    async def create_registry(
        self, name: str, sku: str, login_server: str, system_maps: dict[str, list[str]]
    ) -> bool:
        """Create a registry with its login server and system scope maps; False if the
        name (or the login server) is taken."""

        def work(c: Conn) -> bool:
            created = c.exec(
                "INSERT INTO registries (name, created_at, sku) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                name,
                now_ms(),
                sku,
            )
            if not created:
                return False  # the name is taken (perhaps by a concurrent request)
            registry_id = int(c.value("SELECT id FROM registries WHERE name = ?", name))
            claimed = c.exec(
                "INSERT INTO login_servers (host, registry_id) VALUES (?, ?) "
                "ON CONFLICT (host) DO NOTHING",
                login_server,
                registry_id,
            )
            if not claimed:
                raise _Taken()  # roll the registry back too
            _ensure_system_maps(c, registry_id, system_maps)
            return True

        try:
            return await self.db.write(work)
        except _Taken:
            return False

    async def set_extra_login_servers(
        self, registry_id: int, primary: str, hosts: list[str]
    ) -> bool:
        """Replace the registry's login servers other than `primary`; False (and nothing
        changed) when another registry answers to one of them."""

        def work(c: Conn) -> None:
            c.exec(
                "DELETE FROM login_servers WHERE registry_id = ? AND host <> ?",
                registry_id,
                primary,
            )
            for host in hosts:
                owner = c.value("SELECT registry_id FROM login_servers WHERE host = ?", host)
                if owner is not None and int(owner) != registry_id:
                    raise _Taken()
                c.exec(
                    "INSERT INTO login_servers (host, registry_id) VALUES (?, ?) "
                    "ON CONFLICT (host) DO NOTHING",
                    host,
                    registry_id,
                )

        try:
            await self.db.write(work)
        except _Taken:
            return False
        return True

    def ensure_system_maps_sync(self, registry_id: int, system_maps: dict[str, list[str]]) -> None:
        self.db.write_sync(lambda c: _ensure_system_maps(c, registry_id, system_maps))

    async def update_registry(self, registry_id: int, changes: dict[str, Any]) -> None:
        columns = {"sku", "admin_enabled", "anonymous_pull", "default_action", "quota_bytes"}
        assert set(changes) <= columns

        def work(c: Conn) -> None:
            for column, value in changes.items():
                c.exec(f"UPDATE registries SET {column} = ? WHERE id = ?", value, registry_id)

        await self.db.write(work)

    async def delete_registry(self, registry_id: int) -> None:
        def work(c: Conn) -> None:
            # Tokens reference scope maps without cascading; drop them first.
            c.exec("DELETE FROM tokens WHERE registry_id = ?", registry_id)
            c.exec("DELETE FROM uploads WHERE registry_id = ?", registry_id)
            gc.enqueue_registry(c, registry_id, now_ms())
            c.exec("DELETE FROM registries WHERE id = ?", registry_id)

        await self.db.write(work)

    # Admin user ------------------------------------------------------------------

    async def admin_passwords(self, registry_id: int) -> dict[str, tuple[str, int]]:
        """name → (sealed secret, created_at)."""
        rows = await self.db.read(
            lambda c: c.all(
                "SELECT name, secret, created_at FROM admin_passwords WHERE registry_id = ?",
                registry_id,
            )
        )
        return {str(r[0]): (str(r[1]), int(r[2])) for r in rows}

    async def set_admin_password(self, registry_id: int, name: str, sealed: str) -> None:
        assert name in ADMIN_PASSWORD_NAMES
        await self.db.write(
            lambda c: c.exec(
                "INSERT INTO admin_passwords (registry_id, name, secret, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (registry_id, name) DO UPDATE SET "
                "secret = excluded.secret, created_at = excluded.created_at",
                registry_id,
                name,
                sealed,
                now_ms(),
            )
        )

    # Network rules ---------------------------------------------------------------

    async def add_network_rule(self, registry_id: int, address_range: str) -> None:
        await self.db.write(
            lambda c: c.exec(
                "INSERT INTO network_rules (registry_id, address_range) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                registry_id,
                address_range,
            )
        )

    async def remove_network_rule(self, registry_id: int, address_range: str) -> bool:
        changed = await self.db.write(
            lambda c: c.exec(
                "DELETE FROM network_rules WHERE registry_id = ? AND address_range = ?",
                registry_id,
                address_range,
            )
        )
        return changed > 0

    # Identities ------------------------------------------------------------------

    def has_identities_sync(self) -> bool:
        found = self.db.write_sync(lambda c: c.value("SELECT 1 FROM identities LIMIT 1"))
        return found is not None

    def create_owner_sync(self, identity: IdentityRecord, credential: CredentialRecord) -> bool:
        """Create the first identity with the Owner role over the whole deployment,
        unless some identity exists already."""

        def work(c: Conn) -> bool:
            if c.value("SELECT 1 FROM identities LIMIT 1") is not None:
                return False
            _create_identity(c, identity, credential)
            c.exec(
                "INSERT INTO role_assignments (id, identity_id, role, registry_id, repository, "
                "created_at) VALUES (?, ?, 'Owner', NULL, NULL, ?)",
                str(uuid.uuid4()),
                identity.id,
                identity.created_at,
            )
            return True

        return self.db.write_sync(work)

    async def create_identity(self, identity: IdentityRecord, credential: CredentialRecord) -> bool:
        return await self.db.write(lambda c: _create_identity(c, identity, credential))

    async def identity(self, id_or_name: str) -> IdentityRecord | None:
        row = await self.db.read(
            lambda c: c.one(
                "SELECT id, name, kind, version, created_at FROM identities "
                "WHERE id = ? OR name = ?",
                id_or_name,
                id_or_name.lower(),
            )
        )
        return None if row is None else _identity(row)

    async def identities(self) -> list[tuple[IdentityRecord, list[CredentialRecord]]]:
        def work(c: Conn) -> list[tuple[IdentityRecord, list[CredentialRecord]]]:
            rows = c.all("SELECT id, name, kind, version, created_at FROM identities ORDER BY name")
            return [(_identity(r), _credentials(c, str(r[0]))) for r in rows]

        return await self.db.read(work)

    async def credentials(self, identity_id: str) -> list[CredentialRecord]:
        return await self.db.read(lambda c: _credentials(c, identity_id))

    async def delete_identity(self, identity_id: str) -> None:
        await self.db.write(lambda c: c.exec("DELETE FROM identities WHERE id = ?", identity_id))

    async def add_credential(self, credential: CredentialRecord, replace: bool) -> None:
        """Add a credential; with `replace`, the identity's other credentials go, and
        every token issued to it stops working."""

        def work(c: Conn) -> None:
            if replace:
                c.exec(
                    "DELETE FROM identity_credentials WHERE identity_id = ?",
                    credential.identity_id,
                )
                c.exec(
                    "UPDATE identities SET version = version + 1 WHERE id = ?",
                    credential.identity_id,
                )
            _insert_credential(c, credential)

        await self.db.write(work)

    async def identity_version(self, identity_id: str) -> int | None:
        value = await self.db.read(
            lambda c: c.value("SELECT version FROM identities WHERE id = ?", identity_id)
        )
        return None if value is None else int(value)

    # Role assignments ------------------------------------------------------------

    async def create_assignment(
        self,
        assignment_id: str,
        identity_id: str,
        role: str,
        registry_id: int | None,
        repository: str | None,
    ) -> str:
        """Assign a role (idempotent: an identical assignment's id is returned)."""

        def work(c: Conn) -> str:
            for row in c.all(
                "SELECT id, registry_id, repository FROM role_assignments "
                "WHERE identity_id = ? AND role = ?",
                identity_id,
                role,
            ):
                if row[1] == registry_id and row[2] == repository:
                    return str(row[0])
            c.exec(
                "INSERT INTO role_assignments (id, identity_id, role, registry_id, repository, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                assignment_id,
                identity_id,
                role,
                registry_id,
                repository,
                now_ms(),
            )
            return assignment_id

        return await self.db.write(work)

    async def assignments(self, identity_id: str | None = None) -> list[AssignmentRecord]:
        sql = (
            "SELECT a.id, a.identity_id, i.name, a.role, a.registry_id, r.name, a.repository "
            "FROM role_assignments a JOIN identities i ON i.id = a.identity_id "
            "LEFT JOIN registries r ON r.id = a.registry_id"
        )
        args: list[Any] = []
        if identity_id is not None:
            sql += " WHERE a.identity_id = ?"
            args.append(identity_id)
        sql += " ORDER BY i.name, a.role, a.created_at"
        rows = await self.db.read(lambda c: c.all(sql, *args))
        return [
            AssignmentRecord(
                str(r[0]),
                str(r[1]),
                str(r[2]),
                str(r[3]),
                None if r[4] is None else int(r[4]),
                None if r[5] is None else str(r[5]),
                None if r[6] is None else str(r[6]),
            )
            for r in rows
        ]

    async def delete_assignment(self, assignment_id: str) -> bool:
        changed = await self.db.write(
            lambda c: c.exec("DELETE FROM role_assignments WHERE id = ?", assignment_id)
        )
        return changed > 0

    # Scope maps and tokens -------------------------------------------------------

    async def scope_maps(self, registry_id: int) -> list[ScopeMapRecord]:
        rows = await self.db.read(
            lambda c: c.all(_SCOPE_MAP_SELECT + "WHERE registry_id = ? ORDER BY name", registry_id)
        )
        return [_scope_map(r) for r in rows]

    async def scope_map(self, registry_id: int, name: str) -> ScopeMapRecord | None:
        row = await self.db.read(
            lambda c: c.one(
                _SCOPE_MAP_SELECT + "WHERE registry_id = ? AND name = ?", registry_id, name
            )
        )
        return None if row is None else _scope_map(row)

    async def scope_map_by_id(self, scope_map_id: str) -> ScopeMapRecord | None:
        row = await self.db.read(lambda c: c.one(_SCOPE_MAP_SELECT + "WHERE id = ?", scope_map_id))
        return None if row is None else _scope_map(row)

    async def save_scope_map(self, record: ScopeMapRecord) -> bool:
        """Insert or update (by registry and name); False when the name is taken by a
        scope map with another id."""

        def work(c: Conn) -> bool:
            found = c.value(
                "SELECT id FROM scope_maps WHERE registry_id = ? AND name = ?",
                record.registry_id,
                record.name,
            )
            if found is not None and str(found) != record.id:
                return False
            actions = orjson.dumps(list(record.actions)).decode()
            if found is not None:
                c.exec(
                    "UPDATE scope_maps SET description = ?, actions = ? WHERE id = ?",
                    record.description,
                    actions,
                    record.id,
                )
                return True
            inserted = c.exec(
                "INSERT INTO scope_maps (id, registry_id, name, description, actions, "
                "system, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (registry_id, name) DO NOTHING",
                record.id,
                record.registry_id,
                record.name,
                record.description,
                actions,
                int(record.system),
                record.created_at,
            )
            return bool(inserted)  # 0: a concurrent request took the name

        return await self.db.write(work)

    async def delete_scope_map(self, scope_map_id: str) -> str | None:
        """Delete a scope map; returns the name of a token still using it instead."""

        def work(c: Conn) -> str | None:
            user = c.value("SELECT name FROM tokens WHERE scope_map_id = ? LIMIT 1", scope_map_id)
            if user is not None:
                return str(user)
            c.exec("DELETE FROM scope_maps WHERE id = ?", scope_map_id)
            return None

        return await self.db.write(work)

    async def tokens(self, registry_id: int) -> list[TokenRecord]:
        rows = await self.db.read(
            lambda c: c.all(_TOKEN_SELECT + "WHERE t.registry_id = ? ORDER BY t.name", registry_id)
        )
        return [_token(r) for r in rows]

    async def token(self, registry_id: int, name: str) -> TokenRecord | None:
        row = await self.db.read(
            lambda c: c.one(
                _TOKEN_SELECT + "WHERE t.registry_id = ? AND t.name = ?", registry_id, name
            )
        )
        return None if row is None else _token(row)

    async def token_by_id(self, token_id: str) -> TokenRecord | None:
        row = await self.db.read(lambda c: c.one(_TOKEN_SELECT + "WHERE t.id = ?", token_id))
        return None if row is None else _token(row)

    async def create_token(self, record: TokenRecord) -> bool:
        def work(c: Conn) -> bool:
            return bool(
                c.exec(
                    "INSERT INTO tokens (id, registry_id, name, scope_map_id, status, version, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (registry_id, name) DO NOTHING",
                    record.id,
                    record.registry_id,
                    record.name,
                    record.scope_map_id,
                    record.status,
                    record.version,
                    record.created_at,
                )
            )

        return await self.db.write(work)

    async def update_token(
        self, token_id: str, status: str | None, scope_map_id: str | None
    ) -> None:
        def work(c: Conn) -> None:
            if status is not None:
                c.exec("UPDATE tokens SET status = ? WHERE id = ?", status, token_id)
            if scope_map_id is not None:
                c.exec("UPDATE tokens SET scope_map_id = ? WHERE id = ?", scope_map_id, token_id)

        await self.db.write(work)

    async def delete_token(self, token_id: str) -> None:
        await self.db.write(lambda c: c.exec("DELETE FROM tokens WHERE id = ?", token_id))

    async def token_passwords(self, token_id: str) -> list[TokenPasswordRecord]:
        rows = await self.db.read(
            lambda c: c.all(
                "SELECT name, hash, expires_at, created_at FROM token_passwords "
                "WHERE token_id = ? ORDER BY name",
                token_id,
            )
        )
        return [
            TokenPasswordRecord(
                str(r[0]), str(r[1]), None if r[2] is None else int(r[2]), int(r[3])
            )
            for r in rows
        ]

    async def set_token_passwords(
        self, token_id: str, passwords: list[TokenPasswordRecord]
    ) -> None:
        """Replace the named passwords; every token issued with the old ones stops."""

        def work(c: Conn) -> None:
            for p in passwords:
                c.exec(
                    "INSERT INTO token_passwords (token_id, name, hash, expires_at, created_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (token_id, name) DO UPDATE SET "
                    "hash = excluded.hash, expires_at = excluded.expires_at, "
                    "created_at = excluded.created_at",
                    token_id,
                    p.name,
                    p.hash,
                    p.expires_at,
                    p.created_at,
                )
            c.exec("UPDATE tokens SET version = version + 1 WHERE id = ?", token_id)

        await self.db.write(work)

    # Signing keys ----------------------------------------------------------------

    async def signing_keys(self) -> list[StoredKey]:
        rows = await self.db.read(
            lambda c: c.all(
                "SELECT kid, private_key, public_key, created_at FROM signing_keys "
                "WHERE retired_at IS NULL"
            )
        )
        return [StoredKey(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def add_signing_key_sync(self, key: StoredKey, retire_before_ms: int | None) -> None:
        def work(c: Conn) -> None:
            if retire_before_ms is not None:
                c.exec(
                    "UPDATE signing_keys SET retired_at = ? "
                    "WHERE retired_at IS NULL AND created_at < ?",
                    now_ms(),
                    retire_before_ms,
                )
            c.exec(
                "INSERT INTO signing_keys (kid, private_key, public_key, created_at) "
                "VALUES (?, ?, ?, ?)",
                key.kid,
                key.sealed_private,
                key.public_pem,
                key.created_at,
            )

        self.db.write_sync(work)

    def has_signing_key_sync(self) -> bool:
        return (
            self.db.write_sync(
                lambda c: c.value("SELECT 1 FROM signing_keys WHERE retired_at IS NULL LIMIT 1")
            )
            is not None
        )


def _insert_credential(c: Conn, credential: CredentialRecord) -> None:
    c.exec(
        "INSERT INTO identity_credentials (id, identity_id, name, hash, expires_at, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        credential.id,
        credential.identity_id,
        credential.name,
        credential.hash,
        credential.expires_at,
        credential.created_at,
    )


def _create_identity(c: Conn, identity: IdentityRecord, credential: CredentialRecord) -> bool:
    created = c.exec(
        "INSERT INTO identities (id, name, kind, version, created_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (name) DO NOTHING",
        identity.id,
        identity.name,
        identity.kind,
        identity.version,
        identity.created_at,
    )
    if not created:
        return False  # the name is taken (perhaps by a concurrent request)
    _insert_credential(c, credential)
    return True


def _credentials(c: Conn, identity_id: str) -> list[CredentialRecord]:
    rows = c.all(
        "SELECT id, identity_id, name, hash, expires_at, created_at FROM identity_credentials "
        "WHERE identity_id = ? ORDER BY created_at",
        identity_id,
    )
    return [
        CredentialRecord(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            None if r[4] is None else int(r[4]),
            int(r[5]),
        )
        for r in rows
    ]


def _ensure_system_maps(c: Conn, registry_id: int, system_maps: dict[str, list[str]]) -> None:
    for name, actions in system_maps.items():
        c.exec(
            "INSERT INTO scope_maps (id, registry_id, name, description, actions, system, "
            "created_at) VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT (registry_id, name) DO NOTHING",
            str(uuid.uuid4()),
            registry_id,
            name,
            f"Built-in scope map: {', '.join(sorted({a.split('/', 2)[2] for a in actions}))}",
            orjson.dumps(actions).decode(),
            now_ms(),
        )
