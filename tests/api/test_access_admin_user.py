"""The admin user: off by default, two passwords, renewal, and switching it off at once."""

from __future__ import annotations

import httpx

from .access_helpers import (
    REFRESH_USERNAME,
    access_token,
    assert_api_error,
    assert_challenge,
    caller,
    create_registry,
    enable_admin,
    get_token,
    granted,
    patch_registry,
    seed,
)
from .helpers import OWNER_PASSWORD, make_image, push_image

ENABLE_HINT = "Run 'haven registry update -n default --admin-enabled true' to enable admin first."


async def test_the_admin_user_is_disabled_by_default(app: object, client: httpx.AsyncClient):
    described = (await client.get("/api/registries/default")).json()
    assert described["adminUserEnabled"] is False
    for password in ("anything", "", OWNER_PASSWORD):
        async with caller(app, ("default", password)) as c:
            assert_challenge(await c.get("/v2/"))
        async with caller(app) as c:
            resp = await get_token(c, "repository:x:pull", auth=("default", password))
            assert resp.status_code == 401


async def test_the_credentials_endpoint_answers_409_with_the_hint_while_disabled(
    client: httpx.AsyncClient,
):
    resp = await client.get("/api/registries/default/credentials")
    message = assert_api_error(resp, 409)
    assert message == ENABLE_HINT
    renew = await client.post(
        "/api/registries/default/credentials/renew", json={"passwordName": "password2"}
    )
    assert assert_api_error(renew, 409) == ENABLE_HINT


async def test_enabling_the_admin_user_shows_two_passwords(client: httpx.AsyncClient):
    described = await patch_registry(client, {"adminUserEnabled": True})
    assert described["adminUserEnabled"] is True
    resp = await client.get("/api/registries/default/credentials")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["username"] == "default"
    assert [p["name"] for p in body["passwords"]] == ["password", "password2"]
    values = [p["value"] for p in body["passwords"]]
    assert all(isinstance(v, str) and len(v) >= 16 for v in values)
    assert values[0] != values[1]
    # Shown again, unchanged, as ACR does.
    again = (await client.get("/api/registries/default/credentials")).json()
    assert again == body


async def test_both_admin_passwords_push_and_pull(app: object, client: httpx.AsyncClient):
    passwords = await enable_admin(client)
    for name, password in passwords.items():
        image = make_image(f"admin/{name}")
        async with caller(app, ("default", password)) as c:
            await push_image(c, "samples/hello", image, name)
            got = await c.get(f"/v2/samples/hello/manifests/{name}")
            assert got.status_code == 200
            assert got.content == image.manifest
            assert (await c.get("/v2/_catalog")).json() == {"repositories": ["samples/hello"]}
            assert (await c.delete(f"/v2/samples/hello/manifests/{name}")).status_code == 202


async def test_the_admin_username_matches_case_insensitively(
    app: object, client: httpx.AsyncClient
):
    passwords = await enable_admin(client)
    async with caller(app, ("DEFAULT", passwords["password"])) as c:
        assert (await c.get("/v2/")).status_code == 200


async def test_the_admin_user_gets_tokens_with_every_action(app: object, client: httpx.AsyncClient):
    passwords = await enable_admin(client)
    async with caller(app) as c:
        resp = await get_token(
            c,
            "repository:a/b:pull,push,delete",
            "registry:catalog:*",
            auth=("default", passwords["password2"]),
            offline=True,
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert granted(body["token"]) == {
        "repository:a/b": {"pull", "push", "delete"},
        "registry:catalog": {"*"},
    }
    async with caller(app, (REFRESH_USERNAME, body["refresh_token"])) as c:
        assert (await c.get("/v2/")).status_code == 200


async def test_the_admin_user_has_no_management_rights(app: object, client: httpx.AsyncClient):
    passwords = await enable_admin(client)
    async with caller(app, ("default", passwords["password"])) as c:
        assert (await c.get("/api/registries/default")).status_code == 401
        assert (await c.get("/api/registries/default/credentials")).status_code == 401


async def test_renewing_password2_stops_the_old_one_at_once_and_keeps_password(
    app: object, client: httpx.AsyncClient
):
    passwords = await enable_admin(client)
    await seed(client, "samples/hello", "img", "v1")
    async with caller(app, ("default", passwords["password2"])) as old:
        assert (await old.get("/v2/samples/hello/manifests/v1")).status_code == 200
        old_token = await access_token(old, "repository:samples/hello:pull")

        resp = await client.post(
            "/api/registries/default/credentials/renew", json={"passwordName": "password2"}
        )
        assert resp.status_code == 200, resp.text
        renewed = {p["name"]: p["value"] for p in resp.json()["passwords"]}
        assert renewed["password"] == passwords["password"]
        assert renewed["password2"] != passwords["password2"]

        assert_challenge(await old.get("/v2/samples/hello/manifests/v1"))
    async with caller(app, bearer=old_token) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
    for password in (passwords["password"], renewed["password2"]):
        async with caller(app, ("default", password)) as c:
            assert (await c.get("/v2/samples/hello/manifests/v1")).status_code == 200


async def test_renewing_an_unknown_password_name_is_refused(client: httpx.AsyncClient):
    await enable_admin(client)
    for body in ({"passwordName": "password3"}, {}, {"passwordName": 2}):
        resp = await client.post("/api/registries/default/credentials/renew", json=body)
        assert_api_error(resp, 400)


async def test_disabling_the_admin_user_stops_its_logins_and_tokens_at_once(
    app: object, client: httpx.AsyncClient
):
    passwords = await enable_admin(client)
    await seed(client, "samples/hello", "img", "v1")
    admin = ("default", passwords["password"])
    async with caller(app, admin) as c:
        assert (await c.get("/v2/samples/hello/manifests/v1")).status_code == 200
        token = await access_token(c, "repository:samples/hello:pull")
        refresh = (await get_token(c, offline=True)).json()["refresh_token"]
    async with caller(app, bearer=token) as c:
        assert (await c.get("/v2/samples/hello/manifests/v1")).status_code == 200

    described = await patch_registry(client, {"adminUserEnabled": False})
    assert described["adminUserEnabled"] is False

    async with caller(app, admin) as c:
        assert_challenge(await c.get("/v2/"))
        assert (await get_token(c, "repository:samples/hello:pull")).status_code == 401
    async with caller(app, bearer=token) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
    async with caller(app, (REFRESH_USERNAME, refresh)) as c:
        assert_challenge(await c.get("/v2/"))
    resp = await client.get("/api/registries/default/credentials")
    assert assert_api_error(resp, 409, "AdminUserDisabled") == ENABLE_HINT


async def test_the_admin_user_of_one_registry_cannot_sign_in_to_another(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    await enable_admin(client, "default")
    passwords = await enable_admin(client, "secondreg")
    async with caller(app, ("secondreg", passwords["password"])) as c:
        assert_challenge(await c.get("/v2/"))
    async with caller(
        app, ("secondreg", passwords["password"]), base_url="http://secondreg.localhost:5000"
    ) as c:
        assert (await c.get("/v2/")).status_code == 200
        token = await access_token(c, "repository:x:pull", service="secondreg.localhost:5000")
    async with caller(app, bearer=token) as c:
        assert_challenge(await c.get("/v2/x/tags/list"))
