"""The retention policy for untagged manifests, on a timeline with an injected clock."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .access_helpers import caller, member
from .helpers import make_image, make_index, push_image
from .test_gc import collect, settings  # noqa: F401 - GC on demand only, no review delay
from .test_storage_usage import used

DAY_MS = 86_400_000


async def enable(client: httpx.AsyncClient, days: int) -> dict[str, Any]:
    resp = await client.patch(
        "/api/registries/default/retention", json={"status": "enabled", "days": days}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def present(client: httpx.AsyncClient, repo: str, digest: str) -> bool:
    return (await client.head(f"/v2/{repo}/manifests/{digest}")).status_code == 200


async def test_untagged_manifests_expire_after_the_days(
    client: httpx.AsyncClient, clock: Any
) -> None:
    before = make_image("untagged-before")
    await push_image(client, "ret", before, "old")
    assert (await client.delete("/v2/ret/manifests/old")).status_code == 202

    clock.offset_ms = 1000
    policy = await enable(client, 1)
    assert (policy["status"], policy["days"], policy["type"]) == (
        "enabled",
        1,
        "UntaggedManifests",
    )
    clock.offset_ms = 2000
    moved, current = make_image("moved"), make_image("current")
    await push_image(client, "ret", moved, "v1")
    await push_image(client, "ret", current, "v1")  # `moved` loses its only tag
    loose = make_image("loose")
    await push_image(client, "ret", loose)  # pushed by digest: untagged from the start
    locked = make_image("locked")
    await push_image(client, "ret", locked, "locked")
    resp = await client.patch(
        f"/acr/v1/ret/_manifests/{locked.digest}", json={"deleteEnabled": False}
    )
    assert resp.status_code == 200, resp.text
    assert (await client.delete("/v2/ret/manifests/locked")).status_code == 202
    child = make_image("child")
    index = make_index([child])
    await push_image(client, "ret", index, "multi")
    assert (await client.delete("/v2/ret/manifests/multi")).status_code == 202
    signature = make_image("signature", subject=current, artifact_type="application/x-sig")
    await push_image(client, "ret", signature)

    clock.offset_ms = DAY_MS // 2
    assert (await collect(client))["manifestsExpired"] == 0  # not a day yet

    clock.offset_ms = 2 * DAY_MS
    preview = await collect(client, dryRun=True)
    assert preview["manifestsExpired"] == 3
    report = await collect(client)
    assert report["manifestsExpired"] == 3
    for gone in (moved, loose, index):
        assert not await present(client, "ret", gone.digest)
    # Untagged before the policy, tagged, locked, or the subject still there: kept.
    for kept in (before, current, locked, signature):
        assert await present(client, "ret", kept.digest), kept.digest
    # The index's child, needed no more, goes on the next pass.
    assert (await collect(client))["manifestsExpired"] == 1
    assert not await present(client, "ret", child.digest)
    await used(client)


async def test_a_disabled_policy_expires_nothing_and_zero_days_expires_at_once(
    client: httpx.AsyncClient, clock: Any
) -> None:
    await enable(client, 0)
    resp = await client.patch("/api/registries/default/retention", json={"status": "disabled"})
    assert resp.json()["status"] == "disabled"
    image = make_image("disabled")
    await push_image(client, "ret0", image)
    clock.offset_ms = 400 * DAY_MS
    assert (await collect(client))["manifestsExpired"] == 0

    await enable(client, 0)
    clock.offset_ms += 1000
    fresh = make_image("fresh")
    await push_image(client, "ret0", fresh)
    clock.offset_ms += 1
    assert (await collect(client))["manifestsExpired"] == 1
    assert not await present(client, "ret0", fresh.digest)
    assert await present(client, "ret0", image.digest)  # untagged before the policy


@pytest.mark.parametrize(
    "body",
    [{}, {"status": "on"}, {"status": "enabled", "days": 366}, {"status": "enabled", "days": -1}],
)
async def test_bad_policy_input_is_refused(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    resp = await client.patch("/api/registries/default/retention", json=body)
    assert resp.status_code == 400, resp.text


async def test_only_writers_change_the_policy(app: object, client: httpx.AsyncClient) -> None:
    reader = await member(client, "reader", "Reader", "default")
    async with caller(app, reader.auth) as c:
        assert (await c.get("/api/registries/default/retention")).status_code == 200
        resp = await c.patch("/api/registries/default/retention", json={"status": "enabled"})
        assert resp.status_code == 403, resp.text
