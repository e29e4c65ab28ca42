"""Helpers for the identity and access tests: callers, identities, roles and tokens.

Written from docs/access.md and the Docker token authentication protocol: a 401 carries
a `Bearer` challenge naming the token realm, the service and the scope to ask for; the
token endpoint answers a JWT whose `access` claim lists what was granted.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from .helpers import BASE_URL, Manifest, app_client, assert_oci_error, make_image, push_image

HOST = "localhost:5000"
REALM = f"{BASE_URL}/oauth2/token"
REFRESH_USERNAME = "00000000-0000-0000-0000-000000000000"
# httpx's ASGITransport presents every request as coming from this address.
LOOPBACK = "127.0.0.1"

Auth = tuple[str, str] | None


# --- callers ------------------------------------------------------------------------------


@asynccontextmanager
async def caller(
    app: Any,
    auth: Auth = None,
    *,
    bearer: str | None = None,
    address: str = LOOPBACK,
    base_url: str = BASE_URL,
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the in-process app: HTTP Basic with `auth`, a bearer token, or nothing.

    `address` is the client address the app sees (network rules, failed-login slowdown).
    """
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    async with app_client(
        app, peer=(address, 40000), base_url=base_url, auth=auth, headers=headers
    ) as client:
        yield client


def basic(username: str, password: str) -> str:
    """An HTTP Basic Authorization header value."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- identities and roles -----------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    id: str
    name: str
    password: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.name, self.password)


async def create_identity(
    owner: httpx.AsyncClient, name: str, password: str | None = None, **extra: Any
) -> Identity:
    body: dict[str, Any] = {"name": name, **extra}
    if password is not None:
        body["password"] = password
    resp = await owner.post("/api/identities", json=body)
    assert resp.status_code == 201, f"create identity {name}: {resp.status_code} {resp.text}"
    created = resp.json()
    return Identity(created["id"], created["name"], created["password"])


async def assign_role(
    owner: httpx.AsyncClient, role: str, assignee: Identity | str, scope: str = "default"
) -> str:
    """Assign `role` at `scope` (`/`, a registry, or `registry/repository`); the id."""
    name = assignee.name if isinstance(assignee, Identity) else assignee
    resp = await owner.post(
        "/api/roleAssignments", json={"role": role, "assignee": name, "scope": scope}
    )
    assert resp.status_code == 201, f"assign {role} to {name}: {resp.status_code} {resp.text}"
    return str(resp.json()["id"])


async def member(
    owner: httpx.AsyncClient, name: str, role: str | None = None, scope: str = "default"
) -> Identity:
    """A new identity, with `role` at `scope` when given."""
    identity = await create_identity(owner, name)
    if role is not None:
        await assign_role(owner, role, identity, scope)
    return identity


# --- registries ---------------------------------------------------------------------------


async def patch_registry(
    owner: httpx.AsyncClient, body: Mapping[str, Any], registry: str = "default"
) -> dict[str, Any]:
    resp = await owner.patch(f"/api/registries/{registry}", json=dict(body))
    assert resp.status_code == 200, f"PATCH {registry} {body}: {resp.status_code} {resp.text}"
    return resp.json()  # type: ignore[no-any-return]


async def enable_admin(owner: httpx.AsyncClient, registry: str = "default") -> dict[str, str]:
    """Switch the admin user on; its passwords by name (`password`, `password2`)."""
    await patch_registry(owner, {"adminUserEnabled": True}, registry)
    resp = await owner.get(f"/api/registries/{registry}/credentials")
    assert resp.status_code == 200, resp.text
    return {p["name"]: p["value"] for p in resp.json()["passwords"]}


async def create_registry(owner: httpx.AsyncClient, name: str, **extra: Any) -> dict[str, Any]:
    resp = await owner.post("/api/registries", json={"name": name, **extra})
    assert resp.status_code == 201, f"create registry {name}: {resp.status_code} {resp.text}"
    return resp.json()  # type: ignore[no-any-return]


async def create_repo_token(
    owner: httpx.AsyncClient,
    name: str,
    *,
    actions: Iterable[str] | None = None,
    scope_map: str | None = None,
    registry: str = "default",
    **extra: Any,
) -> dict[str, str]:
    """Create a repository token; its passwords by name (`password1`, `password2`)."""
    body: dict[str, Any] = {"name": name, **extra}
    if actions is not None:
        body["actions"] = list(actions)
    if scope_map is not None:
        body["scopeMap"] = scope_map
    resp = await owner.post(f"/api/registries/{registry}/tokens", json=body)
    assert resp.status_code == 201, f"create token {name}: {resp.status_code} {resp.text}"
    passwords = resp.json()["credentials"]["passwords"]
    return {p["name"]: p["value"] for p in passwords if "value" in p}


# --- tokens -------------------------------------------------------------------------------


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jwt_header(token: str) -> dict[str, Any]:
    return json.loads(_b64url(token.split(".")[0]))  # type: ignore[no-any-return]


def jwt_payload(token: str) -> dict[str, Any]:
    """A JWT's claims, read without verifying the signature."""
    return json.loads(_b64url(token.split(".")[1]))  # type: ignore[no-any-return]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def granted(token: str) -> dict[str, set[str]]:
    """The token's `access` claim as `type:name` → set of actions."""
    out: dict[str, set[str]] = {}
    for entry in jwt_payload(token).get("access") or []:
        out.setdefault(f"{entry['type']}:{entry['name']}", set()).update(entry["actions"])
    return out


async def get_token(
    client: httpx.AsyncClient,
    *scopes: str,
    service: str = HOST,
    offline: bool = False,
    auth: Auth = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """GET /oauth2/token for `scopes` (the client's own credentials unless `auth`)."""
    params: list[tuple[str, str]] = [("service", service)]
    params += [("scope", s) for s in scopes]
    if offline:
        params.append(("offline_token", "true"))
    kwargs: dict[str, Any] = {"params": params}
    if auth is not None:
        kwargs["auth"] = auth
    if headers is not None:
        kwargs["headers"] = dict(headers)
    return await client.get("/oauth2/token", **kwargs)


async def access_token(
    client: httpx.AsyncClient, *scopes: str, auth: Auth = None, service: str = HOST
) -> str:
    """A registry access token for `scopes`, asserting the token endpoint said 200."""
    resp = await get_token(client, *scopes, auth=auth, service=service)
    assert resp.status_code == 200, f"token {scopes}: {resp.status_code} {resp.text}"
    return str(resp.json()["token"])


async def post_token(
    client: httpx.AsyncClient, form: Mapping[str, str] | list[tuple[str, str]]
) -> httpx.Response:
    """POST /oauth2/token with a form body (a list of pairs allows repeated keys)."""
    pairs = list(form.items()) if isinstance(form, Mapping) else list(form)
    body = httpx.QueryParams(pairs)
    return await client.post(
        "/oauth2/token",
        content=str(body).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


async def management_token(client: httpx.AsyncClient, username: str, password: str) -> str:
    resp = await post_token(
        client,
        {
            "grant_type": "password",
            "service": "management",
            "username": username,
            "password": password,
        },
    )
    assert resp.status_code == 200, f"management token: {resp.status_code} {resp.text}"
    return str(resp.json()["access_token"])


# --- answers ------------------------------------------------------------------------------


def parse_challenge(value: str) -> dict[str, str]:
    """`Bearer realm="…",service="…",scope="…"` → its parameters (and `scheme`)."""
    scheme, _, rest = value.partition(" ")
    params = {"scheme": scheme}
    while rest:
        key, _, rest = rest.lstrip(", ").partition("=")
        assert rest.startswith('"'), f"unquoted challenge parameter in {value!r}"
        end = rest.index('"', 1)
        params[key.strip()] = rest[1:end]
        rest = rest[end + 1 :]
    return params


_ANY = object()


def assert_challenge(resp: httpx.Response, scope: Any = _ANY) -> dict[str, str]:
    """A 401 with the spec's UNAUTHORIZED body and a Bearer challenge for this registry.

    `scope` is the challenge's expected scope; None means none, and left out, any.
    """
    assert resp.status_code == 401, f"expected 401, got {resp.status_code}: {resp.text[:300]}"
    if resp.request.method != "HEAD":
        assert_oci_error(resp, 401, "UNAUTHORIZED")
    value = resp.headers.get("www-authenticate")
    assert value, "401 without WWW-Authenticate"
    params = parse_challenge(value)
    assert params["scheme"] == "Bearer", value
    assert params.get("realm") == REALM, value
    assert params.get("service") == HOST, value
    if scope is not _ANY:
        assert params.get("scope") == scope, f"challenge scope: {value}"
    return params


def assert_denied(resp: httpx.Response, action: str | None = None) -> dict[str, Any]:
    """A 403 DENIED (naming `action`, e.g. `content/write`, when given)."""
    entry = assert_oci_error(resp, 403, "DENIED")
    if action is not None:
        assert entry.get("detail", {}).get("action") == action, entry
    return entry


def assert_api_error(resp: httpx.Response, status: int, code: str | None = None) -> str:
    """A management API error `{"error": {"code", "message"}}`; returns the message."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    body = resp.json()
    assert isinstance(body.get("error"), dict), body
    assert isinstance(body["error"].get("code"), str), body
    assert isinstance(body["error"].get("message"), str), body
    if code is not None:
        assert body["error"]["code"] == code, body
    return str(body["error"]["message"])


# --- content ------------------------------------------------------------------------------


async def seed(owner: httpx.AsyncClient, repo: str, name: str, tag: str | None = None) -> Manifest:
    """Push a small image to `repo` (tagged `tag` when given) as the owner."""
    image = make_image(f"{repo}/{name}", layers=1, layer_size=64)
    await push_image(owner, repo, image, tag)
    return image


async def pull_works(client: httpx.AsyncClient, repo: str, image: Manifest, ref: str) -> bool:
    """Whether the client can read the manifest and its layer; asserts the content."""
    resp = await client.get(f"/v2/{repo}/manifests/{ref}")
    if resp.status_code != 200:
        return False
    assert resp.content == image.manifest
    blob = await client.get(f"/v2/{repo}/blobs/{image.layers[0].digest}")
    assert blob.status_code == 200, blob.text
    assert blob.content == image.layers[0].data
    return True


async def push_works(client: httpx.AsyncClient, repo: str, seed_name: str) -> bool:
    """Whether the client can push an image (blobs, then a tagged manifest)."""
    image = make_image(f"pushed/{repo}/{seed_name}", layers=1, layer_size=48)
    start = await client.post(f"/v2/{repo}/blobs/uploads/")
    if start.status_code != 202:
        return False
    await push_image(client, repo, image, seed_name)
    return True


async def api_problems(
    client: httpx.AsyncClient,
    requests: Iterable[tuple[str, str, Any]],
    status: int,
    code: str | None = None,
) -> list[str]:
    """Send each (method, path, JSON body); describe every answer that is not the
    management API error `status` (with `code`, when given). Empty when all are."""
    problems = []
    for method, path, body in requests:
        resp = await client.request(method, path, json=body)
        try:
            assert_api_error(resp, status, code)
        except AssertionError:
            problems.append(f"{method} {path} {body!r:.80}: {resp.status_code} {resp.text[:120]}")
    return problems
