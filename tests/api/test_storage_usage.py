"""Storage accounting and quotas: exact the moment a push or delete returns.

A registry uses the bytes of the distinct manifests its repositories hold and of the
distinct blobs they reference. Every test compares the kept figure with a recount.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .access_helpers import create_registry, member
from .helpers import (
    MIB,
    OCI_LAYER,
    Blob,
    Manifest,
    assert_oci_error,
    blob_bytes,
    image_of,
    layer,
    push_blob,
    push_image,
    push_manifest,
)

GIB = 1024**3


def footprint(image: Manifest) -> int:
    return image.size + sum(b.size for b in image.blobs)


async def used(client: httpx.AsyncClient, registry: str = "default") -> int:
    """The usage `show-usage` reports, after checking it against a recount."""
    check = await client.get(f"/api/registries/{registry}/usages/check")
    assert check.status_code == 200, check.text
    body = check.json()
    assert body["driftBytes"] == 0, body
    usages = (await client.get(f"/api/registries/{registry}/usages")).json()["value"]
    size = next(row for row in usages if row["name"] == "Size")
    assert size["currentValue"] == body["usedBytes"]
    return int(body["usedBytes"])


async def set_quota(
    client: httpx.AsyncClient, quota: int | None, registry: str = "default"
) -> None:
    resp = await client.patch(f"/api/registries/{registry}", json={"storageQuotaBytes": quota})
    assert resp.status_code == 200, resp.text


async def test_the_faq_quota_check(client: httpx.AsyncClient) -> None:
    """Push an image with a unique layer: usage rises by its size; delete it: usage falls
    back at once; a layer another image still references is not released."""
    base = await used(client)
    shared = layer("shared", 4000)
    unique = Blob(blob_bytes("unique-1mib", MIB), OCI_LAYER)
    keeper = image_of("keeper", [shared])
    await push_image(client, "quota/keeper", keeper, "v1")
    after_keeper = await used(client)
    assert after_keeper == base + footprint(keeper)

    big = image_of("big", [shared, unique])
    await push_image(client, "quota/big", big, "v1")
    assert await used(client) == after_keeper + big.size + big.blobs[0].size + unique.size

    assert (await client.delete(f"/v2/quota/big/manifests/{big.digest}")).status_code == 202
    assert await used(client) == after_keeper  # the shared layer is still counted once


async def test_shared_content_counts_once_per_registry(client: httpx.AsyncClient) -> None:
    await create_registry(client, "otherreg")
    other = httpx.AsyncClient(
        transport=client._transport, base_url="http://otherreg.localhost:5000", auth=client.auth
    )
    image = image_of("twice", [layer("a"), layer("b")])
    before_default, before_other = await used(client), await used(client, "otherreg")
    await push_image(client, "one", image, "v1")
    await push_image(client, "two", image, "v1")  # the same image in a second repository
    await push_image(client, "two", image, "v2")  # and under a second tag
    assert await used(client) == before_default + footprint(image)
    async with other:
        await push_image(other, "elsewhere", image, "v1")
    assert await used(client, "otherreg") == before_other + footprint(image)
    assert await used(client) == before_default + footprint(image)

    assert (await client.delete("/acr/v1/one")).status_code in (200, 202)
    assert await used(client) == before_default + footprint(image)
    assert (await client.delete("/acr/v1/two")).status_code in (200, 202)
    assert await used(client) == before_default
    assert await used(client, "otherreg") == before_other + footprint(image)


async def test_an_index_counts_its_children_once(client: httpx.AsyncClient) -> None:
    from .helpers import make_index

    before = await used(client)
    amd, arm = image_of("amd", [layer("amd")]), image_of("arm", [layer("arm")])
    index = make_index([amd, arm])
    await push_image(client, "multi", index, "latest")
    assert await used(client) == before + index.size + footprint(amd) + footprint(arm)


async def test_a_push_past_the_quota_is_refused_and_stores_nothing(
    client: httpx.AsyncClient,
) -> None:
    first = image_of("fits", [layer("fits", 2000)])
    await push_image(client, "tight", first, "v1")
    current = await used(client)
    await set_quota(client, current + 1500)

    # A blob that cannot fit is refused when its upload completes...
    too_big = layer("too-big", 5000)
    location = (await client.post("/v2/tight/blobs/uploads/")).headers["location"]
    refused = await client.put(
        f"{location}{'&' if '?' in location else '?'}digest={too_big.digest}",
        content=too_big.data,
        headers={"Content-Type": "application/octet-stream"},
    )
    error = assert_oci_error(refused, 403, "DENIED")
    assert "storage quota exceeded" in error["message"]
    assert (await client.head(f"/v2/tight/blobs/{too_big.digest}")).status_code == 404

    # ...and a manifest whose new content cannot fit is refused at its push.
    small = [layer(f"small-{i}", 600) for i in range(3)]
    for blob in small:
        await push_blob(client, "tight", blob.data)  # each fits on its own
    second = image_of("second", small)
    for blob in second.blobs:
        await push_blob(client, "tight", blob.data)
    resp = await push_manifest(client, "tight", "v2", second.manifest)
    error = assert_oci_error(resp, 403, "DENIED")
    assert "storage quota exceeded" in error["message"]
    assert (await client.get("/v2/tight/manifests/v2")).status_code == 404
    assert await used(client) == current

    # Re-pushing what is already counted costs nothing and is accepted.
    assert (await push_manifest(client, "tight", "again", first.manifest)).status_code == 201
    assert await used(client) == current

    await set_quota(client, None)  # back to the SKU's included storage
    assert (await push_manifest(client, "tight", "v2", second.manifest)).status_code == 201
    usages = (await client.get("/api/registries/default/usages")).json()["value"]
    size = next(row for row in usages if row["name"] == "Size")
    assert size["limit"] == 100 * GIB  # the default registry is Standard


async def test_only_the_deployment_owner_sets_a_quota(
    app: object, client: httpx.AsyncClient
) -> None:
    from .access_helpers import caller

    await create_registry(client, "quotareg")
    alice = await member(client, "alice", "Owner", "quotareg")
    async with caller(app, alice.auth) as c:
        refused = await c.patch("/api/registries/quotareg", json={"storageQuotaBytes": 10 * GIB})
        assert refused.status_code == 403, refused.text
        assert (await c.get("/api/registries/quotareg/usages/check")).status_code == 200
    for bad in (-1, "10GiB", True, 1024**5 + 1, 1.5):
        resp = await client.patch("/api/registries/quotareg", json={"storageQuotaBytes": bad})
        assert resp.status_code == 400, (bad, resp.text)
    await set_quota(client, 5 * GIB, "quotareg")
    shown = (await client.get("/api/registries/quotareg")).json()["storageQuota"]
    assert shown == {"bytes": 5 * GIB, "source": "override"}


async def test_concurrent_pushes_and_deletes_keep_usage_exact(client: httpx.AsyncClient) -> None:
    pool = [layer(f"pool-{i}", 700 + i) for i in range(6)]
    rng = random.Random(7)
    images = [image_of(f"c{i}", rng.sample(pool, 3)) for i in range(16)]

    async def push(i: int) -> None:
        await push_image(client, f"race/r{i % 4}", images[i], f"t{i}")

    await asyncio.gather(*(push(i) for i in range(16)))
    await used(client)

    async def delete(i: int) -> None:
        resp = await client.delete(f"/v2/race/r{i % 4}/manifests/{images[i].digest}")
        assert resp.status_code == 202, resp.text

    await asyncio.gather(*(delete(i) for i in range(0, 16, 2)), *(push(i) for i in range(1, 16, 4)))
    await used(client)


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["push", "push", "push", "delete-manifest", "delete-tag", "delete-repo"]),
        st.integers(0, 2),  # repository
        st.integers(0, 5),  # image
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
async def test_no_drift_after_any_sequence(
    client: httpx.AsyncClient, operations: list[tuple[str, int, int]]
) -> None:
    pool = [layer(f"h-{i}", 300 + 17 * i) for i in range(4)]
    images = [image_of(f"h{i}", [pool[i % 4], pool[(i + 1) % 4]]) for i in range(6)]
    for operation, repo_index, image_index in operations:
        repo, image = f"drift/r{repo_index}", images[image_index]
        response: Any = None
        if operation == "push":
            await push_image(client, repo, image, f"t{image_index}")
        elif operation == "delete-manifest":
            response = await client.delete(f"/v2/{repo}/manifests/{image.digest}")
        elif operation == "delete-tag":
            response = await client.delete(f"/v2/{repo}/manifests/t{image_index}")
        else:
            response = await client.delete(f"/acr/v1/{repo}")
        if response is not None:
            assert response.status_code in (200, 202, 404), response.text
        await used(client)
