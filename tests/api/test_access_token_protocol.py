"""The Docker token protocol: challenges, the token endpoint, refresh tokens and bearers."""

from __future__ import annotations

import time

import httpx
import pytest

from .access_helpers import (
    HOST,
    REFRESH_USERNAME,
    access_token,
    assert_challenge,
    assert_denied,
    bearer,
    caller,
    get_token,
    granted,
    jwt_header,
    jwt_payload,
    management_token,
    member,
    post_token,
    seed,
)
from .helpers import assert_oci_error, sha256

# --- challenges ---------------------------------------------------------------------------


async def test_version_check_without_credentials_answers_401_with_a_bearer_challenge(
    anonymous: httpx.AsyncClient,
):
    resp = await anonymous.get("/v2/")
    assert (
        resp.headers["www-authenticate"]
        == 'Bearer realm="http://localhost:5000/oauth2/token",service="localhost:5000"'
    )
    assert_challenge(resp, scope=None)
    assert resp.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_version_check_with_owner_credentials_answers_200(client: httpx.AsyncClient):
    resp = await client.get("/v2/")
    assert resp.status_code == 200
    assert resp.json() == {}


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("GET", "/v2/samples/hello/manifests/v1", "repository:samples/hello:pull"),
        ("GET", f"/v2/samples/hello/blobs/{sha256(b'x')}", "repository:samples/hello:pull"),
        ("GET", "/v2/samples/hello/tags/list", "repository:samples/hello:pull"),
        ("POST", "/v2/samples/hello/blobs/uploads/", "repository:samples/hello:pull,push"),
        ("PUT", "/v2/samples/hello/manifests/v1", "repository:samples/hello:pull,push"),
        ("DELETE", "/v2/samples/hello/manifests/v1", "repository:samples/hello:delete"),
        ("GET", "/v2/_catalog", "registry:catalog:*"),
    ],
)
async def test_an_anonymous_request_is_challenged_for_the_scope_it_needs(
    anonymous: httpx.AsyncClient, method: str, path: str, scope: str
):
    resp = await anonymous.request(method, path)
    assert_challenge(resp, scope=scope)


async def test_an_anonymous_head_is_challenged_without_a_body(anonymous: httpx.AsyncClient):
    resp = await anonymous.head("/v2/samples/hello/manifests/v1")
    assert_challenge(resp, scope="repository:samples/hello:pull")
    assert resp.content == b""


# --- GET /oauth2/token --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("AcrPull", {"pull"}),
        ("AcrPush", {"pull", "push"}),
        ("AcrDelete", {"delete"}),
        ("Reader", {"pull"}),
        ("Contributor", {"pull", "push", "delete"}),
        ("Owner", {"pull", "push", "delete"}),
        ("AcrImageSigner", set()),
    ],
)
async def test_the_token_carries_exactly_the_requested_actions_the_identity_holds(
    app: object, client: httpx.AsyncClient, role: str, expected: set[str]
):
    alice = await member(client, "alice", role)
    async with caller(app) as c:
        resp = await get_token(c, "repository:x:pull,push,delete", auth=alice.auth)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    token = body["token"]
    assert body["access_token"] == token
    assert granted(token) == ({"repository:x": expected} if expected else {})
    assert "refresh_token" not in body


async def test_the_access_token_is_an_es256_jwt_for_this_registry_valid_five_minutes(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    before = int(time.time())
    async with caller(app) as c:
        resp = await get_token(c, "repository:x:pull", auth=alice.auth)
    body = resp.json()
    header, claims = jwt_header(body["token"]), jwt_payload(body["token"])
    assert header["alg"] == "ES256"
    assert header.get("kid")
    assert claims["aud"] == "default"
    assert claims["iss"] == "haven"
    assert claims["kind"] == "access"
    assert claims["name"] == "alice"
    assert claims["exp"] - claims["iat"] == 300
    assert before - 5 <= claims["iat"] <= int(time.time()) + 5
    assert body["expires_in"] == 300
    assert body["issued_at"].endswith("Z")
    assert body["scope"] == "repository:x:pull"


async def test_the_token_grants_only_actions_it_knows_and_drops_unknown_ones(
    client: httpx.AsyncClient,
):
    resp = await get_token(client, "repository:x:pull,fly,push")
    assert granted(resp.json()["token"]) == {"repository:x": {"pull", "push"}}


async def test_the_token_covers_several_scopes_at_once(app: object, client: httpx.AsyncClient):
    alice = await member(client, "alice", "AcrPull", "default/team/a")
    async with caller(app) as c:
        resp = await get_token(
            c,
            "repository:team/a:pull,push",
            "repository:team/b:pull",
            "registry:catalog:*",
            auth=alice.auth,
        )
    assert granted(resp.json()["token"]) == {"repository:team/a": {"pull"}}


async def test_the_catalog_scope_is_granted_to_a_registry_wide_reader(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    await seed(client, "cat/one", "img", "v1")
    async with caller(app) as c:
        token = await access_token(c, "registry:catalog:*", auth=alice.auth)
    assert granted(token) == {"registry:catalog": {"*"}}
    async with caller(app, bearer=token) as c:
        resp = await c.get("/v2/_catalog")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"repositories": ["cat/one"]}


async def test_offline_token_true_adds_a_three_hour_refresh_token(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    async with caller(app) as c:
        resp = await get_token(c, "repository:x:pull", auth=alice.auth, offline=True)
    refresh = resp.json()["refresh_token"]
    claims = jwt_payload(refresh)
    assert claims["kind"] == "refresh"
    assert claims["aud"] == "default"
    assert claims["exp"] - claims["iat"] == 3 * 3600
    assert "access" not in claims or not claims["access"]


async def test_the_token_endpoint_refuses_a_wrong_password(app: object, client: httpx.AsyncClient):
    await member(client, "alice", "AcrPull")
    async with caller(app) as c:
        resp = await get_token(c, "repository:x:pull", auth=("alice", "not-the-password"))
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized"
    assert "token" not in resp.json()


async def test_the_token_endpoint_refuses_a_bearer_credential(
    app: object, client: httpx.AsyncClient
):
    token = await access_token(client, "repository:x:pull")
    async with caller(app) as c:
        resp = await get_token(c, "repository:x:pull", headers=bearer(token))
    assert resp.status_code == 401


# --- POST /oauth2/token -------------------------------------------------------------------


async def test_post_password_grant_with_repeated_scopes(app: object, client: httpx.AsyncClient):
    alice = await member(client, "alice", "AcrPush")
    async with caller(app) as c:
        resp = await post_token(
            c,
            [
                ("grant_type", "password"),
                ("service", HOST),
                ("username", "alice"),
                ("password", alice.password),
                ("scope", "repository:a:pull,push"),
                ("scope", "repository:b:pull"),
            ],
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert granted(body["access_token"]) == {
        "repository:a": {"pull", "push"},
        "repository:b": {"pull"},
    }
    assert "refresh_token" not in body
    assert resp.headers.get("cache-control") == "no-store"


async def test_post_password_grant_with_space_separated_scopes_and_offline_access(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    async with caller(app) as c:
        resp = await post_token(
            c,
            {
                "grant_type": "password",
                "service": HOST,
                "username": "alice",
                "password": alice.password,
                "scope": "repository:a:pull repository:b:pull,push",
                "access_type": "offline",
            },
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert granted(body["access_token"]) == {"repository:a": {"pull"}, "repository:b": {"pull"}}
    assert jwt_payload(body["refresh_token"])["kind"] == "refresh"


async def test_post_refresh_token_grant_issues_a_new_access_token(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        first = await get_token(c, auth=alice.auth, offline=True)
        refresh = first.json()["refresh_token"]
        resp = await post_token(
            c,
            {
                "grant_type": "refresh_token",
                "service": HOST,
                "refresh_token": refresh,
                "scope": "repository:samples/hello:pull,push",
            },
        )
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    assert granted(token) == {"repository:samples/hello": {"pull"}}
    assert resp.json().get("refresh_token")
    async with caller(app, bearer=token) as c:
        got = await c.get("/v2/samples/hello/manifests/v1")
    assert got.status_code == 200
    assert got.content == image.manifest


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"service": HOST, "username": "owner", "password": "x"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "service": HOST}, 400, "unsupported_grant_type"),
        ({"grant_type": "password", "service": HOST, "username": "owner"}, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "service": HOST}, 400, "invalid_request"),
        (
            {"grant_type": "password", "service": HOST, "username": "owner", "password": "bad"},
            401,
            "invalid_grant",
        ),
        (
            {"grant_type": "refresh_token", "service": HOST, "refresh_token": "not.a.jwt"},
            401,
            "invalid_grant",
        ),
    ],
)
async def test_post_token_refuses_incomplete_or_wrong_requests(
    anonymous: httpx.AsyncClient, form: dict[str, str], status: int, error: str
):
    resp = await post_token(anonymous, form)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error


# --- refresh tokens, the exchange, and bearers on /v2/ ------------------------------------


async def test_the_exchange_turns_a_management_token_into_a_registry_refresh_token(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        management = await management_token(c, "alice", alice.password)
        assert jwt_payload(management)["aud"] == "management"
        resp = await c.post(
            "/oauth2/exchange",
            data={"grant_type": "access_token", "service": HOST, "access_token": management},
        )
    assert resp.status_code == 200, resp.text
    refresh = resp.json()["refresh_token"]
    claims = jwt_payload(refresh)
    assert (claims["kind"], claims["aud"]) == ("refresh", "default")

    async with caller(app, (REFRESH_USERNAME, refresh)) as c:
        assert (await c.get("/v2/")).status_code == 200
        got = await c.get("/v2/samples/hello/manifests/v1")
        assert got.status_code == 200
        assert got.content == image.manifest
        token_resp = await get_token(c, "repository:samples/hello:pull,push")
    assert token_resp.status_code == 200, token_resp.text
    token = token_resp.json()["token"]
    assert granted(token) == {"repository:samples/hello": {"pull"}}
    assert jwt_payload(token)["name"] == "alice"


async def test_the_exchange_refuses_a_registry_access_token(app: object, client: httpx.AsyncClient):
    token = await access_token(client, "repository:x:pull")
    async with caller(app) as c:
        resp = await c.post(
            "/oauth2/exchange",
            data={"grant_type": "access_token", "service": HOST, "access_token": token},
        )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_grant"


async def test_the_exchange_refuses_a_missing_token_or_a_wrong_grant_type(
    anonymous: httpx.AsyncClient,
):
    missing = await anonymous.post("/oauth2/exchange", data={"grant_type": "access_token"})
    assert missing.status_code == 400
    wrong = await anonymous.post(
        "/oauth2/exchange", data={"grant_type": "password", "access_token": "x"}
    )
    assert wrong.status_code == 400


async def test_a_management_token_works_on_the_management_api_but_not_on_v2(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "Reader")
    async with caller(app) as c:
        token = await management_token(c, "alice", alice.password)
    async with caller(app, bearer=token) as c:
        me = await c.get("/api/me")
        assert me.status_code == 200, me.text
        assert me.json()["name"] == "alice"
        assert (await c.get("/api/registries/default")).status_code == 200
        assert_challenge(await c.get("/v2/"))


async def test_a_registry_token_does_not_work_on_the_management_api(
    app: object, client: httpx.AsyncClient
):
    token = await access_token(client, "repository:x:pull")
    async with caller(app, bearer=token) as c:
        resp = await c.get("/api/registries/default")
    assert resp.status_code == 401


async def test_a_registry_refresh_token_does_not_sign_in_to_the_management_api(
    app: object, client: httpx.AsyncClient
):
    resp = await get_token(client, offline=True)
    refresh = resp.json()["refresh_token"]
    async with caller(app, (REFRESH_USERNAME, refresh)) as c:
        assert (await c.get("/api/me")).status_code == 401


async def test_the_bearer_token_works_on_v2(app: object, client: httpx.AsyncClient):
    alice = await member(client, "alice", "AcrPull")
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        token = await access_token(c, "repository:samples/hello:pull", auth=alice.auth)
    async with caller(app, bearer=token) as c:
        assert (await c.get("/v2/")).status_code == 200
        got = await c.get("/v2/samples/hello/manifests/v1")
        assert got.status_code == 200
        assert got.content == image.manifest
        blob = await c.get(f"/v2/samples/hello/blobs/{image.layers[0].digest}")
        assert blob.status_code == 200
        tags = await c.get("/v2/samples/hello/tags/list")
        assert tags.json()["tags"] == ["v1"]


async def test_a_token_lacking_an_action_the_identity_holds_is_challenged_for_it(
    app: object, client: httpx.AsyncClient
):
    """Docker then asks for a broader token: the answer must be 401, not 403."""
    alice = await member(client, "alice", "AcrPush")
    async with caller(app) as c:
        pull_only = await access_token(c, "repository:samples/hello:pull", auth=alice.auth)
        both = await access_token(c, "repository:samples/hello:pull,push", auth=alice.auth)
    async with caller(app, bearer=pull_only) as c:
        resp = await c.post("/v2/samples/hello/blobs/uploads/")
        assert_challenge(resp, scope="repository:samples/hello:pull,push")
        catalog = await c.get("/v2/_catalog")
        assert_challenge(catalog, scope="registry:catalog:*")
    async with caller(app, bearer=both) as c:
        assert (await c.post("/v2/samples/hello/blobs/uploads/")).status_code == 202


async def test_an_identity_lacking_an_action_gets_403_denied_naming_it(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        token = await access_token(c, "repository:samples/hello:pull,push", auth=alice.auth)
    for auth_client in (caller(app, bearer=token), caller(app, alice.auth)):
        async with auth_client as c:
            push = await c.post("/v2/samples/hello/blobs/uploads/")
            entry = assert_denied(push, "content/write")
            assert "push" in entry["message"]
            delete = await c.delete("/v2/samples/hello/manifests/v1")
            assert "delete" in assert_denied(delete, "content/delete")["message"]


async def test_a_token_for_one_repository_is_challenged_on_another(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    await seed(client, "team/a", "img", "v1")
    await seed(client, "team/b", "img", "v1")
    async with caller(app) as c:
        token = await access_token(c, "repository:team/a:pull", auth=alice.auth)
    async with caller(app, bearer=token) as c:
        assert (await c.get("/v2/team/a/manifests/v1")).status_code == 200
        resp = await c.get("/v2/team/b/manifests/v1")
    assert_challenge(resp, scope="repository:team/b:pull")


async def test_basic_credentials_work_on_v2_directly(app: object, client: httpx.AsyncClient):
    alice = await member(client, "alice", "AcrPull")
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app, alice.auth) as c:
        got = await c.get("/v2/samples/hello/manifests/v1")
    assert got.status_code == 200
    assert got.content == image.manifest


async def test_an_unknown_user_and_a_wrong_password_are_challenged(
    app: object, client: httpx.AsyncClient
):
    await member(client, "alice", "AcrPull")
    for auth in (("alice", "wrong-password-123"), ("nobody", "whatever-password")):
        async with caller(app, auth) as c:
            assert_challenge(await c.get("/v2/"))
            resp = await c.get("/v2/samples/hello/manifests/v1")
            assert_challenge(resp)
            assert_oci_error(resp, 401, "UNAUTHORIZED")


async def test_a_cross_repository_mount_needs_pull_on_the_source_in_the_token(
    app: object, client: httpx.AsyncClient
):
    """Docker asks for `repository:src:pull` next to `repository:dst:pull,push` to mount."""
    alice = await member(client, "alice", "AcrPush")
    source = await seed(client, "team/src", "img", "v1")
    digest = source.layers[0].digest
    async with caller(app) as c:
        narrow = await access_token(c, "repository:team/dst:pull,push", auth=alice.auth)
        wide = await access_token(
            c, "repository:team/dst:pull,push", "repository:team/src:pull", auth=alice.auth
        )
    async with caller(app, bearer=narrow) as c:
        resp = await c.post(f"/v2/team/dst/blobs/uploads/?mount={digest}&from=team/src")
        assert resp.status_code == 202
        assert (await c.get(f"/v2/team/dst/blobs/{digest}")).status_code == 404
    async with caller(app, bearer=wide) as c:
        resp = await c.post(f"/v2/team/dst/blobs/uploads/?mount={digest}&from=team/src")
        assert resp.status_code == 201, resp.text
        assert (await c.get(f"/v2/team/dst/blobs/{digest}")).status_code == 200
