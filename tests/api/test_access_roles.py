"""The role matrix: what each of ACR's built-in roles allows, at registry and repository scope.

Each test creates one identity with one role and runs every operation with it, so one
failure shows the whole row: the expected and the observed outcome per operation.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from .access_helpers import (
    assert_api_error,
    assert_denied,
    assign_role,
    caller,
    create_registry,
    get_token,
    granted,
    member,
    seed,
)
from .helpers import OWNER_PASSWORD, Manifest, make_image, push_image

APP = "matrix/app"  # the repository a repository-scoped role is assigned on
SOURCE = "matrix/src"  # another repository of the registry (a mount source)
OTHER = "matrix/other"  # a repository nobody pushed to
SECOND_URL = "http://secondreg.localhost:5000"

ALLOWED, DENIED = "allowed", "denied"
MOUNTED, UPLOAD = "mounted", "upload instead"

PULL_OPS = {"pull_manifest", "pull_blob", "list_tags"}
PUSH_OPS = {"push"}
DELETE_OPS = {"delete_tag", "delete_manifest"}
OPERATIONS = (
    "pull_manifest",
    "pull_blob",
    "list_tags",
    "catalog",
    "pull_other",
    "push",
    "push_other",
    "mount",
    "delete_tag",
    "delete_manifest",
    "manage_read",
    "manage_write",
    "assign_role",
)


@dataclass
class World:
    app_image: Manifest
    doomed: Manifest
    source: Manifest


async def _world(owner: httpx.AsyncClient) -> World:
    app_image = await seed(owner, APP, "app", "v1")
    await seed(owner, APP, "tagged", "gone")
    doomed = await seed(owner, APP, "doomed")
    source = await seed(owner, SOURCE, "src", "v1")
    return World(app_image, doomed, source)


def _outcome(resp: httpx.Response, ok: int) -> str:
    if resp.status_code == ok:
        return ALLOWED
    if resp.status_code == 403:
        if resp.request.url.path.startswith("/api/"):
            assert_api_error(resp, 403, "AuthorizationFailed")
        else:
            assert_denied(resp)
        return DENIED
    raise AssertionError(
        f"{resp.request.method} {resp.request.url.path}: {resp.status_code} {resp.text[:300]}"
    )


async def _run(c: httpx.AsyncClient, world: World, name: str) -> dict[str, str]:
    """Every operation, in an order where none disturbs a later one."""
    out: dict[str, str] = {}
    layer = world.app_image.layers[0].digest

    out["pull_manifest"] = _outcome(await c.get(f"/v2/{APP}/manifests/v1"), 200)
    out["pull_blob"] = _outcome(await c.get(f"/v2/{APP}/blobs/{layer}"), 200)
    out["list_tags"] = _outcome(await c.get(f"/v2/{APP}/tags/list"), 200)
    out["catalog"] = _outcome(await c.get("/v2/_catalog"), 200)
    out["pull_other"] = _outcome(await c.get(f"/v2/{SOURCE}/manifests/v1"), 200)

    start = await c.post(f"/v2/{APP}/blobs/uploads/")
    out["push"] = _outcome(start, 202)
    if out["push"] == ALLOWED:
        await push_image(c, APP, make_image(f"{name}/pushed"), "pushed")
        assert (await c.get(f"/v2/{APP}/manifests/pushed")).status_code in (200, 403)
    out["push_other"] = _outcome(await c.post(f"/v2/{OTHER}/blobs/uploads/"), 202)

    mount_digest = world.source.layers[0].digest
    mount = await c.post(f"/v2/{APP}/blobs/uploads/?mount={mount_digest}&from={SOURCE}")
    if mount.status_code == 201:
        out["mount"] = MOUNTED
    elif mount.status_code == 202:
        out["mount"] = UPLOAD
    else:
        assert _outcome(mount, 201) == DENIED
        out["mount"] = DENIED

    out["delete_tag"] = _outcome(await c.delete(f"/v2/{APP}/manifests/gone"), 202)
    out["delete_manifest"] = _outcome(
        await c.delete(f"/v2/{APP}/manifests/{world.doomed.digest}"), 202
    )

    out["manage_read"] = _outcome(await c.get("/api/registries/default"), 200)
    out["manage_write"] = _outcome(
        await c.patch("/api/registries/default", json={"anonymousPullEnabled": False}), 200
    )
    assign = await c.post(
        "/api/roleAssignments", json={"role": "AcrPull", "assignee": name, "scope": "default"}
    )
    out["assign_role"] = _outcome(assign, 201)
    return out


def _expected(allowed: set[str], mount: str) -> dict[str, str]:
    out = {op: ALLOWED if op in allowed else DENIED for op in OPERATIONS}
    out["mount"] = mount
    return out


EVERYTHING = set(OPERATIONS)
READ = PULL_OPS | {"catalog", "pull_other"}

REGISTRY_SCOPE: dict[str, dict[str, str]] = {
    "AcrPull": _expected(READ, DENIED),
    "AcrPush": _expected(READ | PUSH_OPS | {"push_other"}, MOUNTED),
    "AcrDelete": _expected(DELETE_OPS, DENIED),
    "Reader": _expected(READ | {"manage_read"}, DENIED),
    "Contributor": _expected(EVERYTHING - {"assign_role"}, MOUNTED),
    "Owner": _expected(EVERYTHING, MOUNTED),
    "AcrImageSigner": _expected(set(), DENIED),
}

# On `default/matrix/app` only: nothing on other repositories, no catalog, no management,
# and no mount from a repository the role does not cover (a plain upload starts instead).
REPOSITORY_SCOPE: dict[str, dict[str, str]] = {
    "AcrPull": _expected(PULL_OPS, DENIED),
    "AcrPush": _expected(PULL_OPS | PUSH_OPS, UPLOAD),
    "AcrDelete": _expected(DELETE_OPS, DENIED),
    "Reader": _expected(PULL_OPS, DENIED),
    "Contributor": _expected(PULL_OPS | PUSH_OPS | DELETE_OPS, UPLOAD),
    "Owner": _expected(PULL_OPS | PUSH_OPS | DELETE_OPS, UPLOAD),
    "AcrImageSigner": _expected(set(), DENIED),
}


@pytest.mark.parametrize("role", list(REGISTRY_SCOPE))
async def test_a_role_on_the_registry_allows_exactly_its_operations(
    app: object, client: httpx.AsyncClient, role: str
):
    world = await _world(client)
    identity = await member(client, "member", role, "default")
    async with caller(app, identity.auth) as c:
        observed = await _run(c, world, identity.name)
    assert observed == REGISTRY_SCOPE[role]


@pytest.mark.parametrize("role", list(REPOSITORY_SCOPE))
async def test_a_role_on_a_repository_allows_its_operations_there_only(
    app: object, client: httpx.AsyncClient, role: str
):
    world = await _world(client)
    identity = await member(client, "member", role, f"default/{APP}")
    async with caller(app, identity.auth) as c:
        observed = await _run(c, world, identity.name)
    assert observed == REPOSITORY_SCOPE[role]


TOKEN_ACTIONS: dict[str, set[str]] = {
    "AcrPull": {"pull"},
    "AcrPush": {"pull", "push"},
    "AcrDelete": {"delete"},
    "Reader": {"pull"},
    "Contributor": {"pull", "push", "delete"},
    "Owner": {"pull", "push", "delete"},
}


@pytest.mark.parametrize("role", list(TOKEN_ACTIONS))
async def test_a_repository_scoped_role_gets_tokens_for_its_repository_only(
    app: object, client: httpx.AsyncClient, role: str
):
    identity = await member(client, "member", role, f"default/{APP}")
    async with caller(app) as c:
        resp = await get_token(
            c,
            f"repository:{APP}:pull,push,delete",
            f"repository:{SOURCE}:pull,push,delete",
            "registry:catalog:*",
            auth=identity.auth,
        )
    assert resp.status_code == 200, resp.text
    assert granted(resp.json()["token"]) == {f"repository:{APP}": TOKEN_ACTIONS[role]}


@pytest.mark.parametrize("role", ["AcrPull", "AcrPush", "AcrDelete", "AcrImageSigner"])
async def test_a_data_plane_role_gives_no_management_rights(
    app: object, client: httpx.AsyncClient, role: str
):
    identity = await member(client, "member", role, "/")
    async with caller(app, identity.auth) as c:
        for method, path in [
            ("GET", "/api/registries/default"),
            ("GET", "/api/registries/default/tokens"),
            ("GET", "/api/registries/default/scopeMaps"),
            ("GET", "/api/identities"),
        ]:
            resp = await c.request(method, path)
            assert_api_error(resp, 403, "AuthorizationFailed")
        assert (await c.get("/api/registries")).json() == []
        created = await c.post("/api/registries", json={"name": "another"})
        assert_api_error(created, 403)


@pytest.mark.parametrize("role", ["AcrQuarantineReader", "AcrQuarantineWriter"])
async def test_quarantine_roles_give_no_push_delete_or_management(
    app: object, client: httpx.AsyncClient, role: str
):
    world = await _world(client)
    identity = await member(client, "member", role, "default")
    async with caller(app, identity.auth) as c:
        observed = await _run(c, world, identity.name)
    for op in ("push", "push_other", "delete_tag", "delete_manifest", "catalog"):
        assert observed[op] == DENIED, (op, observed)
    for op in ("manage_read", "manage_write", "assign_role", "mount"):
        assert observed[op] == DENIED, (op, observed)


async def test_a_repository_wildcard_scope_covers_the_repositories_below_it(
    app: object, client: httpx.AsyncClient
):
    for repo in ("team/a", "team/b/c", "teamx/a", "other/team/a"):
        await seed(client, repo, repo, "v1")
    identity = await member(client, "member", "AcrPull", "default/team/*")
    async with caller(app, identity.auth) as c:
        statuses = {
            repo: (await c.get(f"/v2/{repo}/manifests/v1")).status_code
            for repo in ("team/a", "team/b/c", "teamx/a", "other/team/a")
        }
    assert statuses == {"team/a": 200, "team/b/c": 200, "teamx/a": 403, "other/team/a": 403}


async def test_a_role_at_the_deployment_scope_covers_every_registry(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    await seed(client, "samples/hello", "default", "v1")
    async with caller(app, ("owner", OWNER_PASSWORD), base_url=SECOND_URL) as owner2:
        await seed(owner2, "samples/hello", "second", "v1")

    everywhere = await member(client, "everywhere", "AcrPull", "/")
    default_only = await member(client, "defaultonly", "AcrPull", "default")
    for identity, on_second in ((everywhere, 200), (default_only, 403)):
        async with caller(app, identity.auth) as c:
            assert (await c.get("/v2/samples/hello/manifests/v1")).status_code == 200
        async with caller(app, identity.auth, base_url=SECOND_URL) as c:
            resp = await c.get("/v2/samples/hello/manifests/v1")
            assert resp.status_code == on_second, (identity.name, resp.text)


async def test_a_reader_of_one_registry_cannot_read_another_registry(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    reader = await member(client, "reader", "Reader", "default")
    async with caller(app, reader.auth) as c:
        assert (await c.get("/api/registries/default")).status_code == 200
        assert_api_error(await c.get("/api/registries/secondreg"), 403)
        listed = await c.get("/api/registries")
    assert [r["name"] for r in listed.json()] == ["default"]


async def test_an_identity_without_any_role_may_sign_in_but_do_nothing(
    app: object, client: httpx.AsyncClient
):
    world = await _world(client)
    identity = await member(client, "nobody")
    async with caller(app, identity.auth) as c:
        assert (await c.get("/v2/")).status_code == 200
        observed = await _run(c, world, identity.name)
    assert observed == _expected(set(), DENIED)


async def test_roles_add_up(app: object, client: httpx.AsyncClient):
    world = await _world(client)
    identity = await member(client, "member", "AcrPull", "default")
    await assign_role(client, "AcrDelete", identity, "default")
    async with caller(app, identity.auth) as c:
        observed = await _run(c, world, identity.name)
    assert observed == _expected(READ | DELETE_OPS, DENIED)
