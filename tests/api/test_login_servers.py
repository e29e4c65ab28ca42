"""Registries answer on `<name>.<domain>` and on the extra login servers an owner sets."""

from __future__ import annotations

import hashlib

import httpx


async def _push(client: httpx.AsyncClient, host: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp = await client.post(
        f"/v2/app/blobs/uploads/?digest={digest}", content=data, headers={"Host": host}
    )
    assert resp.status_code == 201, resp.text
    return digest


async def test_a_new_registry_answers_on_its_login_server_case_insensitively(
    client: httpx.AsyncClient,
):
    created = await client.post("/api/registries", json={"name": "TeamOne"})
    assert created.status_code == 201
    login = created.json()["loginServer"]
    assert login == "teamone.localhost:5000"
    digest = await _push(client, login.upper(), b"team one")
    assert (await client.get(f"/v2/app/blobs/{digest}", headers={"Host": login})).status_code == 200
    assert (await client.get(f"/v2/app/blobs/{digest}")).status_code == 404  # default registry


async def test_extra_login_servers_reach_the_registry_and_cannot_be_shared(
    client: httpx.AsyncClient,
):
    await client.post("/api/registries", json={"name": "teamtwo"})
    await client.post("/api/registries", json={"name": "teamthree"})
    updated = await client.patch(
        "/api/registries/teamtwo", json={"additionalLoginServers": ["registry.example.test"]}
    )
    assert updated.json()["additionalLoginServers"] == ["registry.example.test"]
    digest = await _push(client, "registry.example.test", b"team two")
    via_primary = await client.get(
        f"/v2/app/blobs/{digest}", headers={"Host": "teamtwo.localhost:5000"}
    )
    assert via_primary.status_code == 200

    taken = await client.patch(
        "/api/registries/teamthree", json={"additionalLoginServers": ["registry.example.test"]}
    )
    assert taken.status_code == 409
    bad = await client.patch(
        "/api/registries/teamthree", json={"additionalLoginServers": ["not a host"]}
    )
    assert bad.status_code == 400

    cleared = await client.patch("/api/registries/teamtwo", json={"additionalLoginServers": []})
    assert cleared.json()["additionalLoginServers"] == []
    gone = await client.get(f"/v2/app/blobs/{digest}", headers={"Host": "registry.example.test"})
    assert gone.status_code == 404  # the name now reaches the default registry
