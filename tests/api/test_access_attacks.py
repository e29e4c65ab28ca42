"""Attacks on authentication and authorisation: forged and misused tokens, confused
scopes, cross-repository reads, and malformed credentials. None may grant access, and
none may crash the server (a 500)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from .access_helpers import (
    HOST,
    REFRESH_USERNAME,
    access_token,
    assert_challenge,
    b64url,
    bearer,
    caller,
    create_registry,
    get_token,
    granted,
    jwt_header,
    jwt_payload,
    management_token,
    member,
    post_token,
    pull_works,
    seed,
)
from .helpers import (
    OWNER_PASSWORD,
    assert_oci_error,
    blob_bytes,
    push_blob,
    raw_asgi_request,
    sha256,
)

ALL_ACTIONS = [{"type": "repository", "name": "samples/hello", "actions": ["pull", "push", "*"]}]


# --- forged tokens ------------------------------------------------------------------------


def _segments(token: str) -> tuple[str, str, str]:
    header, payload, signature = token.split(".")
    return header, payload, signature


def _encode(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def _resigned_with_another_key(token: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = {**jwt_payload(token), "access": ALL_ACTIONS}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": jwt_header(token)["kid"]})


def _resigned_with_another_kid(token: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = {**jwt_payload(token), "access": ALL_ACTIONS}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": "0123456789abcdef"})


def _alg_none(token: str) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": jwt_header(token)["kid"]}
    claims = {**jwt_payload(token), "access": ALL_ACTIONS}
    return f"{_encode(header)}.{_encode(claims)}."


def _alg_none_keeping_signature(token: str) -> str:
    header = {"alg": "none", "typ": "JWT", "kid": jwt_header(token)["kid"]}
    return f"{_encode(header)}.{_segments(token)[1]}.{_segments(token)[2]}"


def _hs256_with_a_guessable_secret(token: str) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": jwt_header(token)["kid"]}
    claims = {**jwt_payload(token), "access": ALL_ACTIONS}
    signing_input = f"{_encode(header)}.{_encode(claims)}"
    signature = hmac.new(b"secret", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def _tampered_payload(token: str) -> str:
    header, _, signature = _segments(token)
    claims = {**jwt_payload(token), "access": ALL_ACTIONS}
    return f"{header}.{_encode(claims)}.{signature}"


def _tampered_subject(token: str) -> str:
    header, _, signature = _segments(token)
    claims = {**jwt_payload(token), "sub": "admin:1/password", "name": "default"}
    return f"{header}.{_encode(claims)}.{signature}"


def _signature_stripped(token: str) -> str:
    header, payload, _ = _segments(token)
    return f"{header}.{payload}."


def _truncated(token: str) -> str:
    return token[:-10]


def _not_a_jwt(token: str) -> str:
    return "definitely-not-a-jwt"


FORGERIES: dict[str, Callable[[str], str]] = {
    "resigned_with_another_key": _resigned_with_another_key,
    "resigned_with_another_kid": _resigned_with_another_kid,
    "alg_none": _alg_none,
    "alg_none_keeping_signature": _alg_none_keeping_signature,
    "hs256": _hs256_with_a_guessable_secret,
    "tampered_payload": _tampered_payload,
    "tampered_subject": _tampered_subject,
    "signature_stripped": _signature_stripped,
    "truncated": _truncated,
    "not_a_jwt": _not_a_jwt,
}


async def test_a_forged_token_is_refused_everywhere(app: object, client: httpx.AsyncClient):
    alice = await member(client, "alice", "AcrPull")
    await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        real = await get_token(c, "repository:samples/hello:pull", auth=alice.auth, offline=True)
    problems: list[str] = []
    for forgery, forge in FORGERIES.items():
        forged = forge(real.json()["token"])
        forged_refresh = forge(real.json()["refresh_token"])
        answers: list[tuple[str, int]] = []
        async with caller(app, bearer=forged) as c:
            answers.append(
                ("GET manifest", (await c.get("/v2/samples/hello/manifests/v1")).status_code)
            )
            answers.append(
                ("POST upload", (await c.post("/v2/samples/hello/blobs/uploads/")).status_code)
            )
            answers.append(("GET /v2/", (await c.get("/v2/")).status_code))
            answers.append(("GET /api/me", (await c.get("/api/me")).status_code))
        async with caller(app, (REFRESH_USERNAME, forged_refresh)) as c:
            answers.append(("refresh as Basic", (await c.get("/v2/")).status_code))
        async with caller(app) as c:
            refreshed = await post_token(
                c, {"grant_type": "refresh_token", "service": HOST, "refresh_token": forged_refresh}
            )
            answers.append(("refresh grant", refreshed.status_code))
            exchanged = await c.post(
                "/oauth2/exchange", data={"grant_type": "access_token", "access_token": forged}
            )
            answers.append(("exchange", exchanged.status_code))
        problems += [f"{forgery}: {what} -> {status}" for what, status in answers if status != 401]
    assert problems == []


async def test_an_expired_token_is_refused(app: Any, client: httpx.AsyncClient):
    alice = await member(client, "alice", "AcrPull")
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        real = await get_token(c, "repository:samples/hello:pull", auth=alice.auth, offline=True)
    keys = app.services.access.keys
    own = {"iss", "aud", "iat", "nbf", "exp", "jti"}
    claims = {k: v for k, v in jwt_payload(real.json()["token"]).items() if k not in own}
    refresh_claims = {
        k: v for k, v in jwt_payload(real.json()["refresh_token"]).items() if k not in own
    }
    expired, _ = keys.sign(claims, "default", -120)
    expired_refresh, _ = keys.sign(refresh_claims, "default", -120)
    still_valid, _ = keys.sign(claims, "default", 60)

    async with caller(app, bearer=still_valid) as c:  # the forging itself is sound
        assert await pull_works(c, "samples/hello", image, "v1")
    async with caller(app, bearer=expired) as c:
        resp = await c.get("/v2/samples/hello/manifests/v1")
        assert_challenge(resp)
        assert "expired" in resp.json()["errors"][0]["message"]
    async with caller(app, (REFRESH_USERNAME, expired_refresh)) as c:
        assert_challenge(await c.get("/v2/"))


async def test_a_server_signed_token_naming_an_unknown_principal_is_refused(
    app: Any, client: httpx.AsyncClient
):
    await get_token(client, "repository:x:pull")  # loads the keys
    keys = app.services.access.keys
    for sub in ("root:0", "identity:", "nobody", "identity:00000000-0000-0000-0000-00000000000f"):
        token, _ = keys.sign(
            {"sub": sub, "name": "x", "ver": 1, "kind": "access", "access": ALL_ACTIONS},
            "default",
            60,
        )
        async with caller(app, bearer=token) as c:
            assert_challenge(await c.post("/v2/samples/hello/blobs/uploads/"))


async def test_an_anonymous_token_claiming_push_cannot_push(app: Any, client: httpx.AsyncClient):
    await client.patch("/api/registries/default", json={"anonymousPullEnabled": True})
    async with caller(app) as c:
        resp = await get_token(c, "repository:samples/hello:pull,push")
    assert granted(resp.json()["token"]) == {"repository:samples/hello": {"pull"}}
    token, _ = app.services.access.keys.sign(
        {"sub": "anonymous:-", "name": "anonymous", "kind": "access", "access": ALL_ACTIONS},
        "default",
        60,
    )
    async with caller(app, bearer=token) as c:
        assert_challenge(await c.post("/v2/samples/hello/blobs/uploads/"))


# --- tokens used where they do not belong ---------------------------------------------------


async def test_a_token_for_another_registry_is_refused(app: object, client: httpx.AsyncClient):
    await create_registry(client, "secondreg")
    second = await access_token(
        client, "repository:samples/hello:pull,push", service="secondreg.localhost:5000"
    )
    assert jwt_payload(second)["aud"] == "secondreg"
    await seed(client, "samples/hello", "img", "v1")
    async with caller(app, bearer=second) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
        assert_challenge(await c.get("/v2/"))
    first = await access_token(client, "repository:samples/hello:pull")
    async with caller(app, bearer=first, base_url="http://secondreg.localhost:5000") as c:
        resp = await c.get("/v2/")
        assert resp.status_code == 401


async def test_a_refresh_token_is_not_an_access_token(app: object, client: httpx.AsyncClient):
    resp = await get_token(client, "repository:x:pull", offline=True)
    refresh = resp.json()["refresh_token"]
    async with caller(app, bearer=refresh) as c:
        assert_challenge(await c.get("/v2/"))
        assert_challenge(await c.get("/v2/x/tags/list"))


async def test_an_access_token_is_not_a_refresh_token(app: object, client: httpx.AsyncClient):
    token = await access_token(client, "repository:x:pull")
    async with caller(app, (REFRESH_USERNAME, token)) as c:
        assert_challenge(await c.get("/v2/"))
        assert (await get_token(c, "repository:x:pull")).status_code == 401
    async with caller(app) as c:
        resp = await post_token(
            c, {"grant_type": "refresh_token", "service": HOST, "refresh_token": token}
        )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_grant"


async def test_a_management_refresh_token_is_not_a_registry_refresh_token(
    app: object, client: httpx.AsyncClient
):
    async with caller(app) as c:
        resp = await post_token(
            c,
            {
                "grant_type": "password",
                "service": "management",
                "username": "owner",
                "password": OWNER_PASSWORD,
                "access_type": "offline",
            },
        )
        refresh = resp.json()["refresh_token"]
        assert jwt_payload(refresh)["aud"] == "management"
        registry = await post_token(
            c, {"grant_type": "refresh_token", "service": HOST, "refresh_token": refresh}
        )
        assert registry.status_code == 401
    async with caller(app, (REFRESH_USERNAME, refresh)) as c:
        assert_challenge(await c.get("/v2/"))


async def test_the_exchange_refuses_a_management_refresh_token(
    app: object, client: httpx.AsyncClient
):
    async with caller(app) as c:
        access = await management_token(c, "owner", OWNER_PASSWORD)
        ok = await c.post("/oauth2/exchange", data={"access_token": access})
        assert ok.status_code == 200
        refresh = ok.json()["refresh_token"]
        again = await c.post("/oauth2/exchange", data={"access_token": refresh})
    assert again.status_code == 401


# --- content of repositories the caller cannot read -----------------------------------------


async def test_a_private_blob_is_unknown_through_a_readable_repository(
    app: object, client: httpx.AsyncClient
):
    secret = blob_bytes("secret", 100)
    await push_blob(client, "private/repo", secret)
    private_image = await seed(client, "private/repo", "private", "v1")
    await seed(client, "public/repo", "public", "v1")
    alice = await member(client, "alice", "AcrPush", "default/public/repo")
    async with caller(app) as c:
        token = await access_token(c, "repository:public/repo:pull,push", auth=alice.auth)
    for auth_client in (caller(app, alice.auth), caller(app, bearer=token)):
        async with auth_client as c:
            got = await c.get(f"/v2/public/repo/blobs/{sha256(secret)}")
            assert_oci_error(got, 404, "BLOB_UNKNOWN")
            head = await c.head(f"/v2/public/repo/blobs/{sha256(secret)}")
            assert head.status_code == 404
            manifest = await c.get(f"/v2/public/repo/manifests/{private_image.digest}")
            assert_oci_error(manifest, 404, "MANIFEST_UNKNOWN")
            # Mounting it, with or without naming the source, starts an upload instead.
            for query in (f"mount={sha256(secret)}&from=private/repo", f"mount={sha256(secret)}"):
                mount = await c.post(f"/v2/public/repo/blobs/uploads/?{query}")
                assert mount.status_code == 202, (query, mount.status_code, mount.text)
            still = await c.get(f"/v2/public/repo/blobs/{sha256(secret)}")
            assert_oci_error(still, 404, "BLOB_UNKNOWN")
            assert_oci_error(await c.get("/v2/private/repo/manifests/v1"), 403, "DENIED")


@pytest.mark.parametrize(
    "raw_path",
    [
        "/v2/public/repo/../../private/repo/manifests/v1",
        "/v2/public/repo/%2e%2e/%2e%2e/private/repo/manifests/v1",
        "/v2/public/repo/..%2f..%2fprivate/repo/manifests/v1",
        "/v2/public/./repo/manifests/v1",
    ],
)
async def test_path_traversal_in_the_repository_name_reaches_nothing(
    app: object, client: httpx.AsyncClient, raw_path: str
):
    await seed(client, "private/repo", "private", "v1")
    alice = await member(client, "alice", "AcrPull", "default/public/repo")
    resp = await raw_asgi_request(
        app, "GET", raw_path, headers={"Authorization": _basic(*alice.auth)}
    )
    assert resp.status_code in (400, 403, 404), (resp.status_code, resp.text)
    assert b"private" not in resp.content or resp.status_code != 200


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- scopes -------------------------------------------------------------------------------

HOSTILE_SCOPES = [
    "repository:../x:pull",
    "repository:a/../../b:pull",
    "repository:a'--:pull",
    "repository:a';DROP TABLE identities;--:pull",
    'repository:a" OR "1"="1:pull',
    "repository:%2e%2e/x:pull",
    "repository:/etc/passwd:pull",
    "repository:x:pull;push",
    "repository::pull",
    "repository:x",
    "repository",
    "registry:catalog:push",
    "registry:../catalog:*",
    "repository(plugin):x:pull",
    "repository:x:" + "push," * 500,
    "repository:" + "a" * 300 + ":pull",
    "repository:x\x00y:pull",
]


async def test_a_hostile_scope_is_refused_or_grants_nothing_it_names(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull", "default/x")
    problems: list[str] = []
    for scope in HOSTILE_SCOPES:
        async with caller(app) as c:
            got = await get_token(c, scope, auth=alice.auth)
            posted = await post_token(
                c,
                {
                    "grant_type": "password",
                    "service": HOST,
                    "username": "alice",
                    "password": alice.password,
                    "scope": scope,
                },
            )
        for how, resp in (("GET", got), ("POST", posted)):
            if resp.status_code == 400:
                if resp.json().get("error") not in ("invalid_scope", "invalid_request"):
                    problems.append(f"{how} {scope!r}: 400 {resp.text[:100]}")
            elif resp.status_code != 200:
                problems.append(f"{how} {scope!r}: {resp.status_code} {resp.text[:100]}")
            elif granted(resp.json()["access_token"]) not in ({}, {"repository:x": {"pull"}}):
                # Nothing beyond what alice holds: pull on `x` at most.
                problems.append(f"{how} {scope!r}: granted {granted(resp.json()['access_token'])}")
        # The owner, who holds everything, gets nothing for a traversal or a quote either.
        owner = await get_token(client, scope)
        if owner.status_code not in (200, 400):
            problems.append(f"owner {scope!r}: {owner.status_code}")
        elif owner.status_code == 200:
            for resource in granted(owner.json()["token"]):
                name = resource.partition(":")[2]
                if ".." in name or "'" in name or '"' in name or "/etc" in name or "\x00" in name:
                    problems.append(f"owner {scope!r}: granted {resource}")
    assert problems == []


async def test_a_repository_path_with_sql_quotes_is_a_bad_name_not_a_crash(
    app: object, client: httpx.AsyncClient
):
    for path in ("/v2/a'--/manifests/v1", "/v2/a%27%20OR%201=1/tags/list"):
        resp = await client.get(path)
        assert_oci_error(resp, 400, "NAME_INVALID")


# --- malformed credentials ------------------------------------------------------------------

MALFORMED_AUTHORIZATION = [
    "Basic !!!",
    "Basic",
    "Basic ",
    "Bearer",
    "Bearer ",
    "Digest x",
    "Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHgYK",
    "Basic " + base64.b64encode(b"no-colon-here").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),
    "Basic " + base64.b64encode(b"owner:").decode()[:-2],
    "Basic=" + base64.b64encode(b"owner:x").decode(),
    "Bearer a.b.c",
    "Bearer ....",
    "Bearer " + "x" * 5,
    "Basic\t" + base64.b64encode(f"owner:{OWNER_PASSWORD}x".encode()).decode(),
]


async def test_a_malformed_authorization_header_answers_401_never_500(app: object):
    problems: list[str] = []
    for value in MALFORMED_AUTHORIZATION:
        for method, path in [
            ("GET", "/v2/"),
            ("GET", "/v2/samples/hello/manifests/v1"),
            ("POST", "/v2/samples/hello/blobs/uploads/"),
            ("GET", "/oauth2/token?service=localhost:5000&scope=repository:x:pull"),
            ("GET", "/api/me"),
            ("GET", "/api/registries/default"),
        ]:
            resp = await raw_asgi_request(app, method, path, headers={"Authorization": value})
            challenge = resp.headers.get("www-authenticate", "")
            if resp.status_code != 401:
                problems.append(f"{value[:40]!r} {method} {path}: {resp.status_code}")
            elif path.startswith("/v2/") and not challenge.startswith("Bearer "):
                problems.append(f"{value[:40]!r} {method} {path}: challenge {challenge!r}")
    assert problems == []


async def test_non_ascii_bytes_in_the_authorization_header_answer_401(app: object):
    """A real server hands header bytes over as latin-1: a client can send any of them."""
    problems: list[str] = []
    for value in ("Basic \xe9\xe9\xe9", "Basic \xe9", "Bearer \xff\xfe", "\xe9 x"):
        for path in ("/v2/", "/api/me", "/oauth2/token"):
            resp = await raw_asgi_request(app, "GET", path, headers={"Authorization": value})
            if resp.status_code != 401:
                problems.append(f"{value!r} {path}: {resp.status_code}")
    assert problems == []


@pytest.mark.parametrize("size", [8 * 1024, 100 * 1024])
async def test_an_oversized_authorization_header_is_refused_not_a_crash(app: object, size: int):
    values = [
        "Bearer " + "a" * size,
        "Basic " + base64.b64encode(b"owner:" + b"p" * size).decode(),
        "Basic " + base64.b64encode(b"u" * size + b":password").decode(),
    ]
    for value in values:
        for path in ("/v2/", "/api/me", "/oauth2/token?service=localhost:5000"):
            resp = await raw_asgi_request(app, "GET", path, headers={"Authorization": value})
            assert resp.status_code in (400, 401, 413, 431), (path, resp.status_code)


async def test_wrong_credentials_never_fall_back_to_anonymous_access(
    app: object, client: httpx.AsyncClient
):
    await client.patch("/api/registries/default", json={"anonymousPullEnabled": True})
    await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        assert (await c.get("/v2/samples/hello/manifests/v1")).status_code == 200
    for value in ("Basic !!!", _basic("owner", "wrong-password"), "Bearer nonsense"):
        resp = await raw_asgi_request(
            app, "GET", "/v2/samples/hello/manifests/v1", headers={"Authorization": value}
        )
        assert resp.status_code == 401, (value, resp.status_code)


async def test_repeated_failed_logins_do_not_lock_out_a_correct_password(
    app: object, client: httpx.AsyncClient
):
    alice = await member(client, "alice", "AcrPull")
    async with caller(app, ("alice", "wrong-password-1"), address="10.9.8.7") as c:
        for _ in range(5):
            assert_challenge(await c.get("/v2/"))
    async with caller(app, alice.auth, address="10.9.8.6") as c:
        assert (await c.get("/v2/")).status_code == 200


async def test_a_bearer_header_on_the_token_endpoint_is_not_a_login(
    app: object, client: httpx.AsyncClient
):
    token = await access_token(client, "repository:x:pull,push")
    async with caller(app) as c:
        resp = await get_token(c, "repository:x:pull,push", headers=bearer(token))
    assert resp.status_code == 401


async def test_a_repository_token_cannot_shadow_an_identitys_login(
    app: object, client: httpx.AsyncClient
):
    """A registry Contributor may create tokens, but naming one after an identity must
    not lock that identity (here the deployment owner) out of the registry."""
    mallory = await member(client, "mallory", "Contributor")
    alice = await member(client, "alice", "AcrPull")
    async with caller(app, mallory.auth) as c:
        for name in ("owner", "alice"):
            resp = await c.post(
                "/api/registries/default/tokens",
                json={"name": name, "scopeMap": "_repositories_pull"},
            )
            assert resp.status_code in (201, 409), resp.text
    problems = []
    for auth in (("owner", OWNER_PASSWORD), alice.auth):
        async with caller(app, auth) as c:
            status = (await c.get("/v2/")).status_code
            if status != 200:
                problems.append(f"{auth[0]}: /v2/ -> {status}")
            token_status = (await get_token(c, "repository:x:pull")).status_code
            if token_status != 200:
                problems.append(f"{auth[0]}: token -> {token_status}")
    assert problems == []
