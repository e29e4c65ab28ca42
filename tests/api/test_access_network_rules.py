"""Network rules (Premium only): with defaultAction Deny only listed addresses reach the
registry's data plane and token service; the management API stays reachable."""

from __future__ import annotations

import httpx

from .access_helpers import (
    LOOPBACK,
    assert_api_error,
    caller,
    create_registry,
    enable_admin,
    patch_registry,
    pull_works,
    seed,
)
from .helpers import OWNER_PASSWORD, assert_oci_error

OWNER = ("owner", OWNER_PASSWORD)
DENY = {"networkRuleSet": {"defaultAction": "Deny"}}


async def _deny_all(client: httpx.AsyncClient) -> None:
    described = await patch_registry(client, {"sku": "Premium", **DENY})
    assert described["networkRuleSet"] == {"defaultAction": "Deny", "ipRules": []}


async def _everything_denied(c: httpx.AsyncClient) -> None:
    for method, path in [
        ("GET", "/v2/"),
        ("GET", "/v2/samples/hello/manifests/v1"),
        ("GET", "/v2/_catalog"),
        ("POST", "/v2/samples/hello/blobs/uploads/"),
        ("GET", "/oauth2/token?service=localhost:5000&scope=repository:samples/hello:pull"),
    ]:
        resp = await c.request(method, path)
        assert_oci_error(resp, 403, "DENIED")


async def test_the_test_client_address_is_loopback(app: object, client: httpx.AsyncClient):
    """The rules below rely on it: httpx's ASGI transport presents 127.0.0.1."""
    await _deny_all(client)
    await client.post(
        "/api/registries/default/networkRules", json={"ipAddressOrRange": f"{LOOPBACK}/32"}
    )
    assert (await client.get("/v2/")).status_code == 200


async def test_deny_by_default_refuses_every_data_plane_request(
    app: object, client: httpx.AsyncClient
):
    await seed(client, "samples/hello", "img", "v1")
    await _deny_all(client)
    async with caller(app, OWNER) as c:
        await _everything_denied(c)
    async with caller(app) as c:
        await _everything_denied(c)


async def test_deny_by_default_also_refuses_the_admin_user_and_bearer_tokens(
    app: object, client: httpx.AsyncClient
):
    passwords = await enable_admin(client)
    token = (await client.get("/oauth2/token?service=localhost:5000")).json()["token"]
    await _deny_all(client)
    async with caller(app, ("default", passwords["password"])) as c:
        await _everything_denied(c)
    async with caller(app, bearer=token) as c:
        await _everything_denied(c)


async def test_an_allowed_range_takes_effect_at_once(app: object, client: httpx.AsyncClient):
    image = await seed(client, "samples/hello", "img", "v1")
    await _deny_all(client)
    resp = await client.post(
        "/api/registries/default/networkRules", json={"ipAddressOrRange": "127.0.0.0/8"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["ipRules"] == [{"action": "Allow", "ipAddressOrRange": "127.0.0.0/8"}]
    async with caller(app, OWNER) as c:
        assert await pull_works(c, "samples/hello", image, "v1")
        assert (await c.get("/oauth2/token?service=localhost:5000")).status_code == 200
    async with caller(app, OWNER, address="10.1.2.3") as c:
        await _everything_denied(c)


async def test_removing_the_rule_denies_again_at_once(app: object, client: httpx.AsyncClient):
    await _deny_all(client)
    await client.post(
        "/api/registries/default/networkRules", json={"ipAddressOrRange": "127.0.0.1"}
    )
    assert (await client.get("/v2/")).status_code == 200
    listed = await client.get("/api/registries/default/networkRules")
    assert listed.json()["ipRules"] == [{"action": "Allow", "ipAddressOrRange": "127.0.0.1/32"}]
    resp = await client.delete(
        "/api/registries/default/networkRules", params={"ipAddressOrRange": "127.0.0.1/32"}
    )
    assert resp.status_code == 204, resp.text
    assert_oci_error(await client.get("/v2/"), 403, "DENIED")
    missing = await client.delete(
        "/api/registries/default/networkRules", params={"ipAddressOrRange": "127.0.0.1/32"}
    )
    assert_api_error(missing, 404)


async def test_the_management_api_stays_reachable_so_the_owner_can_undo_it(
    app: object, client: httpx.AsyncClient
):
    await _deny_all(client)
    assert (await client.get("/api/registries/default")).status_code == 200
    described = await patch_registry(client, {"networkRuleSet": {"defaultAction": "Allow"}})
    assert described["networkRuleSet"]["defaultAction"] == "Allow"
    assert (await client.get("/v2/")).status_code == 200


async def test_network_rules_need_the_premium_sku(client: httpx.AsyncClient):
    resp = await client.patch("/api/registries/default", json=DENY)
    assert_api_error(resp, 400, "SkuNotSupported")
    added = await client.post(
        "/api/registries/default/networkRules", json={"ipAddressOrRange": "10.0.0.0/8"}
    )
    assert_api_error(added, 400, "SkuNotSupported")
    assert (await client.get("/v2/")).status_code == 200


async def test_network_rules_of_one_registry_do_not_affect_another(
    app: object, client: httpx.AsyncClient
):
    await create_registry(client, "secondreg", sku="Premium")
    await patch_registry(client, DENY, "secondreg")
    assert (await client.get("/v2/")).status_code == 200
    async with caller(app, OWNER, base_url="http://secondreg.localhost:5000") as c:
        assert_oci_error(await c.get("/v2/"), 403, "DENIED")


async def test_a_malformed_rule_is_refused(client: httpx.AsyncClient):
    await patch_registry(client, {"sku": "Premium"})
    for value in ("not-an-ip", "300.1.1.1", "10.0.0.0/33", "", "127.0.0.1; DROP TABLE x"):
        resp = await client.post(
            "/api/registries/default/networkRules", json={"ipAddressOrRange": value}
        )
        assert_api_error(resp, 400)
    bad_action = await client.patch(
        "/api/registries/default", json={"networkRuleSet": {"defaultAction": "Maybe"}}
    )
    assert_api_error(bad_action, 400)
    not_object = await client.patch("/api/registries/default", json={"networkRuleSet": "Deny"})
    assert_api_error(not_object, 400)


async def test_forwarded_for_headers_are_not_believed_from_an_untrusted_peer(
    app: object, client: httpx.AsyncClient
):
    await _deny_all(client)
    await client.post(
        "/api/registries/default/networkRules", json={"ipAddressOrRange": "203.0.113.7"}
    )
    async with caller(app, OWNER) as c:
        resp = await c.get("/v2/", headers={"X-Forwarded-For": "203.0.113.7"})
    assert_oci_error(resp, 403, "DENIED")


async def test_a_registry_denying_by_default_cannot_move_off_premium(client: httpx.AsyncClient):
    """As anonymous pull cannot stay on a Basic registry, Deny cannot stay below Premium."""
    await _deny_all(client)
    resp = await client.patch("/api/registries/default", json={"sku": "Standard"})
    assert_api_error(resp, 400, "SkuNotSupported")
    described = (await client.get("/api/registries/default")).json()
    assert described["sku"]["name"] == "Premium"
