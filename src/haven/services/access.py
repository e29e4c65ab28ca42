"""Who is calling, and what they may do: authentication, permissions, token issuance.

Every answer on the request path comes from in-process caches that are valid for one
value of the deployment's access change counter (`epoch.py`). A change to roles,
credentials, tokens or a registry's access settings bumps the counter; the next request
in any worker sees the new value, drops its caches and asks the database again. So a
revoked role or a disabled token stops working at once, and steady-state requests cost
no database round trip for access.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from haven.auth import roles
from haven.auth.jwts import KeyRing, TokenInvalid
from haven.auth.secrets import SecretBox, same, verify_secret
from haven.epoch import ChangeCounter
from haven.errors import Unauthorized
from haven.store.access import AccessStore, RegistryRecord
from haven.store.metadata import now_ms

T = TypeVar("T")

REFRESH_USERNAME = "00000000-0000-0000-0000-000000000000"
MANAGEMENT = "management"
ACCESS_TOKEN_SECONDS = 300
REGISTRY_REFRESH_SECONDS = 3 * 3600
MANAGEMENT_REFRESH_SECONDS = 30 * 24 * 3600
CATALOG_RESOURCE = ("registry", "catalog")
# Listing the repositories that hold soft-deleted manifests or tags (ACR's scope name).
DELETED_CATALOG_RESOURCE = ("registry", "deleted_catalog")
LOGIN_CACHE_MS = 300_000
MAX_CACHED_BEARERS = 50_000
# Request shapes remembered as admitted (each holds its Authorization header, ~1 KiB).
MAX_ADMITTED = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: an identity, a registry's admin user, a repository
    token, or nobody (anonymous)."""

    kind: str
    id: str
    name: str
    version: int = 0
    registry_id: int | None = None

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


ANONYMOUS = Principal("anonymous", "-", "anonymous")


@dataclass(slots=True)
class Caller:
    """A principal plus, when it came with a bearer token, what that token grants, and
    until when (Unix time in ms) the credentials it presented may be taken as checked."""

    principal: Principal
    token_grants: dict[tuple[str, str], frozenset[str]] | None = None
    valid_until_ms: float = math.inf

    @property
    def anonymous(self) -> bool:
        return self.principal.kind == "anonymous"


@dataclass(slots=True)
class _Caches:
    epoch: int
    logins: dict[str, tuple[Principal, int]] = field(default_factory=dict)
    versions: dict[str, int | None] = field(default_factory=dict)
    registries: dict[int, RegistryRecord | None] = field(default_factory=dict)
    permissions: dict[tuple[str, int, str], frozenset[str]] = field(default_factory=dict)
    assignments: dict[str, list[tuple[str, int | None, str | None]]] = field(default_factory=dict)
    bearers: dict[tuple[int, str], tuple[Caller, float]] = field(default_factory=dict)
    admitted: dict[Hashable, Caller] = field(default_factory=dict)


# The state every cached answer depends on; see AccessService.generation().
Generation = _Caches


def _login_key(registry_id: int, username: str, password: str) -> str:
    digest = hashlib.sha256(f"{registry_id}\0{username}\0{password}".encode()).hexdigest()
    return digest


def scope_map_allows(actions: tuple[str, ...], repository: str) -> frozenset[str]:
    """What a scope map's `repositories/<pattern>/<category>/<verb>` entries grant on one
    repository; `<prefix>/*` matches below a prefix, `*` matches every repository."""
    granted: set[str] = set()
    for entry in actions:
        if not entry.startswith("repositories/") or entry.count("/") < 3:
            continue
        pattern, category, verb = entry[len("repositories/") :].rsplit("/", 2)
        if (
            pattern == "*"
            or pattern == repository
            or (pattern.endswith("/*") and repository.startswith(pattern[:-1]))
        ):
            granted.add(f"{category}/{verb}")
    return frozenset(granted)


class AccessService:
    def __init__(
        self,
        store: AccessStore,
        keys: KeyRing,
        box: SecretBox,
        counter: ChangeCounter,
    ) -> None:
        self._store = store
        self.keys = keys
        self.box = box
        self._counter = counter
        self._caches = _Caches(epoch=-1)
        self._refreshing: asyncio.Lock | None = None

    # Caches ----------------------------------------------------------------------

    async def _current(self) -> _Caches:
        epoch = self._counter.value()
        caches = self._caches
        if caches.epoch == epoch:
            return caches
        if self._refreshing is None:
            self._refreshing = asyncio.Lock()
        async with self._refreshing:
            if self._caches.epoch != epoch:
                self.keys.load(await self._store.signing_keys())
                self._caches = _Caches(epoch=epoch)
        return self._caches

    def changed(self) -> None:
        """Call after committing any change that affects access."""
        self._counter.bump()

    async def generation(self) -> Generation:
        """The current state of every access cache, to `admit` a decision under."""
        return await self._current()

    def admitted(self, key: Hashable) -> Caller | None:
        """The caller admitted before for exactly this request shape `key` (registry,
        credentials, address, repository, action), if nothing that decision rested on
        has changed since and the caller's credentials are still valid."""
        caches = self._caches
        if caches.epoch != self._counter.value():
            return None
        caller = caches.admitted.get(key)
        if caller is None or caller.valid_until_ms <= now_ms():
            return None
        return caller

    def admit(self, generation: Generation, key: Hashable, caller: Caller) -> None:
        """Remember that `caller` was admitted for `key` under `generation`; a decision
        taken while access changed lands in a generation that is already stale."""
        if len(generation.admitted) >= MAX_ADMITTED:
            generation.admitted.clear()
        generation.admitted[key] = caller

    async def _cached(self, table: dict[Any, Any], key: Any, load: Callable[[], Awaitable[T]]) -> T:
        if key in table:
            return table[key]  # type: ignore[no-any-return]
        value = await load()
        table[key] = value
        return value

    async def registry(self, registry_id: int) -> RegistryRecord | None:
        caches = await self._current()
        return await self._cached(
            caches.registries, registry_id, lambda: self._store.registry_by_id(registry_id)
        )

    # Authentication --------------------------------------------------------------

    async def login(self, registry_id: int | None, username: str, password: str) -> Principal:
        """Check a username and password (or refresh token) for a registry, or for
        management when `registry_id` is None. Raises Unauthorized."""
        return (await self.login_caller(registry_id, username, password)).principal

    async def login_caller(self, registry_id: int | None, username: str, password: str) -> Caller:
        """`login`, as a caller valid until the check has to be made again."""
        caches = await self._current()
        key = _login_key(registry_id or 0, username, password)
        cached = caches.logins.get(key)
        if cached is None or cached[1] <= now_ms():
            found = await self._login(registry_id, username, password)
            if found is None:
                raise Unauthorized("incorrect username or password")
            principal, expires_at = found
            # Remembered until the secret expires, and never for long: a credential
            # that lapses stops working even if nothing else changes.
            cached = (principal, min(expires_at or 2**62, now_ms() + LOGIN_CACHE_MS))
            if caches is self._caches:
                caches.logins[key] = cached
        return Caller(cached[0], valid_until_ms=cached[1])

    async def _login(
        self, registry_id: int | None, username: str, password: str
    ) -> tuple[Principal, int | None] | None:
        """The principal and when its secret expires; None when nothing matches.

        A registry's admin user and its repository tokens are tried before identities,
        but never shadow them: when their password does not match, the identity of
        that name still may.
        """
        if username == REFRESH_USERNAME:
            audience = MANAGEMENT if registry_id is None else await self.audience(registry_id)
            try:
                return await self.from_token(password, audience, "refresh"), None
            except Unauthorized:
                return None
        if registry_id is not None:
            registry = await self.registry(registry_id)
            if registry is not None and username.lower() == registry.name:
                admin = await self._admin_login(registry, password)
                if admin is not None:
                    return admin, None
            token = await self._store.token(registry_id, username)
            if token is not None:
                found = await self._token_login(token.id, token.name, registry_id, password)
                if found is not None:
                    return found
        identity = await self._store.identity(username)
        if identity is None:
            return None
        now = now_ms()
        for credential in await self._store.credentials(identity.id):
            if credential.expires_at is not None and credential.expires_at <= now:
                continue
            if await asyncio.to_thread(verify_secret, credential.hash, password):
                principal = Principal("identity", identity.id, identity.name, identity.version)
                return principal, credential.expires_at
        return None

    async def _admin_login(self, registry: RegistryRecord, password: str) -> Principal | None:
        if not registry.admin_enabled:
            return None
        for name, (sealed, created_at) in (await self._store.admin_passwords(registry.id)).items():
            if same(self.box.open(sealed), password):
                return Principal(
                    "admin", f"{registry.id}/{name}", registry.name, created_at, registry.id
                )
        return None

    async def _token_login(
        self, token_id: str, name: str, registry_id: int, password: str
    ) -> tuple[Principal, int | None] | None:
        token = await self._store.token_by_id(token_id)
        if token is None or token.status != "enabled":
            return None
        now = now_ms()
        for stored in await self._store.token_passwords(token_id):
            if stored.expires_at is not None and stored.expires_at <= now:
                continue
            if await asyncio.to_thread(verify_secret, stored.hash, password):
                principal = Principal("token", token_id, name, token.version, registry_id)
                return principal, stored.expires_at
        return None

    async def audience(self, registry_id: int) -> str:
        registry = await self.registry(registry_id)
        return registry.name if registry is not None else "-"

    async def current_version(self, principal: Principal) -> int | None:
        """The principal's version now, or None when it no longer exists or may not
        sign in (deleted identity, disabled token, admin user switched off)."""
        if principal.kind == "anonymous":
            return 0
        caches = await self._current()
        return await self._cached(
            caches.versions, principal.key, lambda: self._load_version(principal)
        )

    async def _load_version(self, principal: Principal) -> int | None:
        if principal.kind == "identity":
            return await self._store.identity_version(principal.id)
        if principal.kind == "token":
            token = await self._store.token_by_id(principal.id)
            return token.version if token is not None and token.status == "enabled" else None
        if principal.kind == "admin":
            registry_id, _, name = principal.id.partition("/")
            registry = await self.registry(int(registry_id))
            if registry is None or not registry.admin_enabled:
                return None
            stored = (await self._store.admin_passwords(registry.id)).get(name)
            return None if stored is None else stored[1]
        return None

    async def from_token(self, token: str, audience: str, kind: str) -> Principal:
        """The principal behind a token of `kind` (access or refresh) for `audience`,
        if it is still valid now. Raises Unauthorized."""
        principal, _ = await self._verified(token, audience, kind)
        return principal

    async def _verified(
        self, token: str, audience: str, kind: str
    ) -> tuple[Principal, dict[str, Any]]:
        await self._current()
        try:
            claims = self.keys.verify(token, audience)
        except TokenInvalid as exc:
            raise Unauthorized(str(exc)) from None
        if claims.get("kind") != kind:
            raise Unauthorized(f"a {claims.get('kind')} token cannot be used here")
        principal = _principal_from_claims(claims)
        if (
            principal.kind != "anonymous"
            and await self.current_version(principal) != principal.version
        ):
            raise Unauthorized("the credentials behind this token were revoked or changed")
        return principal, claims

    async def bearer(self, registry_id: int, token: str) -> Caller:
        """The caller behind an access token for this registry. Raises Unauthorized.

        Clients send one token with many requests, so the decoded caller is kept (for
        this epoch of the change counter, and until the token expires): a request with
        a known token costs a dictionary lookup.
        """
        caches = await self._current()
        key = (registry_id, token)
        known = caches.bearers.get(key)
        if known is not None and known[1] > time.time():
            return known[0]
        audience = await self.audience(registry_id)
        principal, claims = await self._verified(token, audience, "access")
        grants: dict[tuple[str, str], frozenset[str]] = {}
        for entry in claims.get("access") or []:
            if isinstance(entry, dict):
                resource = (str(entry.get("type")), str(entry.get("name")))
                grants[resource] = grants.get(resource, frozenset()) | roles.from_docker_actions(
                    [str(a) for a in entry.get("actions") or []]
                )
        caller = Caller(principal, grants, float(claims["exp"]) * 1000)
        if caches is self._caches:
            if len(caches.bearers) > MAX_CACHED_BEARERS:
                caches.bearers.clear()
            caches.bearers[key] = (caller, float(claims["exp"]))
        return caller

    # Permissions -----------------------------------------------------------------

    async def permissions(
        self, principal: Principal, registry_id: int, repository: str | None
    ) -> frozenset[str]:
        """What `principal` may do on `repository` of the registry (or, with None, on
        the registry itself: the catalog), according to the current settings."""
        caches = await self._current()
        key = (principal.key, registry_id, repository or "")
        found = caches.permissions.get(key)
        if found is None:
            found = await self._permissions(caches, principal, registry_id, repository)
            caches.permissions[key] = found
        return found

    async def _permissions(
        self, caches: _Caches, principal: Principal, registry_id: int, repository: str | None
    ) -> frozenset[str]:
        if principal.kind == "anonymous":
            registry = await self.registry(registry_id)
            if registry is None or not registry.anonymous_pull or repository is None:
                return frozenset()
            return frozenset({roles.READ, roles.META_READ})
        if principal.kind == "admin":
            return roles.ADMIN_ACTIONS if principal.registry_id == registry_id else frozenset()
        if principal.kind == "token":
            if principal.registry_id != registry_id or repository is None:
                return frozenset()  # tokens never list the catalog
            token = await self._store.token_by_id(principal.id)
            if token is None:
                return frozenset()
            scope_map = await self._store.scope_map_by_id(token.scope_map_id)
            return scope_map_allows(scope_map.actions, repository) if scope_map else frozenset()
        return self._role_actions(
            await self._assignments(caches, principal.id), registry_id, repository
        )

    async def _assignments(
        self, caches: _Caches, identity_id: str
    ) -> list[tuple[str, int | None, str | None]]:
        async def load() -> list[tuple[str, int | None, str | None]]:
            return [
                (a.role, a.registry_id, a.repository)
                for a in await self._store.assignments(identity_id)
            ]

        return await self._cached(caches.assignments, identity_id, load)

    @staticmethod
    def _role_actions(
        assignments: list[tuple[str, int | None, str | None]],
        registry_id: int | None,
        repository: str | None,
    ) -> frozenset[str]:
        granted: set[str] = set()
        for role, scope_registry, scope_repository in assignments:
            if scope_registry is None:
                covers = True
            elif scope_registry != registry_id:
                covers = False
            elif scope_repository is None:
                covers = True
            else:
                covers = repository is not None and (
                    repository == scope_repository
                    or (
                        scope_repository.endswith("/*")
                        and repository.startswith(scope_repository[:-1])
                    )
                )
            if covers:
                granted |= roles.ROLES.get(role, frozenset())
        return frozenset(granted)

    async def management_actions(
        self, principal: Principal, registry_id: int | None
    ) -> frozenset[str]:
        """Management rights of an identity over a registry, or with None over the
        deployment (identities, registries, keys: deployment-scope roles only)."""
        if principal.kind != "identity":
            return frozenset()
        caches = await self._current()
        actions = self._role_actions(
            await self._assignments(caches, principal.id), registry_id, None
        )
        return frozenset(a for a in actions if a.startswith("manage/"))

    async def any_role_on(self, principal: Principal, registry_id: int) -> bool:
        """Whether an identity holds any role on the registry or one of its repositories."""
        if principal.kind != "identity":
            return False
        caches = await self._current()
        return any(
            scope is None or scope == registry_id
            for _, scope, _ in await self._assignments(caches, principal.id)
        )

    # Tokens ----------------------------------------------------------------------

    async def issue_access(
        self,
        principal: Principal,
        registry_id: int | None,
        scopes: list[tuple[str, str, list[str]]],
    ) -> tuple[str, int, int, list[dict[str, Any]]]:
        """An access token granting the requested scopes that the principal holds now.

        Returns (token, lifetime in seconds, issued-at, the granted access list).
        """
        await self._current()
        access: list[dict[str, Any]] = []
        if registry_id is not None:
            for resource_type, name, actions in scopes:
                if (resource_type, name) in (CATALOG_RESOURCE, DELETED_CATALOG_RESOURCE):
                    held = await self.permissions(principal, registry_id, None)
                    needs = roles.CATALOG if name == "catalog" else roles.DELETED_READ
                    granted = ["*"] if needs in held and "*" in actions else []
                elif resource_type == "repository":
                    held = await self.permissions(principal, registry_id, name)
                    granted = roles.docker_actions(held, actions)
                else:
                    granted = []
                if granted:
                    access.append({"type": resource_type, "name": name, "actions": granted})
            audience = await self.audience(registry_id)
        else:
            audience = MANAGEMENT
        claims = {**_claims_for(principal), "kind": "access", "access": access}
        token, issued = self.keys.sign(claims, audience, ACCESS_TOKEN_SECONDS)
        return token, ACCESS_TOKEN_SECONDS, issued, access

    async def issue_refresh(self, principal: Principal, registry_id: int | None) -> str:
        await self._current()
        if registry_id is None:
            audience, lifetime = MANAGEMENT, MANAGEMENT_REFRESH_SECONDS
        else:
            audience, lifetime = await self.audience(registry_id), REGISTRY_REFRESH_SECONDS
        token, _ = self.keys.sign({**_claims_for(principal), "kind": "refresh"}, audience, lifetime)
        return token

    # Network rules ---------------------------------------------------------------

    async def address_allowed(self, registry_id: int, address: str | None) -> bool:
        registry = await self.registry(registry_id)
        if registry is None or registry.default_action != "Deny":
            return True
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        for rule in registry.ip_rules:
            try:
                if ip in ipaddress.ip_network(rule, strict=False):
                    return True
            except ValueError:
                continue
        return False


def _claims_for(principal: Principal) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "sub": principal.key,
        "name": principal.name,
        "ver": principal.version,
    }
    if principal.registry_id is not None:
        claims["reg"] = principal.registry_id
    return claims


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    kind, _, ident = str(claims.get("sub", "")).partition(":")
    if kind not in ("identity", "admin", "token", "anonymous") or not ident:
        raise Unauthorized("the token names no known principal")
    registry_id = claims.get("reg")
    version = claims.get("ver", 0)
    return Principal(
        kind,
        ident,
        str(claims.get("name", "")),
        int(version) if isinstance(version, int) else -1,
        int(registry_id) if isinstance(registry_id, int) else None,
    )
