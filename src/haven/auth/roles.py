"""ACR's built-in roles and the actions each grants.

Data-plane actions are ACR's repository-token actions; `catalog` is listing the
registry's repositories; `deleted/read` and `deleted/restore` are listing and restoring
soft-deleted manifests and tags (docs/storage.md). Management actions are `manage/read`,
`manage/write` and `manage/roles` (assigning roles, managing identities).
"""

from __future__ import annotations

READ = "content/read"
WRITE = "content/write"
DELETE = "content/delete"
META_READ = "metadata/read"
META_WRITE = "metadata/write"
CATALOG = "catalog"
SIGN = "trust/write"
QUARANTINE_READ = "quarantine/read"
QUARANTINE_WRITE = "quarantine/write"
DELETED_READ = "deleted/read"
DELETED_RESTORE = "deleted/restore"
MANAGE_READ = "manage/read"
MANAGE_WRITE = "manage/write"
MANAGE_ROLES = "manage/roles"

TOKEN_ACTIONS = (READ, WRITE, DELETE, META_READ, META_WRITE)
DATA_ACTIONS = frozenset(
    {
        READ,
        WRITE,
        DELETE,
        META_READ,
        META_WRITE,
        CATALOG,
        SIGN,
        QUARANTINE_READ,
        QUARANTINE_WRITE,
        DELETED_READ,
        DELETED_RESTORE,
    }
)

ROLES: dict[str, frozenset[str]] = {
    "Owner": DATA_ACTIONS | {MANAGE_READ, MANAGE_WRITE, MANAGE_ROLES},
    "Contributor": DATA_ACTIONS | {MANAGE_READ, MANAGE_WRITE},
    "Reader": frozenset({READ, META_READ, CATALOG, DELETED_READ, MANAGE_READ}),
    "AcrPull": frozenset({READ, META_READ, CATALOG}),
    "AcrPush": frozenset({READ, META_READ, CATALOG, WRITE, META_WRITE}),
    "AcrDelete": frozenset({DELETE}),
    "AcrImageSigner": frozenset({SIGN}),
    "AcrQuarantineReader": frozenset({READ, META_READ, QUARANTINE_READ}),
    "AcrQuarantineWriter": frozenset({META_READ, QUARANTINE_READ, QUARANTINE_WRITE}),
}

# The admin user may do everything on its registry's data plane, nothing else.
ADMIN_ACTIONS = DATA_ACTIONS

# Docker token scopes (`repository:NAME:pull,push`) in Haven's actions.
DOCKER_SCOPE_ACTIONS: dict[str, frozenset[str]] = {
    "pull": frozenset({READ, META_READ}),
    "push": frozenset({WRITE, META_WRITE}),
    "delete": frozenset({DELETE}),
    "metadata_read": frozenset({META_READ}),
    "metadata_write": frozenset({META_WRITE}),
    "deleted_read": frozenset({DELETED_READ}),
    "deleted_restore": frozenset({DELETED_RESTORE}),
    "*": frozenset(TOKEN_ACTIONS),
}


def role_named(name: str) -> str | None:
    """The canonical spelling of a role name, matched case-insensitively."""
    for role in ROLES:
        if role.lower() == name.lower():
            return role
    return None


# What a principal must hold for the token service to grant each docker scope action:
# ACR's content/read is enough for `pull` and content/write for `push`. The grant never
# widens anything: every request is still checked against what the caller holds.
_DOCKER_SCOPE_NEEDS: dict[str, frozenset[str]] = {
    "pull": frozenset({READ}),
    "push": frozenset({WRITE}),
    "delete": frozenset({DELETE}),
    "metadata_read": frozenset({META_READ}),
    "metadata_write": frozenset({META_WRITE}),
    "deleted_read": frozenset({DELETED_READ}),
    "deleted_restore": frozenset({DELETED_RESTORE}),
    "*": frozenset(TOKEN_ACTIONS),
}


def docker_actions(granted: frozenset[str], requested: list[str]) -> list[str]:
    """The requested docker scope actions that `granted` covers."""
    return [a for a in requested if a in _DOCKER_SCOPE_NEEDS and _DOCKER_SCOPE_NEEDS[a] <= granted]


def from_docker_actions(actions: list[str]) -> frozenset[str]:
    result: set[str] = set()
    for action in actions:
        result |= DOCKER_SCOPE_ACTIONS.get(action, frozenset())
    return frozenset(result)
