"""Repository-scoped tokens and scope maps (ACR's `acr token` and `acr scope-map`)."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from .access_helpers import (
    access_token,
    api_problems,
    assert_api_error,
    assert_challenge,
    assert_denied,
    caller,
    create_registry,
    create_repo_token,
    get_token,
    granted,
    pull_works,
    push_works,
    seed,
)
from .helpers import make_image, push_image

HELLO_RW = [
    "repositories/samples/hello/content/read",
    "repositories/samples/hello/content/write",
]
DAY = 86_400


def _when(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def test_creating_a_token_shows_password1_and_password2_once(client: httpx.AsyncClient):
    resp = await client.post(
        "/api/registries/default/tokens", json={"name": "mytoken1", "actions": HELLO_RW}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["name"] == "mytoken1"
    assert body["status"] == "enabled"
    assert body["credentials"]["username"] == "mytoken1"
    passwords = body["credentials"]["passwords"]
    assert [p["name"] for p in passwords] == ["password1", "password2"]
    assert all(len(p["value"]) >= 16 for p in passwords)
    assert passwords[0]["value"] != passwords[1]["value"]

    shown = await client.get("/api/registries/default/tokens/mytoken1")
    assert shown.status_code == 200
    assert all("value" not in p for p in shown.json()["credentials"]["passwords"])
    listed = await client.get("/api/registries/default/tokens")
    assert [t["name"] for t in listed.json()] == ["mytoken1"]
    assert all("value" not in p for p in listed.json()[0]["credentials"]["passwords"])
    scope_map = await client.get(f"/api/registries/default/scopeMaps/{body['scopeMapName']}")
    assert scope_map.status_code == 200
    assert scope_map.json()["actions"] == HELLO_RW


async def test_a_token_pushes_and_pulls_its_repository_and_nothing_else(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(client, "mytoken1", actions=HELLO_RW)
    other = await seed(client, "samples/other", "other", "v1")
    async with caller(app, ("mytoken1", passwords["password1"])) as c:
        assert (await c.get("/v2/")).status_code == 200
        assert await push_works(c, "samples/hello", "v1")
        assert (await c.get("/v2/samples/hello/manifests/v1")).status_code == 200
        assert_denied(await c.get("/v2/samples/other/manifests/v1"), "content/read")
        assert_denied(await c.post("/v2/samples/other/blobs/uploads/"), "content/write")
        assert_denied(await c.delete("/v2/samples/hello/manifests/v1"), "content/delete")
        # content/read without metadata/read: no tag listing.
        assert_denied(await c.get("/v2/samples/hello/tags/list"), "metadata/read")
        assert_denied(await c.get("/v2/_catalog"))
        mount = await c.post(
            f"/v2/samples/hello/blobs/uploads/?mount={other.layers[0].digest}&from=samples/other"
        )
        assert mount.status_code == 202  # no read on the source: an upload, not a mount


async def test_a_token_gets_bearer_tokens_for_its_repository_only(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(client, "mytoken1", actions=HELLO_RW)
    async with caller(app) as c:
        resp = await get_token(
            c,
            "repository:samples/hello:pull,push,delete",
            "repository:samples/other:pull",
            "registry:catalog:*",
            auth=("mytoken1", passwords["password2"]),
        )
    assert resp.status_code == 200, resp.text
    # ACR: content/read is what `docker pull` needs, content/write what `docker push` needs.
    assert granted(resp.json()["token"]) == {"repository:samples/hello": {"pull", "push"}}


async def test_a_content_read_write_token_pushes_and_pulls_through_the_docker_token_flow(
    app: object, client: httpx.AsyncClient
):
    """What `docker login -u mytoken1` then `docker push` / `docker pull` do: every /v2/
    request carries a bearer token from the token endpoint, never Basic."""
    passwords = await create_repo_token(client, "mytoken1", actions=HELLO_RW)
    async with caller(app) as c:
        token = await access_token(
            c, "repository:samples/hello:pull,push", auth=("mytoken1", passwords["password1"])
        )
    image = make_image("docker-flow")
    async with caller(app, bearer=token) as c:
        start = await c.post("/v2/samples/hello/blobs/uploads/")
        assert start.status_code == 202, start.text
        await push_image(c, "samples/hello", image, "v1")
        assert await pull_works(c, "samples/hello", image, "v1")


async def test_a_token_with_read_and_metadata_read_gets_the_pull_scope(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(
        client,
        "mytoken1",
        actions=[*HELLO_RW, "repositories/samples/hello/metadata/read"],
    )
    image = await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        token = await access_token(
            c, "repository:samples/hello:pull,push", auth=("mytoken1", passwords["password1"])
        )
    assert granted(token) == {"repository:samples/hello": {"pull", "push"}}
    async with caller(app, bearer=token) as c:
        assert await pull_works(c, "samples/hello", image, "v1")
        assert (await c.get("/v2/samples/hello/tags/list")).json()["tags"] == ["v1"]


async def test_a_prefix_wildcard_covers_the_repositories_below_it(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(
        client,
        "prefixed",
        actions=["repositories/samples/*/content/read", "repositories/samples/*/metadata/read"],
    )
    repos = ["samples/a", "samples/b/c", "samplesx/a", "other/samples/a"]
    for repo in repos:
        await seed(client, repo, repo, "v1")
    async with caller(app, ("prefixed", passwords["password1"])) as c:
        statuses = {r: (await c.get(f"/v2/{r}/manifests/v1")).status_code for r in repos}
        assert_denied(await c.post("/v2/samples/a/blobs/uploads/"))
    assert statuses == {
        "samples/a": 200,
        "samples/b/c": 200,
        "samplesx/a": 403,
        "other/samples/a": 403,
    }


async def test_a_star_covers_every_repository_but_not_the_catalog(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(
        client, "everything", actions=["repositories/*/content/read"]
    )
    for repo in ("a", "b/c"):
        await seed(client, repo, repo, "v1")
    async with caller(app, ("everything", passwords["password1"])) as c:
        assert (await c.get("/v2/a/manifests/v1")).status_code == 200
        assert (await c.get("/v2/b/c/manifests/v1")).status_code == 200
        assert_denied(await c.post("/v2/a/blobs/uploads/"))
        assert_denied(await c.get("/v2/_catalog"))


async def test_the_system_scope_maps_exist_and_cannot_be_changed(client: httpx.AsyncClient):
    resp = await client.get("/api/registries/default/scopeMaps")
    assert resp.status_code == 200
    system = {m["name"]: m for m in resp.json() if m["type"] == "SystemDefined"}
    assert set(system) == {"_repositories_pull", "_repositories_push", "_repositories_admin"}
    for name in system:
        patched = await client.patch(
            f"/api/registries/default/scopeMaps/{name}",
            json={"addActions": ["repositories/*/content/delete"]},
        )
        assert_api_error(patched, 409)
        assert_api_error(await client.delete(f"/api/registries/default/scopeMaps/{name}"), 409)


@pytest.mark.parametrize(
    ("scope_map", "pull", "push", "delete"),
    [
        ("_repositories_pull", True, False, False),
        ("_repositories_push", True, True, False),
        ("_repositories_admin", True, True, True),
    ],
)
async def test_a_token_on_a_system_scope_map_may_what_the_map_says(
    app: object, client: httpx.AsyncClient, scope_map: str, pull: bool, push: bool, delete: bool
):
    passwords = await create_repo_token(client, "systoken", scope_map=scope_map)
    image = await seed(client, "any/repo", "img", "v1")
    async with caller(app, ("systoken", passwords["password1"])) as c:
        assert await pull_works(c, "any/repo", image, "v1") is pull
        assert ((await c.get("/v2/any/repo/tags/list")).status_code == 200) is pull
        assert await push_works(c, "another/repo", "v2") is push
        deleted = await c.delete(f"/v2/any/repo/manifests/{image.digest}")
        assert deleted.status_code == (202 if delete else 403)
        assert_denied(await c.get("/v2/_catalog"))


async def test_disabling_a_token_stops_it_at_once_including_issued_bearer_tokens(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(client, "mytoken1", scope_map="_repositories_pull")
    image = await seed(client, "samples/hello", "img", "v1")
    auth = ("mytoken1", passwords["password1"])
    async with caller(app) as c:
        token = await access_token(c, "repository:samples/hello:pull", auth=auth)
    async with caller(app, bearer=token) as c:
        assert await pull_works(c, "samples/hello", image, "v1")

    resp = await client.patch(
        "/api/registries/default/tokens/mytoken1", json={"status": "disabled"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "disabled"

    async with caller(app, bearer=token) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
    async with caller(app, auth) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
        assert (await get_token(c, "repository:samples/hello:pull")).status_code == 401

    await client.patch("/api/registries/default/tokens/mytoken1", json={"status": "enabled"})
    async with caller(app, auth) as c:
        assert await pull_works(c, "samples/hello", image, "v1")


async def test_a_token_created_disabled_cannot_sign_in(app: object, client: httpx.AsyncClient):
    passwords = await create_repo_token(
        client, "sleeping", scope_map="_repositories_pull", status="disabled"
    )
    async with caller(app, ("sleeping", passwords["password1"])) as c:
        assert_challenge(await c.get("/v2/"))


async def test_deleting_a_token_stops_it_at_once(app: object, client: httpx.AsyncClient):
    passwords = await create_repo_token(client, "mytoken1", scope_map="_repositories_pull")
    auth = ("mytoken1", passwords["password1"])
    async with caller(app, auth) as c:
        assert (await c.get("/v2/")).status_code == 200
        token = await access_token(c, "repository:x:pull")
    resp = await client.delete("/api/registries/default/tokens/mytoken1")
    assert resp.status_code == 204
    async with caller(app, auth) as c:
        assert_challenge(await c.get("/v2/"))
    async with caller(app, bearer=token) as c:
        assert_challenge(await c.get("/v2/x/tags/list"))


async def test_regenerating_password1_stops_the_old_one_and_keeps_password2(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(client, "mytoken1", scope_map="_repositories_pull")
    async with caller(app, ("mytoken1", passwords["password1"])) as c:
        assert (await c.get("/v2/")).status_code == 200
    resp = await client.post(
        "/api/registries/default/tokens/mytoken1/credentials", json={"name": "password1"}
    )
    assert resp.status_code == 200, resp.text
    regenerated = resp.json()["passwords"]
    assert [p["name"] for p in regenerated] == ["password1"]
    new_password1 = regenerated[0]["value"]
    assert new_password1 != passwords["password1"]

    async with caller(app, ("mytoken1", passwords["password1"])) as c:
        assert_challenge(await c.get("/v2/"))
    for password in (passwords["password2"], new_password1):
        async with caller(app, ("mytoken1", password)) as c:
            assert (await c.get("/v2/")).status_code == 200


async def test_regenerating_both_passwords_stops_both_old_ones(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(client, "mytoken1", scope_map="_repositories_pull")
    resp = await client.post("/api/registries/default/tokens/mytoken1/credentials", json={})
    assert resp.status_code == 200, resp.text
    assert [p["name"] for p in resp.json()["passwords"]] == ["password1", "password2"]
    for password in passwords.values():
        async with caller(app, ("mytoken1", password)) as c:
            assert_challenge(await c.get("/v2/"))


async def test_an_expiry_in_days_is_accepted_and_shown(app: object, client: httpx.AsyncClient):
    resp = await client.post(
        "/api/registries/default/tokens",
        json={"name": "shortlived", "scopeMap": "_repositories_pull", "expirationInDays": 30},
    )
    assert resp.status_code == 201, resp.text
    now = time.time()
    for p in resp.json()["credentials"]["passwords"]:
        assert abs(_when(p["expiry"]) - (now + 30 * DAY)) < 120, p
    async with caller(
        app, ("shortlived", resp.json()["credentials"]["passwords"][0]["value"])
    ) as c:
        assert (await c.get("/v2/")).status_code == 200
    regenerated = await client.post(
        "/api/registries/default/tokens/shortlived/credentials",
        json={"name": "password2", "expirationInDays": 1},
    )
    assert regenerated.status_code == 200, regenerated.text
    assert abs(_when(regenerated.json()["passwords"][0]["expiry"]) - (now + DAY)) < 120


async def test_an_invalid_expiry_in_days_is_refused_and_creates_nothing(
    client: httpx.AsyncClient,
):
    problems = []
    for days in (0, -1, 3651, "30", True, 1.5):
        resp = await client.post(
            "/api/registries/default/tokens",
            json={"name": "badexpiry", "scopeMap": "_repositories_pull", "expirationInDays": days},
        )
        if resp.status_code != 400:
            problems.append(f"expirationInDays={days!r}: {resp.status_code} {resp.text[:100]}")
        left = await client.get("/api/registries/default/tokens/badexpiry")
        if left.status_code != 404:
            problems.append(f"expirationInDays={days!r}: a token was left behind")
            await client.delete("/api/registries/default/tokens/badexpiry")
    assert problems == []


async def test_a_refused_token_leaves_no_scope_map_behind(client: httpx.AsyncClient):
    body = {"name": "mytoken1", "actions": HELLO_RW, "status": "sleeping"}
    assert_api_error(await client.post("/api/registries/default/tokens", json=body), 400)
    maps = (await client.get("/api/registries/default/scopeMaps")).json()
    assert [m["name"] for m in maps if m["type"] == "UserDefined"] == []
    retry = await client.post(
        "/api/registries/default/tokens", json={"name": "mytoken1", "actions": HELLO_RW}
    )
    assert retry.status_code == 201, retry.text


async def test_a_password_past_its_expiry_no_longer_signs_in(
    app: object, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    passwords = await create_repo_token(
        client, "shortlived", scope_map="_repositories_pull", expirationInDays=1
    )
    async with caller(app, ("shortlived", passwords["password2"])) as c:
        assert (await c.get("/v2/")).status_code == 200
    from haven.services import access as access_module

    real_now_ms = access_module.now_ms
    monkeypatch.setattr(access_module, "now_ms", lambda: real_now_ms() + 2 * DAY * 1000)
    async with caller(app, ("shortlived", passwords["password1"])) as c:
        assert_challenge(await c.get("/v2/"))


async def test_a_password_that_expires_after_being_used_stops_too(
    app: object, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    """A successful login must not be remembered past the password's expiry."""
    passwords = await create_repo_token(
        client, "shortlived", scope_map="_repositories_pull", expirationInDays=1
    )
    auth = ("shortlived", passwords["password1"])
    async with caller(app, auth) as c:
        assert (await c.get("/v2/")).status_code == 200
    from haven.services import access as access_module

    real_now_ms = access_module.now_ms
    monkeypatch.setattr(access_module, "now_ms", lambda: real_now_ms() + 2 * DAY * 1000)
    async with caller(app, auth) as c:
        assert_challenge(await c.get("/v2/"))


async def test_changing_a_tokens_scope_map_takes_effect_at_once(
    app: object, client: httpx.AsyncClient
):
    passwords = await create_repo_token(client, "mytoken1", scope_map="_repositories_pull")
    auth = ("mytoken1", passwords["password1"])
    async with caller(app, auth) as c:
        assert_denied(await c.post("/v2/x/blobs/uploads/"))
    resp = await client.patch(
        "/api/registries/default/tokens/mytoken1", json={"scopeMap": "_repositories_push"}
    )
    assert resp.status_code == 200, resp.text
    async with caller(app, auth) as c:
        assert (await c.post("/v2/x/blobs/uploads/")).status_code == 202


async def test_changing_a_scope_maps_actions_takes_effect_at_once(
    app: object, client: httpx.AsyncClient
):
    created = await client.post(
        "/api/registries/default/scopeMaps",
        json={"name": "mymap", "actions": ["repositories/x/content/read"]},
    )
    assert created.status_code == 201, created.text
    passwords = await create_repo_token(client, "mytoken1", scope_map="mymap")
    auth = ("mytoken1", passwords["password1"])
    async with caller(app, auth) as c:
        assert_denied(await c.post("/v2/x/blobs/uploads/"))
    patched = await client.patch(
        "/api/registries/default/scopeMaps/mymap",
        json={"addActions": ["repositories/x/content/write"]},
    )
    assert patched.status_code == 200, patched.text
    async with caller(app, auth) as c:
        assert (await c.post("/v2/x/blobs/uploads/")).status_code == 202
    in_use = await client.delete("/api/registries/default/scopeMaps/mymap")
    assert_api_error(in_use, 409)


async def test_a_scope_map_action_must_be_well_formed(client: httpx.AsyncClient):
    actions = [
        "repositories/x/content/fly",
        "repo/x/content/read",
        "repositories/../content/read",
        "repositories/X/content/read",
        "repositories/x'--/content/read",
        "repositories/content/read",
        "",
        7,
    ]
    requests = [
        ("POST", "/api/registries/default/tokens", {"name": "badtoken", "actions": [action]})
        for action in actions
    ]
    requests += [
        ("POST", "/api/registries/default/scopeMaps", {"name": "badmap", "actions": [action]})
        for action in actions
    ]
    requests.append(
        ("POST", "/api/registries/default/scopeMaps", {"name": "badmap", "actions": []})
    )
    assert await api_problems(client, requests, 400) == []


async def test_a_token_name_must_be_5_to_50_letters_digits_or_dashes(client: httpx.AsyncClient):
    requests = [
        ("POST", "/api/registries/default/tokens", {"name": name, "scopeMap": "_repositories_pull"})
        for name in ("abcd", "a" * 51, "bad_name", "bad name", "", "ünïcode")
    ]
    assert await api_problems(client, requests, 400) == []


async def test_a_duplicate_token_name_is_refused(client: httpx.AsyncClient):
    await create_repo_token(client, "mytoken1", scope_map="_repositories_pull")
    resp = await client.post(
        "/api/registries/default/tokens",
        json={"name": "mytoken1", "scopeMap": "_repositories_push"},
    )
    assert_api_error(resp, 409)


async def test_a_token_has_no_management_rights(app: object, client: httpx.AsyncClient):
    passwords = await create_repo_token(client, "mytoken1", scope_map="_repositories_admin")
    async with caller(app, ("mytoken1", passwords["password1"])) as c:
        assert (await c.get("/api/registries/default")).status_code == 401
        assert (await c.get("/api/me")).status_code == 401


async def test_a_token_of_another_registry_does_not_sign_in_here(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    passwords = await create_repo_token(
        client, "mytoken1", scope_map="_repositories_admin", registry="secondreg"
    )
    auth = ("mytoken1", passwords["password1"])
    async with caller(app, auth, base_url="http://secondreg.localhost:5000") as c:
        assert (await c.get("/v2/")).status_code == 200
    async with caller(app, auth) as c:
        assert_challenge(await c.get("/v2/"))
