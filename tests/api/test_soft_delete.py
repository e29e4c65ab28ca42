"""Soft delete, as ACR's soft-delete policy: deleted manifests and tags are kept for the
policy's days, listable under `/acr/v1/_deleted/` and restorable, counted in usage and
never garbage collected until they are purged. Timelines run on the injected clock."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import pytest

from haven.web.app import HavenApp

from .access_helpers import (
    access_token,
    assert_api_error,
    assert_challenge,
    assert_denied,
    caller,
    create_registry,
    create_repo_token,
    member,
)
from .helpers import (
    OWNER_PASSWORD,
    Manifest,
    assert_oci_error,
    image_of,
    layer,
    make_image,
    make_index,
    push_blobs,
    push_image,
    push_manifest,
    sha256,
)
from .test_gc import collect, settings, stored  # noqa: F401 - GC on demand, no review delay
from .test_storage_usage import footprint, used

DAY_MS = 86_400_000
POLICY = "/api/registries/default/softDelete"


async def set_policy(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    resp = await client.patch(POLICY, json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


async def enable(client: httpx.AsyncClient, days: int = 7) -> None:
    await set_policy(client, status="enabled", retentionDays=days)


async def deleted_tags(
    client: httpx.AsyncClient, repo: str, tag: str | None = None
) -> list[tuple[str, str]]:
    resp = await client.get(f"/acr/v1/_deleted/{repo}/_tags", params={"tag": tag} if tag else None)
    assert resp.status_code == 200, resp.text
    return [(t["tag"], t["digest"]) for t in resp.json()["tags"]]


async def deleted_manifests(client: httpx.AsyncClient, repo: str) -> dict[str, Any]:
    resp = await client.get(f"/acr/v1/_deleted/{repo}/_manifests")
    assert resp.status_code == 200, resp.text
    return {m["digest"]: m for m in resp.json()["manifests"]}


async def deleted_repositories(client: httpx.AsyncClient) -> list[str]:
    resp = await client.get("/acr/v1/_deleted/_catalog")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["repositories"])


async def restore(
    client: httpx.AsyncClient, repo: str, digest: str, tag: str | None, force: bool = False
) -> httpx.Response:
    return await client.post(
        f"/acr/v1/_deleted/{repo}/_manifests/{digest}",
        params={"force": "true"} if force else None,
        json={"tag": tag} if tag is not None else {},
    )


async def restored(
    client: httpx.AsyncClient, repo: str, image: Manifest, tag: str, force: bool = False
) -> None:
    resp = await restore(client, repo, image.digest, tag, force)
    assert resp.status_code == 200, resp.text
    assert resp.json()["digest"] == image.digest and resp.json()["tag"] == tag


async def pulls(client: httpx.AsyncClient, repo: str, image: Manifest, ref: str) -> bool:
    """Whether `repo:ref` pulls `image` byte for byte, every blob included."""
    resp = await client.get(f"/v2/{repo}/manifests/{ref}")
    if resp.status_code != 200:
        assert_oci_error(resp, 404, "MANIFEST_UNKNOWN")
        return False
    assert resp.content == image.manifest
    assert resp.headers["docker-content-digest"] == image.digest
    for blob in image.blobs:
        got = await client.get(f"/v2/{repo}/blobs/{blob.digest}")
        assert got.status_code == 200, (blob.digest, got.text)
        assert got.content == blob.data
    return True


async def listed_tags(client: httpx.AsyncClient, repo: str) -> list[str]:
    resp = await client.get(f"/v2/{repo}/tags/list")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["tags"])


async def listed_manifests(client: httpx.AsyncClient, repo: str) -> list[str]:
    resp = await client.get(f"/acr/v1/{repo}/_manifests")
    assert resp.status_code == 200, resp.text
    return [m["digest"] for m in resp.json()["manifests"]]


async def catalog(client: httpx.AsyncClient) -> list[str]:
    return list((await client.get("/v2/_catalog")).json()["repositories"])


# The policy -------------------------------------------------------------------------------


async def test_the_policy_is_off_by_default_and_keeps_its_days_when_disabled(
    client: httpx.AsyncClient, clock: Any
) -> None:
    shown = (await client.get(POLICY)).json()
    assert shown == {"status": "disabled", "retentionDays": 7, "lastUpdatedTime": None}
    enabled = await set_policy(client, status="Enabled", retentionDays=30)
    assert (enabled["status"], enabled["retentionDays"]) == ("enabled", 30)
    assert enabled["lastUpdatedTime"] is not None
    clock.offset_ms = 60_000
    days_only = await set_policy(client, retentionDays=90)
    assert (days_only["status"], days_only["retentionDays"]) == ("enabled", 90)
    assert days_only["lastUpdatedTime"] > enabled["lastUpdatedTime"]
    disabled = await set_policy(client, status="disabled")
    assert (disabled["status"], disabled["retentionDays"]) == ("disabled", 90)
    assert (await client.get(POLICY)).json() == disabled


async def test_a_disabled_policy_deletes_for_good(client: httpx.AsyncClient) -> None:
    image = make_image("hard")
    await push_image(client, "hard", image, "v1")
    assert (await client.delete(f"/v2/hard/manifests/{image.digest}")).status_code == 202
    assert await deleted_manifests(client, "hard") == {}
    assert await deleted_tags(client, "hard") == []
    assert await deleted_repositories(client) == []
    assert_oci_error(await restore(client, "hard", image.digest, "v1"), 404, "MANIFEST_UNKNOWN")


async def test_deleting_for_good_forgets_the_soft_deleted_tags_of_what_it_deletes(
    client: httpx.AsyncClient,
) -> None:
    await enable(client)
    image, other = make_image("forget/image"), make_image("forget/other")
    await push_image(client, "forget", image, "v1")
    await push_image(client, "forget", image, "v2")
    await push_image(client, "forgotten", other, "v1")
    for path in ("/v2/forget/manifests/v1", "/v2/forgotten/manifests/v1"):
        assert (await client.delete(path)).status_code == 202  # a tag each, soft
    assert await deleted_repositories(client) == ["forget", "forgotten"]
    await set_policy(client, status="disabled")
    assert (await client.delete(f"/v2/forget/manifests/{image.digest}")).status_code == 202
    assert (await client.delete("/acr/v1/forgotten")).status_code == 202
    # Nothing is left that a restore could bring back.
    assert await deleted_repositories(client) == []
    assert_oci_error(await restore(client, "forget", image.digest, "v1"), 404, "MANIFEST_UNKNOWN")
    assert await used(client) == 0


async def test_purge_soft_deletes_what_it_deletes(client: httpx.AsyncClient) -> None:
    await enable(client)
    old, new = make_image("purge/old"), make_image("purge/new")
    await push_image(client, "purged", old, "v1")
    await push_image(client, "purged", new, "v2")
    resp = await client.post(
        "/api/registries/default/purge",
        json={"filters": ["purged:^v1$"], "ago": "0", "untagged": True},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["deletedTags"] == ["purged:v1"]
    assert resp.json()["deletedManifests"] == [f"purged@{old.digest}"]
    assert list(await deleted_manifests(client, "purged")) == [old.digest]
    assert await deleted_tags(client, "purged") == [("v1", old.digest)]
    await restored(client, "purged", old, "v1")
    assert await pulls(client, "purged", old, "v1")


async def test_retention_and_soft_delete_are_never_enabled_together(
    client: httpx.AsyncClient,
) -> None:
    retention = "/api/registries/default/retention"
    resp = await client.patch(retention, json={"status": "enabled", "days": 3})
    assert resp.status_code == 200, resp.text
    refused = await client.patch(POLICY, json={"status": "enabled"})
    message = assert_api_error(refused, 409, "Conflict")
    assert "retention policy" in message and "haven config retention update" in message
    assert (await client.get(POLICY)).json()["status"] == "disabled"
    # Its days may change while it stays disabled.
    assert (await set_policy(client, retentionDays=14))["status"] == "disabled"

    resp = await client.patch(retention, json={"status": "disabled"})
    assert resp.status_code == 200, resp.text
    await enable(client)
    refused = await client.patch(retention, json={"status": "enabled", "days": 3})
    message = assert_api_error(refused, 409, "Conflict")
    assert "soft delete" in message and "haven config soft-delete update" in message
    assert (await client.get(retention)).json()["status"] == "disabled"
    # Disabling the retention policy is always allowed.
    resp = await client.patch(retention, json={"status": "disabled"})
    assert resp.status_code == 200, resp.text


async def test_concurrent_requests_never_enable_both_policies(client: httpx.AsyncClient) -> None:
    retention = "/api/registries/default/retention"
    for _ in range(5):
        answers = await asyncio.gather(
            client.patch(retention, json={"status": "enabled", "days": 3}),
            client.patch(POLICY, json={"status": "enabled"}),
        )
        assert sorted(resp.status_code for resp in answers) == [200, 409], [
            resp.text for resp in answers
        ]
        states = (
            (await client.get(retention)).json()["status"],
            (await client.get(POLICY)).json()["status"],
        )
        assert sorted(states) == ["disabled", "enabled"], states
        for path in (retention, POLICY):
            resp = await client.patch(path, json={"status": "disabled"})
            assert resp.status_code == 200, resp.text


# Deleting, listing and restoring ------------------------------------------------------------


async def test_a_deleted_manifest_neither_pulls_nor_lists_and_restores_byte_identically(
    client: httpx.AsyncClient, clock: Any
) -> None:
    await enable(client, 3)
    image, other = make_image("sd/image", layers=2), make_image("sd/other")
    signature = make_image("sd/signature", subject=image, artifact_type="application/x-sig")
    await push_image(client, "sd", image, "v1")
    await push_image(client, "sd", image, "latest")
    await push_image(client, "sd", other, "other")
    before = await used(client)
    await push_image(client, "sd", signature)

    assert await pulls(client, "sd", image, "v1")  # cached now: a deletion must not be
    clock.offset_ms = 1000
    resp = await client.delete(f"/v2/sd/manifests/{image.digest}")
    assert resp.status_code == 202, resp.text
    for ref in (image.digest, "v1", "latest"):
        assert not await pulls(client, "sd", image, ref)
    assert await listed_tags(client, "sd") == ["other"]
    assert image.digest not in await listed_manifests(client, "sd")
    referrers = (await client.get(f"/v2/sd/referrers/{image.digest}")).json()["manifests"]
    assert [r["digest"] for r in referrers] == [signature.digest]  # the referrer stays
    # An index cannot name it either: it is not in the repository.
    index = make_index([image])
    refused = await push_manifest(client, "sd", "multi", index.manifest, index.media_type)
    assert_oci_error(refused, 400, "MANIFEST_BLOB_UNKNOWN")

    kept = await deleted_manifests(client, "sd")
    assert list(kept) == [image.digest]
    entry = kept[image.digest]
    assert entry["tags"] == ["latest", "v1"] and entry["imageSize"] == image.size
    assert entry["mediaType"] == image.media_type
    assert entry["expiresAfter"] > entry["deletedAt"]
    assert await deleted_tags(client, "sd") == [("latest", image.digest), ("v1", image.digest)]
    assert await deleted_repositories(client) == ["sd"]
    # It still counts: deleting it released nothing.
    assert await used(client) == before + footprint(signature)

    await restored(client, "sd", image, "v1")
    assert await pulls(client, "sd", image, "v1")
    assert await pulls(client, "sd", image, image.digest)
    assert not await pulls(client, "sd", image, "latest")  # each tag comes back on its own
    assert await deleted_tags(client, "sd") == [("latest", image.digest)]
    assert await deleted_manifests(client, "sd") == {}
    await restored(client, "sd", image, "latest")
    assert await pulls(client, "sd", image, "latest")
    assert await listed_tags(client, "sd") == ["latest", "other", "v1"]
    assert await deleted_tags(client, "sd") == []
    assert await deleted_repositories(client) == []
    assert await used(client) == before + footprint(signature)


async def test_a_deleted_tag_is_kept_and_comes_back(client: httpx.AsyncClient) -> None:
    await enable(client)
    image = make_image("tagonly")
    await push_image(client, "tagonly", image, "v1")
    resp = await client.delete("/acr/v1/tagonly/_tags/v1")
    assert resp.status_code == 202, resp.text
    assert not await pulls(client, "tagonly", image, "v1")
    assert await pulls(client, "tagonly", image, image.digest)  # the manifest stays
    assert await deleted_manifests(client, "tagonly") == {}
    assert await deleted_tags(client, "tagonly") == [("v1", image.digest)]
    await restored(client, "tagonly", image, "v1")
    assert await pulls(client, "tagonly", image, "v1")
    # Restored already: a second restore finds nothing.
    again = await restore(client, "tagonly", image.digest, "v1")
    assert_oci_error(again, 404, "MANIFEST_UNKNOWN")


async def test_restoring_over_a_tag_that_points_elsewhere_needs_force(
    client: httpx.AsyncClient, clock: Any
) -> None:
    await enable(client)
    first, second = make_image("force/first"), make_image("force/second")
    await push_image(client, "force", first, "v1")
    assert (await client.delete(f"/v2/force/manifests/{first.digest}")).status_code == 202
    await push_image(client, "force", second, "v1")

    refused = await restore(client, "force", first.digest, "v1")
    error = assert_oci_error(refused, 409, "CONFLICT")
    assert second.digest in error["message"] and "force" in error["message"]
    assert await pulls(client, "force", second, "v1")  # nothing changed
    assert await deleted_tags(client, "force") == [("v1", first.digest)]
    # Nothing to restore is said before any conflict.
    unknown = await restore(client, "force", "sha256:" + "0" * 64, "v1", force=True)
    assert_oci_error(unknown, 404, "MANIFEST_UNKNOWN")
    assert_oci_error(
        await restore(client, "force", "sha256:" + "0" * 64, "v1"), 404, "MANIFEST_UNKNOWN"
    )

    await restored(client, "force", first, "v1", force=True)
    assert await pulls(client, "force", first, "v1")
    assert await pulls(client, "force", second, second.digest)  # untagged, still there
    assert await used(client) == footprint(first) + footprint(second)


async def test_the_digest_picks_among_manifests_deleted_under_one_tag(
    client: httpx.AsyncClient, clock: Any
) -> None:
    await enable(client)
    older, newer = make_image("pick/older"), make_image("pick/newer")
    await push_image(client, "pick", older, "v1")
    clock.offset_ms = 1000
    assert (await client.delete("/v2/pick/manifests/v1")).status_code == 202  # the tag
    assert (await client.delete(f"/v2/pick/manifests/{older.digest}")).status_code == 202
    await push_image(client, "pick", newer, "v1")
    clock.offset_ms = 2000
    assert (await client.delete(f"/v2/pick/manifests/{newer.digest}")).status_code == 202
    await push_image(client, "pick", make_image("pick/unrelated"), "v2")
    assert (await client.delete("/v2/pick/manifests/v2")).status_code == 202

    # One tag, two manifests: listed by deletion time, the latest last.
    assert await deleted_tags(client, "pick", "v1") == [
        ("v1", older.digest),
        ("v1", newer.digest),
    ]
    await restored(client, "pick", older, "v1")
    assert await pulls(client, "pick", older, "v1")
    assert not await pulls(client, "pick", newer, newer.digest)
    assert await deleted_tags(client, "pick", "v1") == [("v1", newer.digest)]
    # The other one now conflicts with the restored tag.
    assert_oci_error(await restore(client, "pick", newer.digest, "v1"), 409, "CONFLICT")
    # A soft-deleted manifest may be restored under a tag it never had, or none.
    await restored(client, "pick", newer, "fresh")
    assert await pulls(client, "pick", newer, "fresh")


async def test_a_manifest_restored_without_a_tag_is_untagged(client: httpx.AsyncClient) -> None:
    await enable(client)
    image = make_image("notag")
    await push_image(client, "notag", image, "v1")
    assert (await client.delete(f"/v2/notag/manifests/{image.digest}")).status_code == 202
    resp = await restore(client, "notag", image.digest, None)
    assert resp.status_code == 200, resp.text
    assert await pulls(client, "notag", image, image.digest)
    assert not await pulls(client, "notag", image, "v1")
    assert await deleted_tags(client, "notag") == [("v1", image.digest)]
    await restored(client, "notag", image, "v1")  # its tag, then, on its own
    assert await pulls(client, "notag", image, "v1")


async def test_deleting_a_repository_soft_deletes_it_and_a_restore_brings_it_back(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    await enable(client)
    shared = layer("repo/shared")
    one, two = image_of("repo/one", [shared]), image_of("repo/two", [shared, layer("repo/u")])
    await push_image(client, "team/app", one, "v1")
    await push_image(client, "team/app", two, "v2")
    await push_image(client, "kept", make_image("repo/kept"), "v1")
    before = await used(client)

    resp = await client.delete("/acr/v1/team/app")
    assert resp.status_code == 202, resp.text
    assert await catalog(client) == ["kept"]
    assert_oci_error(await client.get("/v2/team/app/tags/list"), 404, "NAME_UNKNOWN")
    assert (await client.get("/acr/v1/team/app")).status_code == 404
    assert await deleted_repositories(client) == ["team/app"]
    assert set(await deleted_manifests(client, "team/app")) == {one.digest, two.digest}
    assert await used(client) == before
    # Its blobs are linked nowhere now, yet a full collection keeps every one.
    report = await collect(client, full=True)
    assert report["blobsDeleted"] == 0, report
    assert all(stored(app, blob) for blob in (*one.blobs, *two.blobs))

    await restored(client, "team/app", two, "v2")
    assert "team/app" in await catalog(client)
    assert await pulls(client, "team/app", two, "v2")
    assert not await pulls(client, "team/app", one, "v1")
    assert await deleted_repositories(client) == ["team/app"]  # `one` is still deleted
    assert await used(client) == before


# Expiry, purge and garbage collection -------------------------------------------------------


async def test_expired_items_are_purged_then_collected_and_usage_drops(
    app: HavenApp, client: httpx.AsyncClient, clock: Any
) -> None:
    await enable(client, 1)
    doomed, spared = make_image("exp/doomed", layers=2), make_image("exp/spared")
    base = await used(client)
    await push_image(client, "exp", doomed, "v1")
    await push_image(client, "exp", spared, "v1b")
    assert (await client.delete(f"/v2/exp/manifests/{doomed.digest}")).status_code == 202
    assert (await client.delete("/v2/exp/manifests/v1b")).status_code == 202  # a tag only
    assert await used(client) == base + footprint(doomed) + footprint(spared)

    clock.offset_ms = DAY_MS // 2
    report = await collect(client, full=True)
    assert (report["softDeletedPurged"], report["blobsDeleted"]) == (0, 0), report
    assert all(stored(app, blob) for blob in doomed.blobs)

    clock.offset_ms = DAY_MS + 1000
    preview = await collect(client, dryRun=True)
    assert preview["softDeletedPurged"] == 3  # the manifest and its tag, the other tag
    assert await deleted_manifests(client, "exp") != {}  # a dry run changes nothing
    report = await collect(client)
    assert report["softDeletedPurged"] == 3, report
    assert report["blobsDeleted"] == len(doomed.blobs), report
    assert not any(stored(app, blob) for blob in doomed.blobs)
    assert await deleted_manifests(client, "exp") == {}
    assert await deleted_tags(client, "exp") == []
    assert await deleted_repositories(client) == []
    assert await used(client) == base + footprint(spared)
    assert await pulls(client, "exp", spared, spared.digest)
    assert_oci_error(await restore(client, "exp", doomed.digest, "v1"), 404, "MANIFEST_UNKNOWN")


async def test_the_days_in_force_decide_when_an_item_expires(
    client: httpx.AsyncClient, clock: Any
) -> None:
    await enable(client, 1)
    image = make_image("days")
    await push_image(client, "days", image, "v1")
    assert (await client.delete(f"/v2/days/manifests/{image.digest}")).status_code == 202
    await set_policy(client, retentionDays=3)  # counted from the deletion, as ACR does
    clock.offset_ms = 2 * DAY_MS
    assert (await collect(client))["softDeletedPurged"] == 0
    await set_policy(client, status="disabled")  # what was soft-deleted still expires
    assert (await deleted_manifests(client, "days"))[image.digest]["tags"] == ["v1"]
    clock.offset_ms = 3 * DAY_MS + 1000
    assert (await collect(client))["softDeletedPurged"] == 2
    assert await deleted_manifests(client, "days") == {}
    await used(client)


async def test_soft_deleted_blobs_survive_garbage_collection_until_purged(
    app: HavenApp, client: httpx.AsyncClient, clock: Any
) -> None:
    """Whatever removes the links of a soft-deleted manifest's blobs (a hard delete of
    another manifest sharing them, the sweep of unreferenced links), garbage collection
    keeps the blobs, and a restore links them again."""
    await enable(client, 2)
    shared = layer("survive/shared")
    kept, sharer = image_of("survive/kept", [shared]), image_of("survive/sharer", [shared])
    await push_image(client, "survive", kept, "v1")
    assert (await client.delete(f"/v2/survive/manifests/{kept.digest}")).status_code == 202
    await set_policy(client, status="disabled")
    await push_image(client, "survive", sharer, "v2")
    assert (await client.delete(f"/v2/survive/manifests/{sharer.digest}")).status_code == 202
    clock.offset_ms = DAY_MS  # past the links' grace period
    for _ in range(2):
        await collect(client, full=True)
    assert all(stored(app, blob) for blob in kept.blobs)
    assert not stored(app, sharer.config)  # the hard-deleted one's own blob went
    await restored(client, "survive", kept, "v1")
    assert await pulls(client, "survive", kept, "v1")
    await collect(client, full=True)
    assert await pulls(client, "survive", kept, "v1")
    await used(client)


async def test_a_deleted_registry_takes_its_soft_deleted_blobs_with_it(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    await create_registry(client, "softreg")
    resp = await client.patch(
        "/api/registries/softreg/softDelete", json={"status": "enabled", "retentionDays": 30}
    )
    assert resp.status_code == 200, resp.text
    image = make_image("softreg/image")
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://softreg.localhost:5000", auth=client.auth
    ) as other:
        await push_image(other, "app", image, "v1")
        assert (await other.delete(f"/v2/app/manifests/{image.digest}")).status_code == 202
        assert (await deleted_manifests(other, "app")).keys() == {image.digest}
    assert (await collect(client, full=True))["blobsDeleted"] == 0
    assert (await client.delete("/api/registries/softreg")).status_code == 204
    assert (await collect(client))["blobsDeleted"] == len(image.blobs)
    assert not any(stored(app, blob) for blob in image.blobs)


# Usage -------------------------------------------------------------------------------------


async def test_a_manifest_pushed_again_after_its_deletion_counts_once(
    client: httpx.AsyncClient,
) -> None:
    await enable(client)
    image = make_image("again", layers=2)
    await push_image(client, "again", image, "v1")
    assert (await client.delete(f"/v2/again/manifests/{image.digest}")).status_code == 202
    await push_image(client, "again", image, "v2")  # live again, and soft-deleted too
    assert await used(client) == footprint(image)
    assert (await client.delete(f"/v2/again/manifests/{image.digest}")).status_code == 202
    assert list(await deleted_manifests(client, "again")) == [image.digest]  # one copy
    assert await deleted_tags(client, "again") == [
        ("v1", image.digest),
        ("v2", image.digest),
    ]
    assert await used(client) == footprint(image)
    await push_image(client, "again", image, "v3")
    await restored(client, "again", image, "v1")  # live already: only the tag moves
    assert await deleted_manifests(client, "again") == {}
    assert await listed_tags(client, "again") == ["v1", "v3"]
    assert await used(client) == footprint(image)
    assert (await client.delete(f"/v2/again/manifests/{image.digest}")).status_code == 202
    await restored(client, "again", image, "v2")
    assert await pulls(client, "again", image, "v2")
    assert await used(client) == footprint(image)


async def test_soft_deleted_content_counts_against_the_quota_until_purged(
    client: httpx.AsyncClient, clock: Any
) -> None:
    await enable(client, 1)
    image = make_image("quota/kept", layer_size=4000)
    await push_image(client, "quota", image, "v1")
    assert (await client.delete(f"/v2/quota/manifests/{image.digest}")).status_code == 202
    quota = footprint(image) + 100
    resp = await client.patch("/api/registries/default", json={"storageQuotaBytes": quota})
    assert resp.status_code == 200, resp.text
    data = b"x" * 500
    upload = f"/v2/quota/blobs/uploads/?digest={sha256(data)}"
    refused = await client.post(upload, content=data)
    assert_oci_error(refused, 403, "DENIED")
    assert "storage quota exceeded" in refused.text
    clock.offset_ms = DAY_MS + 1000
    assert (await collect(client))["softDeletedPurged"] == 2
    assert (await client.post(upload, content=data)).status_code == 201


# Input and access ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"status": "on"},
        {"status": 1},
        {"retentionDays": 0},
        {"retentionDays": 91},
        {"retentionDays": "7"},
        {"retentionDays": True},
        {"status": "enabled", "days": 3},
    ],
)
async def test_bad_policy_input_is_refused(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_api_error(await client.patch(POLICY, json=body), 400, "InvalidArgument")
    assert (await client.get(POLICY)).json()["status"] == "disabled"


async def test_malformed_and_oversized_requests_are_refused(client: httpx.AsyncClient) -> None:
    await enable(client)
    image = make_image("bad")
    await push_image(client, "bad", image, "v1")
    assert (await client.delete(f"/v2/bad/manifests/{image.digest}")).status_code == 202
    path = f"/acr/v1/_deleted/bad/_manifests/{image.digest}"
    cases: list[tuple[httpx.Response, int, str]] = [
        (
            await client.post("/acr/v1/_deleted/bad/_manifests/sha256:abc", json={}),
            400,
            "DIGEST_INVALID",
        ),
        (await client.post(path, json={"tag": "no spaces"}), 400, "TAG_INVALID"),
        (await client.post(path, json={"tag": ""}), 400, "TAG_INVALID"),
        (await client.post(path, json={"tag": 7}), 400, "PARAMETER_INVALID"),
        (await client.post(path, json=["v1"]), 400, "PARAMETER_INVALID"),
        (await client.post(path, content=b"{not json"), 400, "PARAMETER_INVALID"),
        (await client.post(path, content=b" " * 70_000), 400, "PARAMETER_INVALID"),
        (await client.post(path, params={"force": "maybe"}, json={}), 400, "PARAMETER_INVALID"),
        (
            await client.post("/acr/v1/_deleted/Bad/_manifests/" + image.digest, json={}),
            400,
            "NAME_INVALID",
        ),
        (await client.get("/acr/v1/_deleted/bad/_tags", params={"tag": "a/b"}), 400, "TAG_INVALID"),
        (
            await client.get("/acr/v1/_deleted/bad/_tags", params={"n": "0"}),
            400,
            "PAGINATION_NUMBER_INVALID",
        ),
        (
            await client.get("/acr/v1/_deleted/_catalog", params={"n": "x"}),
            400,
            "PAGINATION_NUMBER_INVALID",
        ),
        (await client.get(path), 405, "UNSUPPORTED"),
        (await client.delete("/acr/v1/_deleted/bad/_tags"), 405, "UNSUPPORTED"),
    ]
    for resp, status, code in cases:
        assert_oci_error(resp, status, code)
    # Nothing was restored by any of them.
    assert list(await deleted_manifests(client, "bad")) == [image.digest]


async def test_listings_page_with_links(client: httpx.AsyncClient) -> None:
    await enable(client)
    images = [make_image(f"page/{i}") for i in range(5)]
    for i, image in enumerate(images):
        await push_image(client, f"page{i % 3}", image, "same")
        await push_image(client, f"page{i % 3}", image, f"t{i}")
        resp = await client.delete(f"/v2/page{i % 3}/manifests/{image.digest}")
        assert resp.status_code == 202, resp.text

    async def walk(path: str, key: str, **params: str) -> list[Any]:
        seen: list[Any] = []
        url: str | None = path
        query: dict[str, str] | None = {"n": "1", **params}
        while url is not None:
            resp = await client.get(url, params=query)
            assert resp.status_code == 200, resp.text
            page = resp.json()[key]
            assert len(page) <= 1
            seen += page
            link = resp.headers.get("link")
            url = link[1 : link.index(">")] if link else None
            query = None
        return seen

    assert await walk("/acr/v1/_deleted/_catalog", "repositories") == ["page0", "page1", "page2"]
    manifests = await walk("/acr/v1/_deleted/page0/_manifests", "manifests")
    assert sorted(m["digest"] for m in manifests) == sorted([images[0].digest, images[3].digest])
    tags = await walk("/acr/v1/_deleted/page0/_tags", "tags")
    assert [(t["tag"], t["digest"]) for t in tags] == await deleted_tags(client, "page0")
    assert len(tags) == 4
    same = await walk("/acr/v1/_deleted/page0/_tags", "tags", tag="same")
    assert [(t["tag"], t["digest"]) for t in same] == [
        ("same", images[0].digest),
        ("same", images[3].digest),
    ]


async def test_only_callers_with_the_rights_list_and_restore(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    await enable(client)
    image = make_image("rights")
    await push_image(client, "rights", image, "v1")
    assert (await client.delete(f"/v2/rights/manifests/{image.digest}")).status_code == 202
    listing = "/acr/v1/_deleted/rights/_tags"
    restoring = f"/acr/v1/_deleted/rights/_manifests/{image.digest}"

    async with caller(app) as anonymous:
        assert_challenge(await anonymous.get(listing), "repository:rights:deleted_read")
        assert_challenge(
            await anonymous.get("/acr/v1/_deleted/_catalog"), "registry:deleted_catalog:*"
        )
        challenged = await anonymous.post(restoring, json={"tag": "v1"})
        assert_challenge(challenged, "repository:rights:deleted_read,deleted_restore")

    for role in ("AcrPull", "AcrPush", "AcrDelete"):
        identity = await member(client, f"no{role.lower()}", role, "default")
        async with caller(app, identity.auth) as c:
            assert_denied(await c.get(listing), "deleted/read")
            assert_denied(await c.get("/acr/v1/_deleted/_catalog"), "deleted/read")
            assert_denied(await c.post(restoring, json={"tag": "v1"}), "deleted/restore")

    reader = await member(client, "reader", "Reader", "default")
    async with caller(app, reader.auth) as c:
        assert (await c.get(listing)).status_code == 200
        assert (await c.get("/acr/v1/_deleted/_catalog")).status_code == 200
        assert_denied(await c.post(restoring, json={"tag": "v1"}), "deleted/restore")
        assert_api_error(await c.patch(POLICY, json={"status": "disabled"}), 403)

    token = await create_repo_token(
        client, "scoped", actions=["repositories/rights/content/delete"]
    )
    async with caller(app, ("scoped", token["password1"])) as c:
        assert_denied(await c.get(listing), "deleted/read")

    # A bearer token grants the listing only with its scope, and a restore only with
    # deleted_restore; a repository-scoped Contributor may do both, there only.
    contributor = await member(client, "contrib", "Contributor", "default/rights")
    async with caller(app) as c:
        pull = await access_token(c, "repository:rights:pull", auth=contributor.auth)
        read = await access_token(c, "repository:rights:deleted_read", auth=contributor.auth)
        both = await access_token(
            c, "repository:rights:deleted_read,deleted_restore", auth=contributor.auth
        )
        elsewhere = await access_token(c, "registry:deleted_catalog:*", auth=contributor.auth)
    async with caller(app, bearer=pull) as c:
        assert_challenge(await c.get(listing), "repository:rights:deleted_read")
    async with caller(app, bearer=elsewhere) as c:
        assert_denied(await c.get("/acr/v1/_deleted/_catalog"), "deleted/read")
    async with caller(app, bearer=read) as c:
        assert (await c.get(listing)).json()["tags"][0]["tag"] == "v1"
        assert_challenge(await c.post(restoring, json={"tag": "v1"}))
    async with caller(app, bearer=both) as c:
        assert (await c.post(restoring, json={"tag": "v1"})).status_code == 200
    assert await pulls(client, "rights", image, "v1")


async def test_the_owner_token_lists_the_deleted_catalog(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    await enable(client)
    await push_image(client, "tok", make_image("tok"), "v1")
    assert (await client.delete("/v2/tok/manifests/v1")).status_code == 202
    owner = ("owner", OWNER_PASSWORD)
    async with caller(app) as c:
        catalog_only = await access_token(c, "registry:catalog:*", auth=owner)
        deleted = await access_token(c, "registry:deleted_catalog:*", auth=owner)
    async with caller(app, bearer=catalog_only) as c:
        assert_challenge(await c.get("/acr/v1/_deleted/_catalog"), "registry:deleted_catalog:*")
    async with caller(app, bearer=deleted) as c:
        assert (await c.get("/acr/v1/_deleted/_catalog")).json() == {"repositories": ["tok"]}
        assert_challenge(await c.get("/v2/_catalog"), "registry:catalog:*")


# Concurrency --------------------------------------------------------------------------------


async def test_of_concurrent_restores_of_one_item_exactly_one_wins(
    client: httpx.AsyncClient,
) -> None:
    await enable(client)
    image, untagged = make_image("race", layers=3), make_image("race/untagged")
    await push_image(client, "race", image, "v1")
    await push_image(client, "race", untagged)
    for digest in (image.digest, untagged.digest):
        assert (await client.delete(f"/v2/race/manifests/{digest}")).status_code == 202
    for item, tag in ((image, "v1"), (untagged, None)):
        answers = await asyncio.gather(
            *(restore(client, "race", item.digest, tag) for _ in range(8))
        )
        statuses = sorted(resp.status_code for resp in answers)
        assert statuses == [200] + [404] * 7, [r.text for r in answers]
        for resp in answers:
            if resp.status_code == 404:
                assert_oci_error(resp, 404, "MANIFEST_UNKNOWN")
    assert await pulls(client, "race", image, "v1")
    assert await pulls(client, "race", untagged, untagged.digest)
    assert await used(client) == footprint(image) + footprint(untagged)


async def test_stress_soft_deletes_restores_and_gc_lose_nothing(
    app: HavenApp, client: httpx.AsyncClient
) -> None:
    """Pushers of images sharing layers, a soft-deleter, a restorer and garbage
    collection running together for 20 s: afterwards every acknowledged manifest, once
    restored if it was deleted, pulls completely, and usage equals a recount."""
    await enable(client)
    pool = [layer(f"sdstress-{i}", 1500 + i) for i in range(8)]
    acknowledged: dict[tuple[str, str], Manifest] = {}
    deleted: set[tuple[str, str]] = set()
    stop = time.monotonic() + 20
    errors: list[str] = []

    async def pusher(worker: int) -> None:
        rng = random.Random(worker)
        n = 0
        while time.monotonic() < stop:
            n += 1
            repo = f"sdstress/r{rng.randrange(2)}"
            image = image_of(f"sd-w{worker}-{n}", rng.sample(pool, 3))
            await push_blobs(client, repo, image.blobs)
            resp = await push_manifest(client, repo, image.digest, image.manifest)
            if resp.status_code != 201:
                errors.append(f"push {resp.status_code}: {resp.text[:200]}")
                return
            acknowledged[(repo, image.digest)] = image

    async def deleter() -> None:
        rng = random.Random(7)
        while time.monotonic() < stop:
            await asyncio.sleep(0.03)
            live = sorted(key for key in acknowledged if key not in deleted)
            if live:
                repo, digest = rng.choice(live)
                resp = await client.delete(f"/v2/{repo}/manifests/{digest}")
                if resp.status_code != 202:
                    errors.append(f"delete {resp.status_code}: {resp.text[:200]}")
                deleted.add((repo, digest))  # the restorer takes it from here

    async def restorer() -> None:
        rng = random.Random(11)
        while time.monotonic() < stop:
            await asyncio.sleep(0.05)
            if deleted:
                repo, digest = rng.choice(sorted(deleted))
                resp = await restore(client, repo, digest, None)
                if resp.status_code != 200:
                    errors.append(f"restore {resp.status_code}: {resp.text[:200]}")
                deleted.discard((repo, digest))

    async def collector() -> None:
        while time.monotonic() < stop:
            await collect(client, full=True)

    await asyncio.gather(*(pusher(i) for i in range(4)), deleter(), restorer(), collector())
    assert not errors, errors[:5]
    assert len(acknowledged) > 20, len(acknowledged)
    for repo, digest in sorted(deleted):
        resp = await restore(client, repo, digest, None)
        assert resp.status_code == 200, resp.text
    await collect(client, full=True)
    for (repo, digest), image in acknowledged.items():
        assert await pulls(client, repo, image, digest), (repo, digest)
    await used(client)
