"""`POST /api/registries/R/purge`: acr purge's selection, keep, untagged and locks."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .access_helpers import caller, member
from .helpers import make_image, make_index, push_image, push_manifest
from .test_storage_usage import used

DAY_MS = 86_400_000


async def tags(client: httpx.AsyncClient, repo: str) -> list[str]:
    resp = await client.get(f"/v2/{repo}/tags/list")
    return sorted(resp.json()["tags"] or []) if resp.status_code == 200 else []


async def purge(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await client.post("/api/registries/default/purge", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def test_old_tags_matching_the_filter_go_and_the_rest_stay(
    client: httpx.AsyncClient, clock: Any
) -> None:
    for repo in ("app", "app-old", "myapp"):
        await push_image(client, repo, make_image(f"{repo}-v1"), "v1")
        await push_image(client, repo, make_image(f"{repo}-v10"), "v10")
        await push_image(client, repo, make_image(f"{repo}-x"), "stable")
    clock.offset_ms = 3 * DAY_MS  # three days later, a new tag
    await push_image(client, "app", make_image("app-v11"), "v11")

    preview = await purge(client, filters=["app:v1"], ago="2d", dryRun=True)
    assert preview["deletedTags"] == ["app:v1", "app:v10"]
    assert await tags(client, "app") == ["stable", "v1", "v10", "v11"]

    report = await purge(client, filters=["app:v1"], ago="2d")
    assert report["deletedTags"] == ["app:v1", "app:v10"]
    assert await tags(client, "app") == ["stable", "v11"]  # v11 is too young
    assert await tags(client, "app-old") == ["stable", "v1", "v10"]  # the name is anchored
    assert await tags(client, "myapp") == ["stable", "v1", "v10"]
    await used(client)  # usage is exact after a purge


async def test_keep_spares_the_newest_matching_tags(client: httpx.AsyncClient, clock: Any) -> None:
    for day in range(5):
        clock.offset_ms = day * DAY_MS
        await push_image(client, "kept", make_image(f"kept-{day}"), f"build-{day}")
    clock.offset_ms = 10 * DAY_MS
    report = await purge(client, filters=["kept:^build-"], ago="1d", keep=2)
    assert report["deletedTags"] == ["kept:build-0", "kept:build-1", "kept:build-2"]
    assert await tags(client, "kept") == ["build-3", "build-4"]


async def test_untagged_manifests_go_but_index_children_and_referrers_stay(
    client: httpx.AsyncClient, clock: Any
) -> None:
    child = make_image("child")
    index = make_index([child])
    await push_image(client, "multi", index, "latest")
    lonely = make_image("lonely")
    await push_image(client, "multi", lonely)  # by digest: untagged from the start
    signed = make_image("signed")
    await push_image(client, "multi", signed, "signed")
    signature = make_image("signature", subject=signed, artifact_type="application/x-sig")
    await push_image(client, "multi", signature)
    old = make_image("old")
    await push_image(client, "multi", old, "old")
    clock.offset_ms = 2 * DAY_MS

    only = await purge(client, filters=["multi:.*"], ago="1d", untaggedOnly=True, dryRun=True)
    assert only["deletedTags"] == []
    assert only["deletedManifests"] == [f"multi@{lonely.digest}"]

    report = await purge(client, filters=["multi:^old$"], ago="1d", untagged=True)
    assert report["deletedTags"] == ["multi:old"]
    assert sorted(report["deletedManifests"]) == sorted(
        [f"multi@{lonely.digest}", f"multi@{old.digest}"]
    )
    for kept in (child, index, signed, signature):
        got = await client.get(f"/v2/multi/manifests/{kept.digest}")
        assert got.status_code == 200, kept.digest
    await used(client)


async def test_locked_items_are_skipped_unless_included(
    client: httpx.AsyncClient, clock: Any
) -> None:
    await push_image(client, "locked", make_image("locked-1"), "v1")
    await push_image(client, "locked", make_image("locked-2"), "v2")
    resp = await client.patch("/acr/v1/locked/_tags/v1", json={"deleteEnabled": False})
    assert resp.status_code == 200, resp.text
    clock.offset_ms = 2 * DAY_MS
    report = await purge(client, filters=["locked:.*"], ago="1d")
    assert report["deletedTags"] == ["locked:v2"]
    assert report["skippedLocked"] == ["locked:v1"]
    report = await purge(client, filters=["locked:.*"], ago="1d", includeLocked=True)
    assert report["deletedTags"] == ["locked:v1"]
    assert await tags(client, "locked") == []


@pytest.mark.parametrize(
    "body",
    [
        {"ago": "1d"},
        {"filters": [], "ago": "1d"},
        {"filters": "app:.*", "ago": "1d"},
        {"filters": ["app"], "ago": "1d"},
        {"filters": ["app:("], "ago": "1d"},
        {"filters": ["app:.*"]},
        {"filters": ["app:.*"], "ago": "1 day"},
        {"filters": ["app:.*"], "ago": "1d", "untagged": True, "untaggedOnly": True},
        {"filters": ["app:.*"], "ago": "1d", "keep": -1},
        {"filters": ["app:.*"], "ago": "1d", "concurrency": 0},
        {"filters": ["app:.*"] * 51, "ago": "1d"},
        {"filters": ["app:.*"], "ago": "1d", "dryRun": "yes"},
    ],
)
async def test_bad_input_is_refused(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    resp = await client.post("/api/registries/default/purge", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"]


async def test_purge_needs_write_rights_on_the_registry(
    app: object, client: httpx.AsyncClient
) -> None:
    puller = await member(client, "puller", "AcrPull", "default")
    async with caller(app, puller.auth) as c:
        resp = await c.post("/api/registries/default/purge", json={"filters": ["a:.*"], "ago": "0"})
        assert resp.status_code == 403, resp.text
    pushed = make_image("unlocked")
    await push_image(client, "anyone", pushed, "v1")
    assert (await push_manifest(client, "anyone", "v2", pushed.manifest)).status_code == 201
    report = await purge(client, filters=["anyone:.*"], ago="0")
    assert report["deletedTags"] == ["anyone:v1", "anyone:v2"]
