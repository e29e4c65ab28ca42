"""The management API's input handling and refusals: bad bodies and names, duplicates,
missing resources, 401 and 403, escalation attempts, and concurrent creation."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from .access_helpers import (
    api_problems,
    assert_api_error,
    caller,
    create_identity,
    create_registry,
    enable_admin,
    member,
)
from .helpers import OWNER_PASSWORD

KIB = 1024

WRITE_ENDPOINTS = [
    ("POST", "/api/identities"),
    ("POST", "/api/registries"),
    ("PATCH", "/api/registries/default"),
    ("POST", "/api/roleAssignments"),
    ("POST", "/api/registries/default/tokens"),
    ("POST", "/api/registries/default/scopeMaps"),
    ("POST", "/api/registries/default/networkRules"),
]


# --- bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{", b"{'name': 'x'}", b"\xff\xfe", b"nul\x00", b'{"a":1}x'])
async def test_a_malformed_json_body_is_refused_with_400(client: httpx.AsyncClient, body: bytes):
    for method, path in WRITE_ENDPOINTS:
        resp = await client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert_api_error(resp, 400, "InvalidJson")


@pytest.mark.parametrize("body", [b"[]", b'["name"]', b'"name"', b"1", b"null", b"true"])
async def test_a_body_that_is_not_an_object_is_refused_with_400(
    client: httpx.AsyncClient, body: bytes
):
    for method, path in WRITE_ENDPOINTS:
        resp = await client.request(
            method, path, content=body, headers={"Content-Type": "application/json"}
        )
        assert_api_error(resp, 400, "InvalidJson")


async def test_a_body_over_256_kib_is_refused_with_413(client: httpx.AsyncClient):
    padding = "x" * (256 * KIB)
    resp = await client.post("/api/identities", json={"name": "big", "displayName": padding})
    assert_api_error(resp, 413, "RequestTooLarge")

    async def chunks():
        for _ in range(300):
            yield b" " * KIB

    streamed = await client.post(
        "/api/registries", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert_api_error(streamed, 413, "RequestTooLarge")


async def test_a_body_just_under_the_limit_is_read(client: httpx.AsyncClient):
    body = b'{"name": "secondreg"}' + b" " * (255 * KIB)
    resp = await client.post(
        "/api/registries", content=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 201, resp.text


async def test_a_registry_body_with_wrong_types_is_refused(client: httpx.AsyncClient):
    bodies = [
        {},
        {"name": None},
        {"name": 12345},
        {"name": ["secondreg"]},
        {"name": "secondreg", "sku": "Gold"},
        {"name": "secondreg", "sku": 1},
    ]
    assert await api_problems(client, [("POST", "/api/registries", b) for b in bodies], 400) == []


async def test_a_registry_update_with_wrong_types_is_refused(client: httpx.AsyncClient):
    bodies = [
        {"adminUserEnabled": "yes"},
        {"adminUserEnabled": 1},
        {"anonymousPullEnabled": None},
        {"sku": "Free"},
        {"adminUserEnabled": True, "sku": "Free"},
    ]
    requests = [("PATCH", "/api/registries/default", b) for b in bodies]
    assert await api_problems(client, requests, 400) == []
    described = (await client.get("/api/registries/default")).json()
    assert described["adminUserEnabled"] is False
    assert described["anonymousPullEnabled"] is False
    assert described["sku"]["name"] == "Standard"


# --- names --------------------------------------------------------------------------------


async def test_a_bad_registry_name_is_refused(client: httpx.AsyncClient):
    names = [
        "abcd",
        "a" * 51,
        "bad-name",
        "bad_name",
        "bad.name",
        "bad name",
        "ünïcode",
        "",
        "../etc",
    ]
    requests = [("POST", "/api/registries", {"name": n}) for n in names]
    assert await api_problems(client, requests, 400) == []
    assert [r["name"] for r in (await client.get("/api/registries")).json()] == ["default"]


async def test_a_registry_name_of_5_to_50_letters_and_digits_is_accepted(
    client: httpx.AsyncClient,
):
    for name in ("abcde", "a" * 50, "Mixed0Case9"):
        resp = await client.post("/api/registries", json={"name": name})
        assert resp.status_code == 201, resp.text
        assert resp.json()["name"] == name.lower()
        assert resp.json()["loginServer"] == f"{name.lower()}.localhost:5000"


async def test_a_duplicate_registry_name_is_refused_with_409(client: httpx.AsyncClient):
    await create_registry(client, "secondreg")
    for name in ("secondreg", "SECONDREG", "default"):
        assert_api_error(await client.post("/api/registries", json={"name": name}), 409)


async def test_a_bad_identity_is_refused(client: httpx.AsyncClient):
    bodies = [
        {"name": ""},
        {"name": "-leading-dash"},
        {"name": "has space"},
        {"name": "a" * 129},
        {"name": "00000000-0000-0000-0000-000000000000"},
        {"name": "slash/name"},
        {"name": "alice", "password": "short"},
        {"name": "alice", "password": "p" * 257},
        {"name": "alice", "password": 123456789012345},
        {"name": "alice", "kind": "robot"},
        {"name": "alice", "years": 0},
        {"name": "alice", "years": 11},
        {"name": "alice", "years": "1"},
    ]
    assert await api_problems(client, [("POST", "/api/identities", b) for b in bodies], 400) == []
    assert [i["name"] for i in (await client.get("/api/identities")).json()] == ["owner"]


async def test_an_identity_with_a_chosen_password_signs_in_with_it(
    app: object, client: httpx.AsyncClient
):
    alice = await create_identity(client, "Alice@Example.com", password="a-long-password-1")
    assert alice.name == "alice@example.com"
    async with caller(app, ("alice@example.com", "a-long-password-1")) as c:
        assert (await c.get("/api/me")).json()["name"] == "alice@example.com"


async def test_a_duplicate_identity_name_is_refused_with_409(client: httpx.AsyncClient):
    await create_identity(client, "alice")
    for name in ("alice", "ALICE", "owner"):
        assert_api_error(await client.post("/api/identities", json={"name": name}), 409)


async def test_an_unknown_role_is_refused(client: httpx.AsyncClient):
    await create_identity(client, "alice")
    requests = [
        ("POST", "/api/roleAssignments", {"role": role, "assignee": "alice", "scope": "default"})
        for role in ["SuperUser", "", "Owner ", "Acr Pull", 5, None]
    ]
    assert await api_problems(client, requests, 400) == []


async def test_role_names_match_case_insensitively(client: httpx.AsyncClient):
    await create_identity(client, "alice")
    resp = await client.post(
        "/api/roleAssignments", json={"role": "acrpull", "assignee": "alice", "scope": "default"}
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["role"] == "AcrPull"


async def test_a_bad_role_scope_is_refused(client: httpx.AsyncClient):
    await create_identity(client, "alice")

    def assign(scope: str) -> tuple[str, str, dict]:
        return (
            "POST",
            "/api/roleAssignments",
            {"role": "AcrPull", "assignee": "alice", "scope": scope},
        )

    bad = ["default/../x", "default/a'--", "default/A", "default//x"]
    assert await api_problems(client, [assign(s) for s in bad], 400) == []
    missing = ["nosuchreg", "nosuchreg/repo"]
    assert await api_problems(client, [assign(s) for s in missing], 404) == []
    listed = await client.get("/api/roleAssignments", params={"assignee": "alice"})
    assert listed.json() == []


async def test_assigning_a_role_twice_is_idempotent(client: httpx.AsyncClient):
    await create_identity(client, "alice")
    body = {"role": "AcrPull", "assignee": "alice", "scope": "default/x"}
    first = await client.post("/api/roleAssignments", json=body)
    second = await client.post("/api/roleAssignments", json=body)
    assert first.status_code == 201
    assert second.status_code in (200, 201)
    assert second.json()["id"] == first.json()["id"]
    listed = await client.get("/api/roleAssignments", params={"assignee": "alice"})
    assert [(a["role"], a["scope"]) for a in listed.json()] == [("AcrPull", "default/x")]


# --- missing resources --------------------------------------------------------------------


MISSING = [
    ("GET", "/api/registries/nosuchreg", None),
    ("PATCH", "/api/registries/nosuchreg", {"adminUserEnabled": True}),
    ("DELETE", "/api/registries/nosuchreg", None),
    ("GET", "/api/registries/nosuchreg/credentials", None),
    ("GET", "/api/registries/nosuchreg/tokens", None),
    ("GET", "/api/identities/nosuchidentity", None),
    ("DELETE", "/api/identities/nosuchidentity", None),
    ("POST", "/api/identities/nosuchidentity/credentials", {}),
    ("DELETE", "/api/roleAssignments/nosuchassignment", None),
    ("GET", "/api/registries/default/tokens/nosuchtoken", None),
    ("PATCH", "/api/registries/default/tokens/nosuchtoken", {"status": "disabled"}),
    ("DELETE", "/api/registries/default/tokens/nosuchtoken", None),
    ("POST", "/api/registries/default/tokens/nosuchtoken/credentials", {}),
    ("GET", "/api/registries/default/scopeMaps/nosuchmap", None),
    ("DELETE", "/api/registries/default/scopeMaps/nosuchmap", None),
    ("POST", "/api/registries/default/tokens", {"name": "tok12", "scopeMap": "nosuchmap"}),
    ("POST", "/api/roleAssignments", {"role": "AcrPull", "assignee": "nobody", "scope": "/"}),
    ("GET", "/api/nothing/here", None),
]


async def test_a_missing_resource_answers_404(client: httpx.AsyncClient):
    assert await api_problems(client, MISSING, 404) == []


async def test_a_method_the_endpoint_lacks_answers_405(client: httpx.AsyncClient):
    assert_api_error(await client.put("/api/registries/default", json={}), 405)


async def test_the_default_registry_cannot_be_deleted(client: httpx.AsyncClient):
    assert_api_error(await client.delete("/api/registries/default"), 409)


# --- 401 and 403 --------------------------------------------------------------------------

EVERY_ENDPOINT = [
    ("GET", "/api/me", None),
    ("GET", "/api/registries", None),
    ("POST", "/api/registries", {"name": "thirdreg"}),
    ("GET", "/api/registries/default", None),
    ("PATCH", "/api/registries/default", {"adminUserEnabled": True}),
    ("DELETE", "/api/registries/secondreg", None),
    ("GET", "/api/registries/default/credentials", None),
    ("POST", "/api/registries/default/credentials/renew", {"passwordName": "password"}),
    ("GET", "/api/registries/default/networkRules", None),
    ("POST", "/api/registries/default/networkRules", {"ipAddressOrRange": "10.0.0.1"}),
    ("GET", "/api/identities", None),
    ("POST", "/api/identities", {"name": "mallory"}),
    ("GET", "/api/identities/owner", None),
    ("DELETE", "/api/identities/owner", None),
    ("POST", "/api/identities/owner/credentials", {}),
    ("POST", "/api/roleAssignments", {"role": "Owner", "assignee": "owner", "scope": "/"}),
    ("GET", "/api/registries/default/scopeMaps", None),
    ("POST", "/api/registries/default/scopeMaps", {"name": "mymap", "actions": ["x"]}),
    ("GET", "/api/registries/default/tokens", None),
    ("POST", "/api/registries/default/tokens", {"name": "tok12", "scopeMap": "x"}),
    ("POST", "/api/keys/rotate", None),
]


async def test_every_endpoint_answers_401_without_credentials(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    for method, path, body in EVERY_ENDPOINT:
        resp = await anonymous.request(method, path, json=body)
        assert_api_error(resp, 401, "Unauthorized")
        assert resp.headers.get("www-authenticate"), path
    assert (await client.get("/api/registries/secondreg")).status_code == 200


async def test_every_endpoint_answers_401_to_a_wrong_password(
    app: object, client: httpx.AsyncClient
):
    async with caller(app, ("owner", "wrong-password"), address="10.0.0.2") as c:
        for method, path, body in EVERY_ENDPOINT[:5]:
            assert_api_error(await c.request(method, path, json=body), 401)


async def test_an_identity_without_management_rights_gets_403_everywhere_but_me(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    alice = await member(client, "alice", "AcrPush")
    async with caller(app, alice.auth) as c:
        for method, path, body in EVERY_ENDPOINT:
            resp = await c.request(method, path, json=body)
            if path == "/api/me":
                assert resp.json()["name"] == "alice"
            elif (method, path) == ("GET", "/api/registries"):
                assert resp.json() == []
            else:
                assert resp.status_code == 403, (method, path, resp.status_code, resp.text)
                assert_api_error(resp, 403, "AuthorizationFailed")
    assert (await client.get("/api/registries/secondreg")).status_code == 200
    assert (await client.get("/api/registries/default")).json()["adminUserEnabled"] is False


async def test_a_caller_without_rights_cannot_learn_which_registries_exist(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    alice = await member(client, "alice", "AcrPull")
    async with caller(app, alice.auth) as c:
        existing = await c.get("/api/registries/secondreg")
        missing = await c.get("/api/registries/nosuchreg")
    assert existing.status_code == missing.status_code == 403


async def test_a_reader_cannot_see_the_admin_passwords(app: object, client: httpx.AsyncClient):
    await enable_admin(client)
    reader = await member(client, "reader", "Reader")
    async with caller(app, reader.auth) as c:
        assert_api_error(await c.get("/api/registries/default/credentials"), 403)
        renew = await c.post(
            "/api/registries/default/credentials/renew", json={"passwordName": "password"}
        )
        assert_api_error(renew, 403)


async def test_a_contributor_cannot_grant_itself_more(app: object, client: httpx.AsyncClient):
    mallory = await member(client, "mallory", "Contributor")
    async with caller(app, mallory.auth) as c:
        for scope in ("default", "/", "default/x"):
            resp = await c.post(
                "/api/roleAssignments",
                json={"role": "Owner", "assignee": "mallory", "scope": scope},
            )
            assert_api_error(resp, 403)
        assert_api_error(await c.post("/api/identities", json={"name": "sidekick"}), 403)
        assert_api_error(await c.post("/api/identities/owner/credentials", json={}), 403)
    listed = await client.get("/api/roleAssignments", params={"assignee": "mallory"})
    assert [a["role"] for a in listed.json()] == ["Contributor"]


async def test_a_registry_owner_cannot_take_over_the_deployment(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    mallory = await member(client, "mallory", "Owner", "default")
    async with caller(app, mallory.auth) as c:
        deployment = await c.post(
            "/api/roleAssignments", json={"role": "Owner", "assignee": "mallory", "scope": "/"}
        )
        assert_api_error(deployment, 403)
        other = await c.post(
            "/api/roleAssignments",
            json={"role": "Owner", "assignee": "mallory", "scope": "secondreg"},
        )
        assert_api_error(other, 403)
        assert_api_error(await c.post("/api/identities/owner/credentials", json={}), 403)
        assert_api_error(await c.delete("/api/identities/owner"), 403)
        assert_api_error(await c.post("/api/registries", json={"name": "thirdreg"}), 403)
        assert_api_error(await c.post("/api/keys/rotate"), 403)
        # Within its registry it may assign roles.
        assert (
            await c.post(
                "/api/roleAssignments",
                json={"role": "AcrPull", "assignee": "mallory", "scope": "default/x"},
            )
        ).status_code == 201
    async with caller(app, ("owner", OWNER_PASSWORD)) as c:
        assert (await c.get("/api/me")).status_code == 200


async def test_an_identity_sees_only_its_own_role_assignments(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    await member(client, "bob", "AcrPush")
    async with caller(app, alice.auth) as c:
        listed = await c.get("/api/roleAssignments")
    assert listed.status_code == 200
    assert [(a["assigneeName"], a["role"]) for a in listed.json()] == [("alice", "AcrPull")]


async def test_deleting_another_identitys_assignment_needs_the_right(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    bob_assignment = (
        await client.post(
            "/api/roleAssignments", json={"role": "AcrPull", "assignee": "alice", "scope": "/"}
        )
    ).json()["id"]
    async with caller(app, alice.auth) as c:
        owner_assignment = (await client.get("/api/roleAssignments")).json()
        owner_ids = [a["id"] for a in owner_assignment if a["assigneeName"] == "owner"]
        for assignment in (*owner_ids, bob_assignment):
            assert_api_error(await c.delete(f"/api/roleAssignments/{assignment}"), 403)


# --- concurrency --------------------------------------------------------------------------


async def test_concurrent_creation_of_one_identity_name_creates_it_once(
    client: httpx.AsyncClient,
):
    answers = await asyncio.gather(
        *(client.post("/api/identities", json={"name": "racer"}) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * 7, [(r.status_code, r.text[:100]) for r in answers]
    listed = (await client.get("/api/identities")).json()
    assert [i["name"] for i in listed].count("racer") == 1


async def test_concurrent_creation_of_one_registry_name_creates_it_once(
    client: httpx.AsyncClient,
):
    answers = await asyncio.gather(
        *(client.post("/api/registries", json={"name": "racereg"}) for _ in range(8))
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * 7, [(r.status_code, r.text[:100]) for r in answers]
    listed = (await client.get("/api/registries")).json()
    assert [r["name"] for r in listed].count("racereg") == 1


async def test_concurrent_creation_of_one_token_name_creates_it_once(client: httpx.AsyncClient):
    answers = await asyncio.gather(
        *(
            client.post(
                "/api/registries/default/tokens",
                json={"name": "racetoken", "scopeMap": "_repositories_pull"},
            )
            for _ in range(8)
        )
    )
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201] + [409] * 7, [(r.status_code, r.text[:100]) for r in answers]
