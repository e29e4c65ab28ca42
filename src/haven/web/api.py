"""The management API under `/api/`: JSON in and out, for the `haven` CLI.

Callers authenticate with a management access token (`POST /oauth2/token` with
`service=management`) or HTTP Basic identity credentials. Errors are
`{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.requests import Request
from starlette.responses import Response

from haven.auth import roles
from haven.errors import ApiError, Unauthorized
from haven.services.access import MANAGEMENT, AccessService, Principal
from haven.services.management import ManagementService
from haven.services.tasks import TaskService
from haven.store.repositories import RepositoryStore
from haven.web.auth import FailedLogins, parse_authorization

MAX_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class ApiCall:
    m: ManagementService
    tasks: TaskService
    repositories: RepositoryStore
    caller: Principal
    params: dict[str, str]
    body: Any
    request: Request


Handler = Callable[[ApiCall], Awaitable[Any]]


def _json(value: Any, status: int = 200) -> Response:
    if status == 204:
        return Response(status_code=204)
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def error(status: int, code: str, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="haven"'} if status == 401 else None
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


R = "(?P<registry>[^/]+)"
ROUTES: list[tuple[str, re.Pattern[str], Handler, int]] = []


def route(method: str, pattern: str, status: int = 200) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append((method, re.compile(f"^/api{pattern}$"), handler, status))
        return handler

    return register


@route("GET", "/me")
async def me(call: ApiCall) -> Any:
    """Who the caller is."""
    return await call.m.me(call.caller)


@route("GET", "/registries")
async def registries(call: ApiCall) -> Any:
    """List the registries the caller may read."""
    return await call.m.list_registries(call.caller)


@route("POST", "/registries", 201)
async def create_registry(call: ApiCall) -> Any:
    """Create a registry (name 5-50 letters and digits, SKU Basic, Standard or Premium)."""
    return await call.m.create_registry(call.caller, call.body)


@route("GET", f"/registries/{R}")
async def show_registry(call: ApiCall) -> Any:
    """Show a registry."""
    return call.m.describe(
        await call.m.registry(call.caller, call.params["registry"], roles.MANAGE_READ)
    )


@route("GET", f"/registries/{R}/loginServer")
async def login_server(call: ApiCall) -> Any:
    """A registry's login server, for any identity with a role on it."""
    return await call.m.login_server(call.caller, call.params["registry"])


@route("PATCH", f"/registries/{R}")
async def update_registry(call: ApiCall) -> Any:
    """Change a registry's SKU, admin user, anonymous pull, network default action or
    (deployment owners) storage quota override."""
    return await call.m.update_registry(call.caller, call.params["registry"], call.body)


@route("DELETE", f"/registries/{R}", 204)
async def delete_registry(call: ApiCall) -> Any:
    """Delete a registry and everything in it."""
    await call.m.delete_registry(call.caller, call.params["registry"])


@route("GET", f"/registries/{R}/usages")
async def usages(call: ApiCall) -> Any:
    """What a registry uses against its SKU's limits (ACR's listUsages)."""
    return await call.m.usages(call.caller, call.params["registry"], call.repositories)


@route("GET", f"/registries/{R}/usages/check")
async def check_usage(call: ApiCall) -> Any:
    """Recount the registry's storage usage from its manifests and report the drift."""
    return await call.m.check_usage(call.caller, call.params["registry"], call.repositories)


@route("GET", f"/registries/{R}/retention")
async def retention(call: ApiCall) -> Any:
    """The retention policy for untagged manifests: `{type, status, days, lastUpdatedTime}`."""
    return await call.m.retention(call.caller, call.params["registry"], call.repositories)


@route("PATCH", f"/registries/{R}/retention")
async def update_retention(call: ApiCall) -> Any:
    """Enable or disable the retention policy: `{"status": "enabled", "days": 0..365}`;
    refused while soft delete is enabled."""
    return await call.m.update_retention(
        call.caller, call.params["registry"], call.body, call.repositories
    )


@route("GET", f"/registries/{R}/softDelete")
async def soft_delete(call: ApiCall) -> Any:
    """The soft-delete policy: `{status, retentionDays, lastUpdatedTime}`."""
    return await call.m.soft_delete(call.caller, call.params["registry"], call.repositories)


@route("PATCH", f"/registries/{R}/softDelete")
async def update_soft_delete(call: ApiCall) -> Any:
    """Enable or disable soft delete, or change its days: `{"status"?: "enabled",
    "retentionDays"?: 1..90}`; refused while the retention policy is enabled."""
    return await call.m.update_soft_delete(
        call.caller, call.params["registry"], call.body, call.repositories
    )


@route("POST", f"/registries/{R}/purge")
async def purge(call: ApiCall) -> Any:
    """Delete tags and untagged manifests by filter and age, as `acr purge`:
    `{"filters": ["repo:tag"], "ago": "2d3h6m", "untagged"?, "untaggedOnly"?, "keep"?,
    "dryRun"?, "includeLocked"?, "concurrency"?}`."""
    return await call.m.purge(call.caller, call.params["registry"], call.body)


@route("POST", "/gc")
async def collect_garbage(call: ApiCall) -> Any:
    """Run garbage collection now: `{"registry"?, "dryRun"?, "full"?}` (deployment owners)."""
    return await call.m.collect_garbage(call.caller, call.body)


@route("GET", f"/registries/{R}/credentials")
async def credentials(call: ApiCall) -> Any:
    """Show the admin user's name and two passwords."""
    return await call.m.credentials(call.caller, call.params["registry"])


@route("POST", f"/registries/{R}/credentials/renew")
async def renew(call: ApiCall) -> Any:
    """Generate a new value for one admin password."""
    return await call.m.renew_credential(call.caller, call.params["registry"], call.body)


@route("GET", f"/registries/{R}/networkRules")
async def network_rules(call: ApiCall) -> Any:
    """Show a registry's network rule set."""
    return await call.m.network_rules(call.caller, call.params["registry"])


@route("POST", f"/registries/{R}/networkRules")
async def add_rule(call: ApiCall) -> Any:
    """Allow an IP address or CIDR range (Premium)."""
    return await call.m.add_network_rule(call.caller, call.params["registry"], call.body)


@route("DELETE", f"/registries/{R}/networkRules", 204)
async def remove_rule(call: ApiCall) -> Any:
    """Remove an allowed address or range (query: ipAddressOrRange)."""
    value = call.request.query_params.get("ipAddressOrRange")
    if not value:
        raise ApiError(400, "InvalidArgument", "ipAddressOrRange is required")
    await call.m.remove_network_rule(call.caller, call.params["registry"], value)


@route("GET", "/identities")
async def identities(call: ApiCall) -> Any:
    """List identities (users and service principals)."""
    return await call.m.list_identities(call.caller)


@route("POST", "/identities", 201)
async def create_identity(call: ApiCall) -> Any:
    """Create a user or service principal; the password is shown once."""
    return await call.m.create_identity(call.caller, call.body)


@route("GET", "/identities/(?P<identity>[^/]+)")
async def show_identity(call: ApiCall) -> Any:
    """Show an identity by id or name."""
    return await call.m.show_identity(call.caller, call.params["identity"])


@route("DELETE", "/identities/(?P<identity>[^/]+)", 204)
async def delete_identity(call: ApiCall) -> Any:
    """Delete an identity; its tokens stop working at once."""
    await call.m.delete_identity(call.caller, call.params["identity"])


@route("POST", "/identities/(?P<identity>[^/]+)/credentials")
async def reset_credential(call: ApiCall) -> Any:
    """Reset (or, with append, add) an identity's password."""
    return await call.m.reset_credential(call.caller, call.params["identity"], call.body)


@route("GET", "/roleAssignments")
async def assignments(call: ApiCall) -> Any:
    """List role assignments (query: assignee, scope, role)."""
    filters = {k: call.request.query_params.get(k, "") for k in ("assignee", "scope", "role")}
    return await call.m.list_assignments(call.caller, filters)


@route("POST", "/roleAssignments", 201)
async def create_assignment(call: ApiCall) -> Any:
    """Assign a role at the deployment, a registry or a repository."""
    return await call.m.create_assignment(call.caller, call.body)


@route("DELETE", "/roleAssignments/(?P<id>[^/]+)", 204)
async def delete_assignment(call: ApiCall) -> Any:
    """Remove a role assignment; it stops applying at once."""
    await call.m.delete_assignment(call.caller, call.params["id"])


@route("GET", f"/registries/{R}/scopeMaps")
async def scope_maps(call: ApiCall) -> Any:
    """List a registry's scope maps."""
    return await call.m.list_scope_maps(call.caller, call.params["registry"])


@route("POST", f"/registries/{R}/scopeMaps", 201)
async def create_scope_map(call: ApiCall) -> Any:
    """Create a scope map of repository actions."""
    return await call.m.create_scope_map(call.caller, call.params["registry"], call.body)


@route("GET", f"/registries/{R}/scopeMaps/(?P<name>[^/]+)")
async def show_scope_map(call: ApiCall) -> Any:
    """Show a scope map."""
    return await call.m.show_scope_map(call.caller, call.params["registry"], call.params["name"])


@route("PATCH", f"/registries/{R}/scopeMaps/(?P<name>[^/]+)")
async def update_scope_map(call: ApiCall) -> Any:
    """Add or remove a scope map's actions."""
    return await call.m.update_scope_map(
        call.caller, call.params["registry"], call.params["name"], call.body
    )


@route("DELETE", f"/registries/{R}/scopeMaps/(?P<name>[^/]+)", 204)
async def delete_scope_map(call: ApiCall) -> Any:
    """Delete a scope map no token uses."""
    await call.m.delete_scope_map(call.caller, call.params["registry"], call.params["name"])


@route("GET", f"/registries/{R}/tokens")
async def tokens(call: ApiCall) -> Any:
    """List a registry's repository-scoped tokens."""
    return await call.m.list_tokens(call.caller, call.params["registry"])


@route("POST", f"/registries/{R}/tokens", 201)
async def create_token(call: ApiCall) -> Any:
    """Create a token from a scope map or actions; passwords are shown once."""
    return await call.m.create_token(call.caller, call.params["registry"], call.body)


@route("GET", f"/registries/{R}/tokens/(?P<name>[^/]+)")
async def show_token(call: ApiCall) -> Any:
    """Show a token."""
    return await call.m.show_token(call.caller, call.params["registry"], call.params["name"])


@route("PATCH", f"/registries/{R}/tokens/(?P<name>[^/]+)")
async def update_token(call: ApiCall) -> Any:
    """Enable or disable a token, or change its scope map."""
    return await call.m.update_token(
        call.caller, call.params["registry"], call.params["name"], call.body
    )


@route("DELETE", f"/registries/{R}/tokens/(?P<name>[^/]+)", 204)
async def delete_token(call: ApiCall) -> Any:
    """Delete a token; it stops working at once."""
    await call.m.delete_token(call.caller, call.params["registry"], call.params["name"])


@route("POST", f"/registries/{R}/tokens/(?P<name>[^/]+)/credentials")
async def token_credentials(call: ApiCall) -> Any:
    """Generate password1, password2 or both for a token."""
    return await call.m.generate_token_credentials(
        call.caller, call.params["registry"], call.params["name"], call.body
    )


@route("POST", "/keys/rotate")
async def rotate(call: ApiCall) -> Any:
    """Start signing tokens with a new key."""
    return await call.m.rotate_keys(call.caller)


T = "(?P<task>[^/]+)"
RUN = "(?P<run>[^/]+)"


def _query(call: ApiCall) -> dict[str, str]:
    return dict(call.request.query_params)


@route("GET", f"/registries/{R}/tasks")
async def tasks(call: ApiCall) -> Any:
    """List a registry's tasks."""
    return await call.tasks.list_tasks(call.caller, call.params["registry"])


@route("POST", f"/registries/{R}/tasks", 201)
async def create_task(call: ApiCall) -> Any:
    """Create a task: `{"name", "cmd" | "definition" (task YAML), "timeout"?, "status"?,
    "timers"?: [{"name", "schedule" (cron, UTC), "status"?}]}`."""
    return await call.tasks.create_task(call.caller, call.params["registry"], call.body)


@route("GET", f"/registries/{R}/tasks/{T}")
async def show_task(call: ApiCall) -> Any:
    """Show a task."""
    return await call.tasks.show_task(call.caller, call.params["registry"], call.params["task"])


@route("PATCH", f"/registries/{R}/tasks/{T}")
async def update_task(call: ApiCall) -> Any:
    """Change a task's cmd or definition, timeout, status or timers."""
    return await call.tasks.update_task(
        call.caller, call.params["registry"], call.params["task"], call.body
    )


@route("DELETE", f"/registries/{R}/tasks/{T}", 204)
async def delete_task(call: ApiCall) -> Any:
    """Delete a task (its runs stay listed)."""
    await call.tasks.delete_task(call.caller, call.params["registry"], call.params["task"])


@route("POST", f"/registries/{R}/tasks/{T}/runs", 201)
async def run_task(call: ApiCall) -> Any:
    """Queue a run of a task: `{"values"?: {NAME: VALUE}}` for `{{.Values.NAME}}`."""
    return await call.tasks.run_task(
        call.caller, call.params["registry"], call.params["task"], call.body
    )


@route("POST", f"/registries/{R}/runs", 201)
async def quick_run(call: ApiCall) -> Any:
    """Queue a run of no saved task (`haven run`): `{"cmd" | "definition", "values"?,
    "timeout"?}`."""
    return await call.tasks.quick_run(call.caller, call.params["registry"], call.body)


@route("GET", f"/registries/{R}/runs")
async def runs(call: ApiCall) -> Any:
    """List runs, newest first: `?status=Running,Queued&task=NAME&top=15`."""
    return await call.tasks.list_runs(call.caller, call.params["registry"], _query(call))


@route("GET", f"/registries/{R}/runs/{RUN}")
async def show_run(call: ApiCall) -> Any:
    """Show a run."""
    return await call.tasks.show_run(call.caller, call.params["registry"], call.params["run"])


@route("POST", f"/registries/{R}/runs/{RUN}/cancel")
async def cancel_run(call: ApiCall) -> Any:
    """Cancel a queued or running run."""
    return await call.tasks.cancel_run(call.caller, call.params["registry"], call.params["run"])


@route("GET", f"/registries/{R}/runs/{RUN}/logs")
async def run_logs(call: ApiCall) -> Any:
    """A run's log from chunk `?after=N`: `{"text", "next", "status", "finished"}`."""
    return await call.tasks.logs(
        call.caller, call.params["registry"], call.params["run"], _query(call)
    )


async def _body(request: Request) -> Any:
    if request.method in ("GET", "DELETE", "HEAD"):
        return None
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ApiError(
                413, "RequestTooLarge", f"request bodies are limited to {MAX_BODY} bytes"
            )
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "InvalidJson", f"the request body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "InvalidJson", "the request body must be a JSON object")
    return value


async def _caller(access: AccessService, failures: FailedLogins, request: Request) -> Principal:
    credentials = parse_authorization(request.headers.get("authorization"))
    if credentials is None:
        raise Unauthorized("sign in first: haven account login --server URL -u USER -p PASSWORD")
    if credentials.scheme == "bearer":
        return await access.from_token(credentials.secret, MANAGEMENT, "access")
    address = request.client.host if request.client else None
    await failures.delay(address)
    try:
        return await access.login(None, credentials.username, credentials.secret)
    except Unauthorized:
        failures.record(address)
        raise


async def handle(
    management: ManagementService,
    tasks: TaskService,
    repositories: RepositoryStore,
    access: AccessService,
    failures: FailedLogins,
    request: Request,
) -> Response:
    path = request.url.path
    if path == "/api/openapi.json" and request.method == "GET":
        from haven.web.openapi import document

        return _json(document())
    matched_path = False
    for method, pattern, handler, status in ROUTES:
        found = pattern.match(path)
        if found is None:
            continue
        matched_path = True
        if method != request.method:
            continue
        try:
            caller = await _caller(access, failures, request)
            params = {k: unquote(v) for k, v in found.groupdict().items()}
            call = ApiCall(
                management, tasks, repositories, caller, params, await _body(request), request
            )
            result = await handler(call)
        except Unauthorized as exc:
            return error(401, "Unauthorized", exc.message)
        except ApiError as exc:
            return error(exc.status, exc.code, exc.message)
        return _json(result, status)
    if matched_path:
        return error(405, "MethodNotAllowed", f"{request.method} is not allowed on {path}")
    return error(404, "NotFound", f"no management API endpoint at {path[:200]}")
