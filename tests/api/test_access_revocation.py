"""Changes to who may do what take effect on the very next request, even for tokens
already issued (docs/access.md: "a revoked role … stops working at once")."""

from __future__ import annotations

import httpx

from .access_helpers import (
    REFRESH_USERNAME,
    access_token,
    assert_api_error,
    assert_challenge,
    assert_denied,
    assign_role,
    caller,
    create_identity,
    create_registry,
    get_token,
    granted,
    jwt_header,
    management_token,
    member,
    post_token,
    pull_works,
    seed,
)

SCOPE = "repository:samples/hello:pull"


async def test_deleting_a_role_assignment_stops_an_issued_bearer_token_at_once(
    app: object, client: httpx.AsyncClient
):
    alice = await create_identity(client, "alice")
    assignment = await assign_role(client, "AcrPull", alice)
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        token = await access_token(c, SCOPE, auth=alice.auth)
    async with caller(app, bearer=token) as c:
        assert await pull_works(c, "samples/hello", image, "v1")

    resp = await client.delete(f"/api/roleAssignments/{assignment}")
    assert resp.status_code == 204, resp.text

    async with caller(app, bearer=token) as c:
        assert_denied(await c.get("/v2/samples/hello/manifests/v1"), "content/read")
    async with caller(app, alice.auth) as c:
        assert_denied(await c.get("/v2/samples/hello/manifests/v1"), "content/read")
        fresh = await get_token(c, SCOPE)
    assert granted(fresh.json()["token"]) == {}


async def test_a_new_role_takes_effect_at_once_for_a_signed_in_caller(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    async with caller(app, alice.auth) as c:
        assert_denied(await c.post("/v2/samples/hello/blobs/uploads/"), "content/write")
        await assign_role(client, "AcrPush", alice)
        assert (await c.post("/v2/samples/hello/blobs/uploads/")).status_code == 202


async def test_deleting_a_management_role_stops_an_issued_management_token(
    app: object, client: httpx.AsyncClient
):
    alice = await create_identity(client, "alice")
    assignment = await assign_role(client, "Reader", alice)
    async with caller(app) as c:
        token = await management_token(c, "alice", alice.password)
    async with caller(app, bearer=token) as c:
        assert (await c.get("/api/registries/default")).status_code == 200
        assert (await client.delete(f"/api/roleAssignments/{assignment}")).status_code == 204
        assert_api_error(await c.get("/api/registries/default"), 403)


async def test_resetting_a_credential_stops_the_old_password_and_every_issued_token(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app, alice.auth) as c:
        assert await pull_works(c, "samples/hello", image, "v1")
        first = (await get_token(c, SCOPE, offline=True)).json()
        management = await management_token(c, "alice", alice.password)

    resp = await client.post(f"/api/identities/{alice.id}/credentials", json={})
    assert resp.status_code == 200, resp.text
    new_password = resp.json()["password"]
    assert new_password != alice.password

    async with caller(app, alice.auth) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
        assert (await get_token(c, SCOPE)).status_code == 401
    async with caller(app, bearer=first["token"]) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
    async with caller(app, (REFRESH_USERNAME, first["refresh_token"])) as c:
        assert_challenge(await c.get("/v2/"))
    async with caller(app) as c:
        refreshed = await post_token(
            c, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        )
        assert refreshed.status_code == 401
    async with caller(app, bearer=management) as c:
        assert (await c.get("/api/me")).status_code == 401
    async with caller(app, ("alice", new_password)) as c:
        assert await pull_works(c, "samples/hello", image, "v1")


async def test_appending_a_credential_keeps_the_old_password_and_tokens(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        token = await access_token(c, SCOPE, auth=alice.auth)
    resp = await client.post(
        f"/api/identities/{alice.id}/credentials", json={"append": True, "years": 1}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["expiresAt"]
    for auth in (alice.auth, ("alice", resp.json()["password"])):
        async with caller(app, auth) as c:
            assert await pull_works(c, "samples/hello", image, "v1")
    async with caller(app, bearer=token) as c:
        assert await pull_works(c, "samples/hello", image, "v1")
    shown = await client.get(f"/api/identities/{alice.id}")
    assert len(shown.json()["credentials"]) == 2


async def test_deleting_an_identity_stops_its_passwords_and_tokens(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPush")
    async with caller(app, alice.auth) as c:
        assert (await c.get("/v2/")).status_code == 200
        issued = (await get_token(c, "repository:x:pull,push", offline=True)).json()
        management = await management_token(c, "alice", alice.password)

    resp = await client.delete(f"/api/identities/{alice.id}")
    assert resp.status_code == 204, resp.text
    assert (await client.get(f"/api/identities/{alice.id}")).status_code == 404

    async with caller(app, alice.auth) as c:
        assert_challenge(await c.get("/v2/"))
    async with caller(app, bearer=issued["token"]) as c:
        assert_challenge(await c.post("/v2/x/blobs/uploads/"))
    async with caller(app, (REFRESH_USERNAME, issued["refresh_token"])) as c:
        assert_challenge(await c.get("/v2/"))
    async with caller(app, bearer=management) as c:
        assert (await c.get("/api/me")).status_code == 401


async def test_an_identity_recreated_under_the_same_name_does_not_inherit_old_tokens(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPush")
    async with caller(app) as c:
        token = await access_token(c, "repository:x:pull,push", auth=alice.auth)
    assert (await client.delete(f"/api/identities/{alice.id}")).status_code == 204
    await member(client, "alice", "AcrPush")
    async with caller(app, bearer=token) as c:
        assert_challenge(await c.post("/v2/x/blobs/uploads/"))


async def test_the_owner_cannot_delete_the_identity_it_is_signed_in_as(
    client: httpx.AsyncClient,
):
    me = (await client.get("/api/me")).json()
    assert_api_error(await client.delete(f"/api/identities/{me['id']}"), 409)


async def test_rotating_the_signing_key_keeps_issued_tokens_valid(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        before = await access_token(c, SCOPE, auth=alice.auth)
    resp = await client.post("/api/keys/rotate")
    assert resp.status_code == 200, resp.text
    kid = resp.json()["kid"]
    assert kid != jwt_header(before)["kid"]
    async with caller(app) as c:
        after = await access_token(c, SCOPE, auth=alice.auth)
    assert jwt_header(after)["kid"] == kid
    for token in (before, after):
        async with caller(app, bearer=token) as c:
            assert await pull_works(c, "samples/hello", image, "v1")


async def test_only_a_deployment_owner_rotates_keys(app: object, client: httpx.AsyncClient):
    alice = await member(client, "alice", "Owner", "default")
    async with caller(app, alice.auth) as c:
        assert_api_error(await c.post("/api/keys/rotate"), 403)


async def test_deleting_a_registry_drops_its_role_assignments_for_good(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    alice = await member(client, "alice", "AcrPush", "secondreg")
    second = "http://secondreg.localhost:5000"
    async with caller(app, alice.auth, base_url=second) as c:
        assert (await c.post("/v2/x/blobs/uploads/")).status_code == 202
        token = await access_token(c, "repository:x:pull,push", service="secondreg.localhost:5000")
    assert (await client.delete("/api/registries/secondreg")).status_code == 204
    listed = await client.get("/api/roleAssignments", params={"assignee": "alice"})
    assert listed.json() == []
    # A registry created afterwards, even under the same name, grants alice nothing.
    await create_registry(client, "thirdreg")
    await create_registry(client, "secondreg")
    for base_url in (second, "http://thirdreg.localhost:5000"):
        async with caller(app, alice.auth, base_url=base_url) as c:
            assert_denied(await c.post("/v2/x/blobs/uploads/"))
    async with caller(app, bearer=token, base_url=second) as c:
        resp = await c.post("/v2/x/blobs/uploads/")
        assert resp.status_code in (401, 403), resp.text
