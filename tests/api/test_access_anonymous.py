"""Anonymous pull: off by default; on Standard and Premium it allows pull and nothing else."""

from __future__ import annotations

import httpx

from .access_helpers import (
    assert_api_error,
    assert_challenge,
    caller,
    create_registry,
    get_token,
    granted,
    patch_registry,
    pull_works,
    seed,
)
from .helpers import sha256


async def test_anonymous_pull_is_off_by_default(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
):
    image = await seed(client, "samples/hello", "img", "v1")
    assert_challenge(
        await anonymous.get("/v2/samples/hello/manifests/v1"),
        scope="repository:samples/hello:pull",
    )
    assert_challenge(await anonymous.get(f"/v2/samples/hello/blobs/{image.layers[0].digest}"))
    resp = await get_token(anonymous, "repository:samples/hello:pull")
    assert resp.status_code == 200, resp.text
    assert granted(resp.json()["token"]) == {}
    assert "refresh_token" not in resp.json()


async def test_enabling_anonymous_pull_allows_pull_without_credentials(
    app: object, anonymous: httpx.AsyncClient, client: httpx.AsyncClient
):
    image = await seed(client, "samples/hello", "img", "v1")
    described = await patch_registry(client, {"anonymousPullEnabled": True})
    assert described["anonymousPullEnabled"] is True
    assert await pull_works(anonymous, "samples/hello", image, "v1")
    tags = await anonymous.get("/v2/samples/hello/tags/list")
    assert tags.status_code == 200
    assert tags.json()["tags"] == ["v1"]


async def test_anonymous_pull_through_the_docker_token_flow(
    app: object, anonymous: httpx.AsyncClient, client: httpx.AsyncClient
):
    image = await seed(client, "samples/hello", "img", "v1")
    await patch_registry(client, {"anonymousPullEnabled": True})
    resp = await get_token(anonymous, "repository:samples/hello:pull,push,delete", offline=True)
    assert resp.status_code == 200, resp.text
    token = resp.json()["token"]
    assert granted(token) == {"repository:samples/hello": {"pull"}}
    assert "refresh_token" not in resp.json()
    async with caller(app, bearer=token) as c:
        assert await pull_works(c, "samples/hello", image, "v1")
        assert_challenge(
            await c.post("/v2/samples/hello/blobs/uploads/"),
            scope="repository:samples/hello:pull,push",
        )


async def test_anonymous_push_delete_and_catalog_stay_refused(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
):
    image = await seed(client, "samples/hello", "img", "v1")
    await patch_registry(client, {"anonymousPullEnabled": True})
    assert_challenge(
        await anonymous.post("/v2/samples/hello/blobs/uploads/"),
        scope="repository:samples/hello:pull,push",
    )
    assert_challenge(
        await anonymous.put(
            "/v2/samples/hello/manifests/v2",
            content=image.manifest,
            headers={"Content-Type": image.media_type},
        )
    )
    assert_challenge(
        await anonymous.delete(f"/v2/samples/hello/manifests/{image.digest}"),
        scope="repository:samples/hello:delete",
    )
    assert_challenge(await anonymous.delete(f"/v2/samples/hello/blobs/{image.layers[0].digest}"))
    assert_challenge(await anonymous.get("/v2/_catalog"), scope="registry:catalog:*")
    catalog = await get_token(anonymous, "registry:catalog:*")
    assert granted(catalog.json()["token"]) == {}
    # Nothing changed.
    assert (await anonymous.get("/v2/samples/hello/manifests/v1")).status_code == 200


async def test_anonymous_callers_have_no_management_access(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
):
    await patch_registry(client, {"anonymousPullEnabled": True})
    for path in ("/api/registries/default", "/api/me", "/api/identities"):
        assert_api_error(await anonymous.get(path), 401)


async def test_disabling_anonymous_pull_takes_effect_at_once_even_for_issued_tokens(
    app: object, anonymous: httpx.AsyncClient, client: httpx.AsyncClient
):
    await seed(client, "samples/hello", "img", "v1")
    await patch_registry(client, {"anonymousPullEnabled": True})
    token = (await get_token(anonymous, "repository:samples/hello:pull")).json()["token"]
    assert (await anonymous.get("/v2/samples/hello/manifests/v1")).status_code == 200
    await patch_registry(client, {"anonymousPullEnabled": False})
    assert_challenge(await anonymous.get("/v2/samples/hello/manifests/v1"))
    async with caller(app, bearer=token) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))


async def test_wrong_credentials_get_401_not_anonymous_access(
    app: object, client: httpx.AsyncClient
):
    image = await seed(client, "samples/hello", "img", "v1")
    await patch_registry(client, {"anonymousPullEnabled": True})
    async with caller(app, ("owner", "wrong-password")) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
        assert (await get_token(c, "repository:samples/hello:pull")).status_code == 401
    async with caller(app, ("nobody", "nothing-at-all")) as c:
        assert_challenge(await c.get(f"/v2/samples/hello/blobs/{image.layers[0].digest}"))


async def test_anonymous_pull_on_one_registry_does_not_open_another(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg")
    await patch_registry(client, {"anonymousPullEnabled": True}, "secondreg")
    await seed(client, "samples/hello", "img", "v1")
    async with caller(app) as c:
        assert_challenge(await c.get("/v2/samples/hello/manifests/v1"))
    async with caller(app, base_url="http://secondreg.localhost:5000") as c:
        assert (await c.get(f"/v2/samples/hello/blobs/{sha256(b'x')}")).status_code == 404


async def test_anonymous_pull_cannot_be_enabled_on_a_basic_registry(client: httpx.AsyncClient):
    await create_registry(client, "basicreg", sku="Basic")
    resp = await client.patch("/api/registries/basicreg", json={"anonymousPullEnabled": True})
    assert_api_error(resp, 400, "SkuNotSupported")
    described = (await client.get("/api/registries/basicreg")).json()
    assert described["anonymousPullEnabled"] is False


async def test_a_registry_with_anonymous_pull_cannot_move_to_basic(client: httpx.AsyncClient):
    await patch_registry(client, {"anonymousPullEnabled": True})
    resp = await client.patch("/api/registries/default", json={"sku": "Basic"})
    assert_api_error(resp, 400, "SkuNotSupported")
    both = await client.patch(
        "/api/registries/default", json={"sku": "Basic", "anonymousPullEnabled": True}
    )
    assert_api_error(both, 400, "SkuNotSupported")
    described = (await client.get("/api/registries/default")).json()
    assert described["sku"]["name"] == "Standard"
    assert described["anonymousPullEnabled"] is True


async def test_anonymous_pull_can_be_enabled_on_premium(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
):
    image = await seed(client, "samples/hello", "img", "v1")
    described = await patch_registry(client, {"sku": "Premium", "anonymousPullEnabled": True})
    assert described["sku"]["name"] == "Premium"
    assert await pull_works(anonymous, "samples/hello", image, "v1")
