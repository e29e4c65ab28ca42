"""Management operations behind `/api/`: registries, admin user, network rules,
identities, role assignments, scope maps and repository tokens.

Every operation takes the calling principal and checks its management rights first;
every change that affects access bumps the deployment's change counter, so it takes
effect on the next request anywhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import uuid
from dataclasses import dataclass
from typing import Any

from haven.auth import roles
from haven.auth.jwts import new_key
from haven.auth.secrets import generate_password, hash_secret
from haven.config import Settings
from haven.errors import ApiError, NameInvalid
from haven.oci.names import validate_name
from haven.purge_rules import parse_ago, parse_filter
from haven.services.access import MANAGEMENT_REFRESH_SECONDS, AccessService, Principal
from haven.services.gc import GarbageCollector
from haven.services.purge import PurgeRequest, PurgeService
from haven.skus import SKU_LIMITS, included_storage
from haven.store import soft_delete
from haven.store.access import (
    ADMIN_PASSWORD_NAMES,
    AccessStore,
    CredentialRecord,
    IdentityRecord,
    RegistryRecord,
    ScopeMapRecord,
    TokenPasswordRecord,
    TokenRecord,
)
from haven.store.metadata import now_ms
from haven.store.repositories import RepositoryStore
from haven.timestamps import iso_from_ms, iso_or_none

SKUS = tuple(SKU_LIMITS)
_REGISTRY_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
_HOST = re.compile(
    r"^(?=.{1,253}(:\d{1,5})?$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*(:\d{1,5})?$"
)
_OBJECT_NAME = re.compile(r"^[a-zA-Z0-9-]{5,50}$")
_IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$")
TOKEN_PASSWORD_NAMES = ("password1", "password2")
DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS

# ACR's system scope maps, created with every registry.
SYSTEM_SCOPE_MAPS: dict[str, list[str]] = {
    "_repositories_pull": ["repositories/*/content/read", "repositories/*/metadata/read"],
    "_repositories_push": [
        "repositories/*/content/read",
        "repositories/*/content/write",
        "repositories/*/metadata/read",
        "repositories/*/metadata/write",
    ],
    "_repositories_admin": [
        "repositories/*/content/read",
        "repositories/*/content/write",
        "repositories/*/content/delete",
        "repositories/*/metadata/read",
        "repositories/*/metadata/write",
    ],
}


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, f"{kind}NotFound", f"{kind.lower()} {name!r} was not found")


def bad_request(message: str) -> ApiError:
    return ApiError(400, "InvalidArgument", message)


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a role applies: the deployment, a registry, or a repository of it."""

    registry: RegistryRecord | None
    repository: str | None

    def render(self) -> str:
        if self.registry is None:
            return "/"
        return self.registry.name + (f"/{self.repository}" if self.repository else "")


class ManagementService:
    def __init__(
        self,
        store: AccessStore,
        access: AccessService,
        settings: Settings,
        collector: GarbageCollector,
        purger: PurgeService,
    ) -> None:
        self._store = store
        self._access = access
        self._settings = settings
        self._collector = collector
        self._purger = purger

    # Rights ----------------------------------------------------------------------

    async def require(
        self, caller: Principal, action: str, registry: RegistryRecord | None
    ) -> None:
        held = await self._access.management_actions(caller, registry.id if registry else None)
        if action in held:
            return
        where = f"registry {registry.name}" if registry else "the deployment"
        words = {
            roles.MANAGE_READ: "read",
            roles.MANAGE_WRITE: "change",
            roles.MANAGE_ROLES: "assign roles or manage identities on",
        }[action]
        raise ApiError(
            403,
            "AuthorizationFailed",
            f"{caller.name} does not have authorization to {words} {where}",
        )

    async def login_server(self, caller: Principal, name: str) -> dict[str, Any]:
        """A registry's name and login server: what `haven login -n R` needs. Any role on
        the registry suffices, as ACR lets an AcrPull assignee sign in by registry name
        while it may not read the registry resource itself."""
        found = await self._store.registry(name)
        if found is not None and await self._access.any_role_on(caller, found.id):
            return {"name": found.name, "loginServer": self.describe(found)["loginServer"]}
        registry = await self.registry(caller, name, roles.MANAGE_READ)
        return {"name": registry.name, "loginServer": self.describe(registry)["loginServer"]}

    async def registry(self, caller: Principal, name: str, action: str) -> RegistryRecord:
        found = await self._store.registry(name)
        if found is None:
            # Do not tell callers without rights which registries exist.
            await self.require(caller, roles.MANAGE_READ, None)
            raise not_found("Registry", name)
        await self.require(caller, action, found)
        return found

    # Registries ------------------------------------------------------------------

    def describe(self, registry: RegistryRecord) -> dict[str, Any]:
        primary = self._settings.login_server(registry.name)
        return {
            "id": f"/registries/{registry.name}",
            "name": registry.name,
            "loginServer": primary,
            "additionalLoginServers": [h for h in registry.login_servers if h != primary],
            "sku": {"name": registry.sku, "tier": registry.sku},
            "adminUserEnabled": registry.admin_enabled,
            "anonymousPullEnabled": registry.anonymous_pull,
            "networkRuleSet": {
                "defaultAction": registry.default_action,
                "ipRules": [
                    {"action": "Allow", "ipAddressOrRange": rule} for rule in registry.ip_rules
                ],
            },
            "creationDate": iso_from_ms(registry.created_at),
            "provisioningState": "Succeeded",
            "storageQuota": {
                "bytes": registry.quota_bytes
                if registry.quota_bytes is not None
                else included_storage(registry.sku),
                "source": "sku" if registry.quota_bytes is None else "override",
            },
        }

    async def list_registries(self, caller: Principal) -> list[dict[str, Any]]:
        visible = []
        for registry in await self._store.registries():
            held = await self._access.management_actions(caller, registry.id)
            if roles.MANAGE_READ in held:
                visible.append(self.describe(registry))
        return visible

    async def create_registry(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        await self.require(caller, roles.MANAGE_WRITE, None)
        name = _string(body, "name")
        if not _REGISTRY_NAME.match(name):
            raise bad_request(
                f"registry name {name[:60]!r} is invalid: use 5 to 50 letters and digits"
            )
        sku = _sku(body.get("sku", "Standard"))
        name = name.lower()
        created = await self._store.create_registry(
            name, sku, self._settings.login_server(name), SYSTEM_SCOPE_MAPS
        )
        if not created:
            raise ApiError(409, "AlreadyInUse", f"the registry name {name} is already in use")
        self._access.changed()
        found = await self._store.registry(name)
        assert found is not None
        return self.describe(found)

    async def update_registry(
        self, caller: Principal, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        changes: dict[str, Any] = {}
        sku = _sku(body["sku"]) if "sku" in body else registry.sku
        if sku != registry.sku:
            changes["sku"] = sku
        if "adminUserEnabled" in body:
            enabled = _bool(body, "adminUserEnabled")
            changes["admin_enabled"] = int(enabled)
            if enabled and not await self._store.admin_passwords(registry.id):
                for password_name in ADMIN_PASSWORD_NAMES:
                    await self._renew_admin(registry.id, password_name)
        if "anonymousPullEnabled" in body:
            changes["anonymous_pull"] = int(_bool(body, "anonymousPullEnabled"))
        anonymous = bool(changes.get("anonymous_pull", registry.anonymous_pull))
        if anonymous and sku == "Basic":
            raise ApiError(
                400,
                "SkuNotSupported",
                "anonymous pull is available on the Standard and Premium SKUs only",
            )
        rules = body.get("networkRuleSet")
        if rules is not None:
            if not isinstance(rules, dict):
                raise bad_request("networkRuleSet must be an object")
            action = rules.get("defaultAction")
            if action is not None:
                if action not in ("Allow", "Deny"):
                    raise bad_request("networkRuleSet.defaultAction must be Allow or Deny")
                if action == "Deny" and sku != "Premium":
                    raise ApiError(
                        400, "SkuNotSupported", "network rules are available on Premium only"
                    )
                changes["default_action"] = action
        action = changes.get("default_action", registry.default_action)
        if action == "Deny" and sku != "Premium":
            raise ApiError(
                400, "SkuNotSupported", "network rules (defaultAction Deny) need the Premium SKU"
            )
        if "additionalLoginServers" in body:
            await self._set_login_servers(registry, body["additionalLoginServers"])
        if "storageQuotaBytes" in body:
            # The operator's lever, not the registry owner's: a deployment-wide right.
            await self.require(caller, roles.MANAGE_WRITE, None)
            changes["quota_bytes"] = _quota_bytes(body["storageQuotaBytes"])
        if changes:
            await self._store.update_registry(registry.id, changes)
            self._access.changed()
        updated = await self._store.registry(registry.name)
        assert updated is not None
        return self.describe(updated)

    async def _set_login_servers(self, registry: RegistryRecord, hosts: Any) -> None:
        if not isinstance(hosts, list) or len(hosts) > 20:
            raise bad_request("additionalLoginServers must be a list of at most 20 host names")
        cleaned = []
        for host in hosts:
            if not isinstance(host, str) or not _HOST.match(host):
                raise bad_request(f"{str(host)[:100]!r} is not a host name (with an optional port)")
            cleaned.append(host.lower())
        primary = self._settings.login_server(registry.name)
        if not await self._store.set_extra_login_servers(registry.id, primary, cleaned):
            raise ApiError(409, "AlreadyInUse", "another registry answers to one of those names")
        self._access.changed()

    async def delete_registry(self, caller: Principal, name: str) -> None:
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        if registry.name == self._settings.default_registry:
            raise ApiError(409, "Conflict", "the default registry cannot be deleted")
        await self._store.delete_registry(registry.id)
        self._access.changed()

    # Admin user ------------------------------------------------------------------

    async def _renew_admin(self, registry_id: int, name: str) -> None:
        await self._store.set_admin_password(
            registry_id, name, self._access.box.seal(generate_password())
        )

    async def credentials(self, caller: Principal, name: str) -> dict[str, Any]:
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        if not registry.admin_enabled:
            raise ApiError(
                409,
                "AdminUserDisabled",
                f"Run 'haven registry update -n {registry.name} --admin-enabled true' "
                "to enable admin first.",
            )
        stored = await self._store.admin_passwords(registry.id)
        return {
            "username": registry.name,
            "passwords": [
                {"name": n, "value": self._access.box.open(stored[n][0])}
                for n in ADMIN_PASSWORD_NAMES
                if n in stored
            ],
        }

    async def renew_credential(
        self, caller: Principal, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        password_name = _string(body, "passwordName")
        if password_name not in ADMIN_PASSWORD_NAMES:
            raise bad_request("passwordName must be password or password2")
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        await self.credentials(caller, name)  # refuses while the admin user is disabled
        await self._renew_admin(registry.id, password_name)
        self._access.changed()
        return await self.credentials(caller, name)

    async def usages(
        self, caller: Principal, name: str, repositories: RepositoryStore
    ) -> dict[str, Any]:
        """ACR's `listUsages`: what the registry uses against its SKU's limits."""
        registry = await self.registry(caller, name, roles.MANAGE_READ)
        counts = await repositories.counts(registry.id)
        storage = await repositories.usage(registry.id)
        current = {
            "Size": storage.used_bytes,
            "Webhooks": 0,
            "Geo-replications": 0,
            "IPRules": counts["ip_rules"],
            "Tokens": counts["tokens"],
            "ScopeMaps": counts["scope_maps"],
        }
        limits = {**SKU_LIMITS[registry.sku], "Size": storage.quota_bytes}
        return {
            "value": [
                {
                    "name": row,
                    "limit": limits[row],
                    "currentValue": value,
                    "unit": "Bytes" if row == "Size" else "Count",
                }
                for row, value in current.items()
            ]
        }

    async def check_usage(
        self, caller: Principal, name: str, repositories: RepositoryStore
    ) -> dict[str, Any]:
        """The usage kept as content changes against a recount from the manifests."""
        registry = await self.registry(caller, name, roles.MANAGE_READ)
        kept, recounted = await repositories.check_usage(registry.id)
        return {
            "usedBytes": kept.used_bytes,
            "recountedBytes": recounted,
            "driftBytes": kept.used_bytes - recounted,
            "quotaBytes": kept.quota_bytes,
        }

    # Garbage collection ------------------------------------------------------------

    async def collect_garbage(self, caller: Principal, body: Any) -> dict[str, Any]:
        """One garbage collection pass now (deployment owners: blobs are shared by every
        registry); `registry` limits the sweep of unreferenced links to one registry."""
        await self.require(caller, roles.MANAGE_WRITE, None)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        name = body.get("registry")
        registry = None
        if name is not None:
            registry = await self.registry(caller, _string(body, "registry"), roles.MANAGE_WRITE)
        report = await self._collector.run(
            registry_id=registry.id if registry else None,
            registry_name=registry.name if registry else None,
            dry_run=_flag(body, "dryRun"),
            full=_flag(body, "full"),
        )
        return report.as_json()

    # Retention ---------------------------------------------------------------------

    async def retention(
        self, caller: Principal, name: str, repositories: RepositoryStore
    ) -> dict[str, Any]:
        """The registry's retention policy for untagged manifests, as ACR shows it."""
        registry = await self.registry(caller, name, roles.MANAGE_READ)
        rule = await repositories.retention_policy(registry.id)
        return {
            "type": "UntaggedManifests",
            "status": "enabled" if rule else "disabled",
            "days": rule.days if rule else 7,
            "lastUpdatedTime": iso_or_none(rule.enabled_at if rule else None),
        }

    async def update_retention(
        self, caller: Principal, name: str, body: Any, repositories: RepositoryStore
    ) -> dict[str, Any]:
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        status = str(body.get("status", "")).lower()
        if status not in ("enabled", "disabled"):
            raise bad_request("status must be enabled or disabled")
        current = await repositories.retention_policy(registry.id)
        days = _int(body, "days", current.days if current else 7, 0, 365)
        await repositories.set_retention_policy(registry.id, days if status == "enabled" else None)
        return await self.retention(caller, name, repositories)

    # Soft delete -------------------------------------------------------------------

    async def soft_delete(
        self, caller: Principal, name: str, repositories: RepositoryStore
    ) -> dict[str, Any]:
        """The registry's soft-delete policy, as ACR shows it."""
        registry = await self.registry(caller, name, roles.MANAGE_READ)
        found = await repositories.soft_delete_policy(registry.id)
        return {
            "status": "enabled" if found.enabled else "disabled",
            "retentionDays": found.days,
            "lastUpdatedTime": iso_or_none(found.updated_at),
        }

    async def update_soft_delete(
        self, caller: Principal, name: str, body: Any, repositories: RepositoryStore
    ) -> dict[str, Any]:
        """Enable or disable soft delete and/or change its days (1-90). Refused (409)
        while the retention policy is enabled, as ACR refuses it."""
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        unknown = sorted(set(body) - {"status", "retentionDays"})
        if unknown:
            raise bad_request(f"unknown field {unknown[0][:60]!r}: give status, retentionDays")
        if "status" not in body and "retentionDays" not in body:
            raise bad_request("give status (enabled or disabled), retentionDays (1-90) or both")
        enabled = None
        if "status" in body:
            status = body["status"]
            if not isinstance(status, str) or status.lower() not in ("enabled", "disabled"):
                raise bad_request("status must be enabled or disabled")
            enabled = status.lower() == "enabled"
        days = None
        if "retentionDays" in body:
            days = _int(body, "retentionDays", 0, soft_delete.MIN_DAYS, soft_delete.MAX_DAYS)
        await repositories.set_soft_delete_policy(registry.id, enabled, days)
        return await self.soft_delete(caller, name, repositories)

    # Purge -------------------------------------------------------------------------

    async def purge(self, caller: Principal, name: str, body: Any) -> dict[str, Any]:
        """`acr purge`: delete tags and untagged manifests by filter and age."""
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        request = purge_request(body)
        report = await self._purger.run(registry.id, request)
        return report.as_json()

    # Network rules ---------------------------------------------------------------

    async def network_rules(self, caller: Principal, name: str) -> dict[str, Any]:
        registry = await self.registry(caller, name, roles.MANAGE_READ)
        return dict(self.describe(registry)["networkRuleSet"])

    async def add_network_rule(
        self, caller: Principal, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        if registry.sku != "Premium":
            raise ApiError(400, "SkuNotSupported", "network rules are available on Premium only")
        rule = _address_range(_string(body, "ipAddressOrRange"))
        await self._store.add_network_rule(registry.id, rule)
        self._access.changed()
        return await self.network_rules(caller, name)

    async def remove_network_rule(self, caller: Principal, name: str, value: str) -> None:
        registry = await self.registry(caller, name, roles.MANAGE_WRITE)
        if not await self._store.remove_network_rule(registry.id, _address_range(value)):
            raise not_found("NetworkRule", value)
        self._access.changed()

    # Identities ------------------------------------------------------------------

    async def me(self, caller: Principal) -> dict[str, Any]:
        identity = await self._store.identity(caller.id) if caller.kind == "identity" else None
        kind = identity.kind if identity is not None else caller.kind
        return {"id": caller.id, "name": caller.name, "kind": kind}

    def _identity_json(
        self, identity: IdentityRecord, credentials: list[CredentialRecord]
    ) -> dict[str, Any]:
        return {
            "id": identity.id,
            "name": identity.name,
            "kind": identity.kind,
            "createdAt": iso_from_ms(identity.created_at),
            "credentials": [
                {
                    "id": c.id,
                    "name": c.name,
                    "expiresAt": iso_or_none(c.expires_at),
                }
                for c in credentials
            ],
        }

    async def list_identities(self, caller: Principal) -> list[dict[str, Any]]:
        await self.require(caller, roles.MANAGE_ROLES, None)
        return [self._identity_json(i, c) for i, c in await self._store.identities()]

    async def identity(self, caller: Principal, id_or_name: str) -> IdentityRecord:
        await self.require(caller, roles.MANAGE_ROLES, None)
        found = await self._store.identity(id_or_name)
        if found is None:
            raise not_found("Identity", id_or_name)
        return found

    async def show_identity(self, caller: Principal, id_or_name: str) -> dict[str, Any]:
        identity = await self.identity(caller, id_or_name)
        return self._identity_json(identity, await self._store.credentials(identity.id))

    async def create_identity(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        await self.require(caller, roles.MANAGE_ROLES, None)
        name = _string(body, "name").lower()
        if not _IDENTITY_NAME.match(name) or name == "00000000-0000-0000-0000-000000000000":
            raise bad_request(
                f"identity name {name[:60]!r} is invalid: use up to 128 letters, digits, "
                "'.', '_', '@' or '-'"
            )
        kind = body.get("kind", "user")
        if kind not in ("user", "servicePrincipal"):
            raise bad_request("kind must be user or servicePrincipal")
        password = body.get("password") or generate_password()
        if not isinstance(password, str) or len(password) < 12 or len(password) > 256:
            raise bad_request("password must be 12 to 256 characters")
        stamp = now_ms()
        identity = IdentityRecord(str(uuid.uuid4()), name, kind, 1, stamp)
        credential = await asyncio.to_thread(self._credential, identity.id, body, password, stamp)
        if not await self._store.create_identity(identity, credential):
            raise ApiError(409, "AlreadyInUse", f"an identity named {name} exists already")
        return {
            "id": identity.id,
            "name": name,
            "kind": kind,
            "password": password,
            "credentialId": credential.id,
            "expiresAt": None
            if credential.expires_at is None
            else iso_from_ms(credential.expires_at),
        }

    def _credential(
        self, identity_id: str, body: dict[str, Any], secret: str, stamp: int
    ) -> CredentialRecord:
        years = body.get("years")
        if years is not None and (
            not isinstance(years, int) or isinstance(years, bool) or not 1 <= years <= 10
        ):
            raise bad_request("years must be a whole number from 1 to 10")
        display = body.get("displayName") or ("password" if years is None else f"{years}y")
        if not isinstance(display, str) or len(display) > 128:
            raise bad_request("displayName must be a string of at most 128 characters")
        expires = None if years is None else stamp + years * YEAR_MS
        return CredentialRecord(
            str(uuid.uuid4()), identity_id, display, hash_secret(secret), expires, stamp
        )

    async def delete_identity(self, caller: Principal, id_or_name: str) -> None:
        identity = await self.identity(caller, id_or_name)
        if identity.id == caller.id:
            raise ApiError(409, "Conflict", "you cannot delete the identity you are signed in as")
        await self._store.delete_identity(identity.id)
        self._access.changed()

    async def reset_credential(
        self, caller: Principal, id_or_name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        identity = await self.identity(caller, id_or_name)
        password = generate_password()
        credential = await asyncio.to_thread(
            self._credential, identity.id, body, password, now_ms()
        )
        await self._store.add_credential(credential, replace=not bool(body.get("append")))
        self._access.changed()
        return {
            "id": identity.id,
            "name": identity.name,
            "password": password,
            "credentialId": credential.id,
            "expiresAt": None
            if credential.expires_at is None
            else iso_from_ms(credential.expires_at),
        }

    # Role assignments ------------------------------------------------------------

    async def parse_scope(self, value: str) -> Scope:
        """`/`, `REGISTRY`, `REGISTRY/repo/path`, or a registry's resource id as
        `haven show` prints it (`…/registries/NAME[/repositories/repo/path]`), so that
        `--scope $(haven show -n R --query id -o tsv)` works as with az."""
        value = value.strip()
        if value in ("", "/"):
            return Scope(None, None)
        if "/registries/" in f"/{value.strip('/')}":
            tail = f"/{value.strip('/')}".rsplit("/registries/", 1)[1]
            registry_name, _, rest = tail.partition("/")
            value = registry_name + (
                "/" + rest.removeprefix("repositories/") if rest.startswith("repositories/") else ""
            )
            if rest and not rest.startswith("repositories/"):
                raise bad_request(f"scope {value[:100]!r} names no registry or repository")
        registry_name, _, repository = value.strip("/").partition("/")
        registry = await self._store.registry(registry_name)
        if registry is None:
            raise not_found("Registry", registry_name)
        if repository:
            pattern = repository[:-2] if repository.endswith("/*") else repository
            try:
                validate_name(pattern)
            except NameInvalid as exc:
                raise bad_request(f"invalid repository in scope: {exc.message}") from None
        return Scope(registry, repository or None)

    async def list_assignments(
        self, caller: Principal, filters: dict[str, str]
    ) -> list[dict[str, Any]]:
        identity_id = None
        if filters.get("assignee"):
            found = await self._store.identity(filters["assignee"])
            if found is None:
                return []
            identity_id = found.id
        out = []
        for a in await self._store.assignments(identity_id):
            held = await self._access.management_actions(caller, a.registry_id)
            if roles.MANAGE_ROLES not in held and a.identity_id != caller.id:
                continue
            scope = "/" if a.registry_name is None else a.registry_name
            if a.repository:
                scope += f"/{a.repository}"
            if filters.get("role") and filters["role"].lower() != a.role.lower():
                continue
            if filters.get("scope") and filters["scope"].strip("/") != scope.strip("/"):
                continue
            out.append(
                {
                    "id": a.id,
                    "role": a.role,
                    "assignee": a.identity_id,
                    "assigneeName": a.identity_name,
                    "scope": scope,
                }
            )
        return out

    async def create_assignment(self, caller: Principal, body: dict[str, Any]) -> dict[str, Any]:
        role = roles.role_named(_string(body, "role"))
        if role is None:
            raise bad_request(f"unknown role; use one of {', '.join(roles.ROLES)}")
        scope = await self.parse_scope(_string(body, "scope"))
        await self.require(caller, roles.MANAGE_ROLES, scope.registry)
        identity = await self._store.identity(_string(body, "assignee"))
        if identity is None:
            raise not_found("Identity", str(body["assignee"]))
        assignment_id = await self._store.create_assignment(
            str(uuid.uuid4()),
            identity.id,
            role,
            scope.registry.id if scope.registry else None,
            scope.repository,
        )
        self._access.changed()
        return {
            "id": assignment_id,
            "role": role,
            "assignee": identity.id,
            "assigneeName": identity.name,
            "scope": scope.render(),
        }

    async def delete_assignment(self, caller: Principal, assignment_id: str) -> None:
        for a in await self._store.assignments():
            if a.id == assignment_id:
                registry = (
                    await self._store.registry_by_id(a.registry_id) if a.registry_id else None
                )
                await self.require(caller, roles.MANAGE_ROLES, registry)
                await self._store.delete_assignment(assignment_id)
                self._access.changed()
                return
        raise not_found("RoleAssignment", assignment_id)

    # Scope maps ------------------------------------------------------------------

    def _scope_map_json(self, record: ScopeMapRecord) -> dict[str, Any]:
        return {
            "name": record.name,
            "description": record.description,
            "actions": list(record.actions),
            "type": "SystemDefined" if record.system else "UserDefined",
            "creationDate": iso_from_ms(record.created_at),
        }

    async def list_scope_maps(self, caller: Principal, registry: str) -> list[dict[str, Any]]:
        found = await self.registry(caller, registry, roles.MANAGE_READ)
        return [self._scope_map_json(m) for m in await self._store.scope_maps(found.id)]

    async def _scope_map(self, registry_id: int, name: str) -> ScopeMapRecord:
        found = await self._store.scope_map(registry_id, name)
        if found is None:
            raise not_found("ScopeMap", name)
        return found

    async def show_scope_map(self, caller: Principal, registry: str, name: str) -> dict[str, Any]:
        found = await self.registry(caller, registry, roles.MANAGE_READ)
        return self._scope_map_json(await self._scope_map(found.id, name))

    async def create_scope_map(
        self, caller: Principal, registry: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        found = await self.registry(caller, registry, roles.MANAGE_WRITE)
        name = _object_name(body, "scope map")
        record = ScopeMapRecord(
            str(uuid.uuid4()),
            found.id,
            name,
            _description(body),
            _actions(body.get("actions")),
            False,
            now_ms(),
        )
        if not await self._store.save_scope_map(record):
            raise ApiError(409, "AlreadyInUse", f"a scope map named {name} exists already")
        self._access.changed()
        return self._scope_map_json(record)

    async def update_scope_map(
        self, caller: Principal, registry: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        found = await self.registry(caller, registry, roles.MANAGE_WRITE)
        current = await self._scope_map(found.id, name)
        if current.system:
            raise ApiError(409, "Conflict", "system scope maps cannot be changed")
        add = _actions(body.get("addActions") or [], allow_empty=True)
        remove = set(_actions(body.get("removeActions") or [], allow_empty=True))
        actions = tuple(a for a in dict.fromkeys(current.actions + add) if a not in remove)
        if not actions:
            raise bad_request("a scope map needs at least one action")
        description = _description(body) if "description" in body else current.description
        record = ScopeMapRecord(
            current.id, found.id, name, description, actions, False, current.created_at
        )
        await self._store.save_scope_map(record)
        self._access.changed()
        return self._scope_map_json(record)

    async def delete_scope_map(self, caller: Principal, registry: str, name: str) -> None:
        found = await self.registry(caller, registry, roles.MANAGE_WRITE)
        current = await self._scope_map(found.id, name)
        if current.system:
            raise ApiError(409, "Conflict", "system scope maps cannot be deleted")
        user = await self._store.delete_scope_map(current.id)
        if user is not None:
            raise ApiError(409, "Conflict", f"scope map {name} is used by token {user}")
        self._access.changed()

    # Tokens ----------------------------------------------------------------------

    async def _token_json(
        self, token: TokenRecord, new_passwords: dict[str, str] | None = None
    ) -> dict[str, Any]:
        stored = await self._store.token_passwords(token.id)
        passwords = []
        for p in stored:
            entry: dict[str, Any] = {
                "name": p.name,
                "creationTime": iso_from_ms(p.created_at),
                "expiry": iso_or_none(p.expires_at),
            }
            if new_passwords and p.name in new_passwords:
                entry["value"] = new_passwords[p.name]
            passwords.append(entry)
        return {
            "name": token.name,
            "scopeMapName": token.scope_map_name,
            "status": token.status,
            "creationDate": iso_from_ms(token.created_at),
            "credentials": {"username": token.name, "passwords": passwords},
        }

    async def list_tokens(self, caller: Principal, registry: str) -> list[dict[str, Any]]:
        found = await self.registry(caller, registry, roles.MANAGE_READ)
        return [await self._token_json(t) for t in await self._store.tokens(found.id)]

    async def _token(self, registry_id: int, name: str) -> TokenRecord:
        found = await self._store.token(registry_id, name)
        if found is None:
            raise not_found("Token", name)
        return found

    async def show_token(self, caller: Principal, registry: str, name: str) -> dict[str, Any]:
        found = await self.registry(caller, registry, roles.MANAGE_READ)
        return await self._token_json(await self._token(found.id, name))

    async def create_token(
        self, caller: Principal, registry: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        found = await self.registry(caller, registry, roles.MANAGE_WRITE)
        name = _object_name(body, "token")
        status = _status(body.get("status", "enabled"))
        days = _expiration_days(body.get("expirationInDays"))
        if await self._store.token(found.id, name) is not None:
            raise ApiError(409, "AlreadyInUse", f"a token named {name} exists already")
        if body.get("scopeMap"):
            scope_map = await self._scope_map(found.id, _string(body, "scopeMap"))
        elif body.get("actions"):
            # ACR's `--repository` form: a scope map made for this token.
            scope_map = ScopeMapRecord(
                str(uuid.uuid4()),
                found.id,
                f"{name}-scope-map",
                f"Scope map for the token {name}",
                _actions(body["actions"]),
                False,
                now_ms(),
            )
            if not await self._store.save_scope_map(scope_map):
                raise ApiError(409, "AlreadyInUse", f"scope map {scope_map.name} exists already")
        else:
            raise bad_request("give a scopeMap, or actions to build one from")
        token = TokenRecord(
            str(uuid.uuid4()), found.id, name, scope_map.id, scope_map.name, status, 1, now_ms()
        )
        if not await self._store.create_token(token):
            raise ApiError(409, "AlreadyInUse", f"a token named {name} exists already")
        new: dict[str, str] = {}
        if body.get("generatePasswords", True):
            new = await self._set_token_passwords(token, None, days)
        self._access.changed()
        return await self._token_json(token, new)

    async def update_token(
        self, caller: Principal, registry: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        found = await self.registry(caller, registry, roles.MANAGE_WRITE)
        token = await self._token(found.id, name)
        status = _status(body["status"]) if "status" in body else None
        scope_map_id = None
        if body.get("scopeMap"):
            scope_map_id = (await self._scope_map(found.id, _string(body, "scopeMap"))).id
        await self._store.update_token(token.id, status, scope_map_id)
        self._access.changed()
        return await self._token_json(await self._token(found.id, name))

    async def delete_token(self, caller: Principal, registry: str, name: str) -> None:
        found = await self.registry(caller, registry, roles.MANAGE_WRITE)
        await self._store.delete_token((await self._token(found.id, name)).id)
        self._access.changed()

    async def generate_token_credentials(
        self, caller: Principal, registry: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        found = await self.registry(caller, registry, roles.MANAGE_WRITE)
        token = await self._token(found.id, name)
        which = body.get("name")
        if which is not None and which not in TOKEN_PASSWORD_NAMES:
            raise bad_request("name must be password1 or password2 (or absent for both)")
        new = await self._set_token_passwords(
            token, which, _expiration_days(body.get("expirationInDays"))
        )
        self._access.changed()
        described = await self._token_json(token, new)
        credentials = described["credentials"]
        credentials["passwords"] = [p for p in credentials["passwords"] if p["name"] in new]
        return dict(credentials)

    async def _set_token_passwords(
        self, token: TokenRecord, which: str | None, days: int | None
    ) -> dict[str, str]:
        stamp = now_ms()
        expires = None if days is None else stamp + days * DAY_MS
        names = TOKEN_PASSWORD_NAMES if which is None else (which,)
        new = {n: generate_password() for n in names}
        hashes = await asyncio.gather(*(asyncio.to_thread(hash_secret, v) for v in new.values()))
        await self._store.set_token_passwords(
            token.id,
            [TokenPasswordRecord(n, h, expires, stamp) for n, h in zip(new, hashes, strict=True)],
        )
        return new

    # Keys ------------------------------------------------------------------------

    async def rotate_keys(self, caller: Principal) -> dict[str, Any]:
        """A new signing key signs from now on; keys older than the longest token
        lifetime are retired."""
        await self.require(caller, roles.MANAGE_ROLES, None)
        key = new_key(self._access.box, now_ms())
        retire = now_ms() - MANAGEMENT_REFRESH_SECONDS * 1000
        await asyncio.to_thread(self._store.add_signing_key_sync, key, retire)
        self._access.changed()
        return {"kid": key.kid}


def purge_request(body: dict[str, Any]) -> PurgeRequest:
    """A purge's JSON (`filters`, `ago`, `untagged`, `untaggedOnly`, `keep`, `dryRun`,
    `includeLocked`, `concurrency`), checked; ApiError says what is wrong."""
    filters = body.get("filters")
    if (
        not isinstance(filters, list)
        or not 1 <= len(filters) <= 50
        or not all(isinstance(f, str) for f in filters)
    ):
        raise bad_request("filters must be a list of 1 to 50 'repository:tag' expressions")
    untagged = _flag(body, "untagged")
    untagged_only = _flag(body, "untaggedOnly")
    if untagged and untagged_only:
        raise bad_request("give untagged or untaggedOnly, not both")
    return PurgeRequest(
        filters=[parse_filter(f) for f in filters],
        ago_ms=parse_ago(_string(body, "ago")),
        untagged=untagged,
        untagged_only=untagged_only,
        keep=_int(body, "keep", 0, 0, 100_000),
        dry_run=_flag(body, "dryRun"),
        include_locked=_flag(body, "includeLocked"),
        concurrency=_int(body, "concurrency", 8, 1, 64),
    )


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise bad_request(f"{key} is required and must be a non-empty string")
    return value


def _quota_bytes(value: Any) -> int | None:
    """A storage quota override: bytes (0 to 1 PiB), or null for the SKU's own."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1024**5:
        raise bad_request("storageQuotaBytes must be a number of bytes from 0 to 1 PiB, or null")
    return value


def _int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(f"{key} must be a whole number from {low} to {high}")
    return value


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be true or false")
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    """An optional true/false field, false when absent."""
    return _bool(body, key) if key in body else False


def _sku(value: Any) -> str:
    for sku in SKUS:
        if isinstance(value, str) and value.lower() == sku.lower():
            return sku
    raise bad_request(f"sku must be one of {', '.join(SKUS)}")


def _status(value: Any) -> str:
    if value not in ("enabled", "disabled"):
        raise bad_request("status must be enabled or disabled")
    return str(value)


def _object_name(body: dict[str, Any], kind: str) -> str:
    name = _string(body, "name")
    if not _OBJECT_NAME.match(name):
        raise bad_request(f"{kind} name {name[:60]!r} is invalid: use 5 to 50 letters, digits, '-'")
    return name


def _description(body: dict[str, Any]) -> str:
    value = body.get("description", "")
    if not isinstance(value, str) or len(value) > 256:
        raise bad_request("description must be a string of at most 256 characters")
    return value


def _actions(value: Any, allow_empty: bool = False) -> tuple[str, ...]:
    """Validate `repositories/<repo or pattern>/<action>` entries."""
    if not isinstance(value, list) or (not value and not allow_empty) or len(value) > 500:
        raise bad_request("actions must be a list of repositories/<repository>/<action> entries")
    out = []
    for entry in value:
        if not isinstance(entry, str) or not entry.startswith("repositories/"):
            raise bad_request(f"invalid action {str(entry)[:100]!r}")
        rest = entry[len("repositories/") :]
        pattern, _, action = rest.rpartition("/")
        pattern, _, category = pattern.rpartition("/")
        action = f"{category}/{action}"
        if action not in roles.TOKEN_ACTIONS:
            raise bad_request(
                f"invalid action {action!r} in {entry[:100]!r}: use one of "
                + ", ".join(roles.TOKEN_ACTIONS)
            )
        if pattern != "*":
            try:
                validate_name(pattern[:-2] if pattern.endswith("/*") else pattern)
            except NameInvalid as exc:
                raise bad_request(f"invalid repository in {entry[:100]!r}: {exc.message}") from None
        out.append(entry)
    return tuple(dict.fromkeys(out))


def _expiration_days(value: Any) -> int | None:
    if value is not None and (
        not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 3650
    ):
        raise bad_request("expirationInDays must be a whole number from 1 to 3650")
    return value


def _address_range(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise bad_request(f"{value[:60]!r} is not an IP address or CIDR range") from None
