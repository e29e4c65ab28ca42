"""ACR's repository API (`/acr/v1/`) and the lock attributes it sets, enforced on `/v2/`."""

from __future__ import annotations

import httpx

from .helpers import assert_oci_error, make_image, push_image, push_manifest

LOCKS = {"writeEnabled", "deleteEnabled", "readEnabled", "listEnabled"}


async def _two_images(client: httpx.AsyncClient, repo: str) -> tuple[str, str]:
    first, second = make_image(f"{repo}-1"), make_image(f"{repo}-2")
    await push_image(client, repo, first, "v1")
    await push_image(client, repo, second, "v2")
    await push_image(client, repo, second, "latest")
    return first.digest, second.digest


async def test_repository_attributes_count_its_manifests_and_tags(client: httpx.AsyncClient):
    await _two_images(client, "acr/attrs")
    got = (await client.get("/acr/v1/acr/attrs")).json()
    assert got["imageName"] == "acr/attrs"
    assert got["registry"] == "localhost:5000"
    assert (got["manifestCount"], got["tagCount"]) == (2, 3)
    assert got["changeableAttributes"] == dict.fromkeys(LOCKS, True)
    assert got["createdTime"].endswith("Z") and got["lastUpdateTime"] >= got["createdTime"]


async def test_catalog_pages_with_a_link(client: httpx.AsyncClient):
    for name in ("cat/a", "cat/b", "cat/c"):
        await push_image(client, name, make_image(name), "v1")
    first = await client.get("/acr/v1/_catalog?n=2")
    assert first.json() == {"repositories": ["cat/a", "cat/b"]}
    assert first.headers["link"] == '</acr/v1/_catalog?last=cat%2Fb&n=2>; rel="next"'
    rest = await client.get("/acr/v1/_catalog?n=2&last=cat/b")
    assert rest.json() == {"repositories": ["cat/c"]} and "link" not in rest.headers


async def test_tags_list_with_details_in_time_order_and_by_digest(client: httpx.AsyncClient):
    first, second = await _two_images(client, "acr/tags")
    names = [t["name"] for t in (await client.get("/acr/v1/acr/tags/_tags")).json()["tags"]]
    assert names == ["latest", "v1", "v2"]
    newest = (await client.get("/acr/v1/acr/tags/_tags?orderby=timedesc&n=1")).json()["tags"]
    assert newest[0]["name"] == "latest" and newest[0]["digest"] == second
    by_digest = (await client.get(f"/acr/v1/acr/tags/_tags?digest={first}")).json()["tags"]
    assert [t["name"] for t in by_digest] == ["v1"]
    one = (await client.get("/acr/v1/acr/tags/_tags/v1")).json()["tag"]
    assert one["digest"] == first and one["changeableAttributes"] == dict.fromkeys(LOCKS, True)


async def test_manifests_list_their_tags_size_and_platform(client: httpx.AsyncClient):
    first, second = await _two_images(client, "acr/manifests")
    manifests = (await client.get("/acr/v1/acr/manifests/_manifests")).json()["manifests"]
    tags = {m["digest"]: m["tags"] for m in manifests}
    assert tags == {first: ["v1"], second: ["latest", "v2"]}
    assert all(m["imageSize"] > 0 and m["mediaType"] for m in manifests)
    one = (await client.get(f"/acr/v1/acr/manifests/_manifests/{first}")).json()["manifest"]
    assert one["digest"] == first


async def test_unknown_repository_tag_and_manifest_are_404(client: httpx.AsyncClient):
    await _two_images(client, "acr/known")
    assert (await client.get("/acr/v1/acr/unknown")).status_code == 404
    assert (await client.get("/acr/v1/acr/known/_tags/nope")).status_code == 404
    missing = "sha256:" + "0" * 64
    assert (await client.get(f"/acr/v1/acr/known/_manifests/{missing}")).status_code == 404
    bad = await client.get("/acr/v1/acr/known/_manifests/sha256:xyz")
    assert_oci_error(bad, 400, "DIGEST_INVALID")


async def test_bad_paging_and_attributes_are_refused(client: httpx.AsyncClient):
    await _two_images(client, "acr/bad")
    assert (await client.get("/acr/v1/acr/bad/_tags?n=0")).status_code == 400
    assert (await client.get("/acr/v1/acr/bad/_tags?orderby=sideways")).status_code == 400
    refused = await client.patch("/acr/v1/acr/bad", json={"writeEnabled": "no"})
    assert refused.status_code == 400
    assert (await client.patch("/acr/v1/acr/bad", content=b"[1]")).status_code == 400


async def test_a_tag_with_write_disabled_cannot_be_moved_by_a_push(client: httpx.AsyncClient):
    first, _ = await _two_images(client, "lock/write")
    locked = await client.patch("/acr/v1/lock/write/_tags/v1", json={"writeEnabled": False})
    assert locked.json()["tag"]["changeableAttributes"]["writeEnabled"] is False
    other = make_image("lock/write-3")
    await push_image(client, "lock/write", other)
    moved = await push_manifest(client, "lock/write", "v1", other.manifest)
    assert_oci_error(moved, 403, "DENIED")
    assert "writeEnabled" in moved.json()["errors"][0]["message"]
    tag = (await client.get("/acr/v1/lock/write/_tags/v1")).json()["tag"]
    assert tag["digest"] == first


async def test_a_repository_with_write_disabled_refuses_uploads(client: httpx.AsyncClient):
    await _two_images(client, "lock/repo")
    await client.patch("/acr/v1/lock/repo", json={"writeEnabled": False})
    refused = await client.post("/v2/lock/repo/blobs/uploads/")
    assert_oci_error(refused, 403, "DENIED")
    await client.patch("/acr/v1/lock/repo", json={"writeEnabled": True})
    assert (await client.post("/v2/lock/repo/blobs/uploads/")).status_code == 202


async def test_delete_disabled_protects_manifest_tag_and_repository(client: httpx.AsyncClient):
    first, second = await _two_images(client, "lock/delete")
    await client.patch(f"/acr/v1/lock/delete/_manifests/{first}", json={"deleteEnabled": False})
    assert_oci_error(await client.delete(f"/v2/lock/delete/manifests/{first}"), 403, "DENIED")
    await client.patch("/acr/v1/lock/delete/_tags/latest", json={"deleteEnabled": False})
    assert_oci_error(await client.delete("/v2/lock/delete/manifests/latest"), 403, "DENIED")
    # The locked tag protects the manifest it points at too.
    assert_oci_error(await client.delete(f"/v2/lock/delete/manifests/{second}"), 403, "DENIED")
    assert (await client.delete("/acr/v1/lock/delete")).status_code == 403
    assert (await client.delete("/v2/lock/delete/manifests/v2")).status_code == 202


async def test_read_disabled_refuses_pulls_by_tag_and_digest(client: httpx.AsyncClient):
    first, _ = await _two_images(client, "lock/read")
    await client.patch(f"/acr/v1/lock/read/_manifests/{first}", json={"readEnabled": False})
    for reference in ("v1", first):
        refused = await client.get(f"/v2/lock/read/manifests/{reference}")
        assert_oci_error(refused, 403, "DENIED")
        assert "readEnabled" in refused.json()["errors"][0]["message"]
    assert (await client.get("/v2/lock/read/manifests/v2")).status_code == 200
    await client.patch("/acr/v1/lock/read", json={"readEnabled": False})
    assert_oci_error(await client.get("/v2/lock/read/manifests/v2"), 403, "DENIED")


async def test_list_disabled_hides_tags_and_repositories(client: httpx.AsyncClient):
    await _two_images(client, "lock/list")
    await client.patch("/acr/v1/lock/list/_tags/v1", json={"listEnabled": False})
    tags = (await client.get("/v2/lock/list/tags/list")).json()["tags"]
    assert tags == ["latest", "v2"]
    await client.patch("/acr/v1/lock/list", json={"listEnabled": False})
    assert_oci_error(await client.get("/v2/lock/list/tags/list"), 403, "DENIED")
    assert "lock/list" not in (await client.get("/v2/_catalog")).json()["repositories"]


async def test_deleting_a_repository_removes_its_manifests_and_tags(client: httpx.AsyncClient):
    first, second = await _two_images(client, "acr/gone")
    deleted = await client.delete("/acr/v1/acr/gone")
    assert deleted.status_code == 202
    assert sorted(deleted.json()["manifestsDeleted"]) == sorted([first, second])
    assert deleted.json()["tagsDeleted"] == ["latest", "v1", "v2"]
    assert (await client.get("/v2/acr/gone/tags/list")).status_code == 404
    assert (await client.get("/acr/v1/acr/gone")).status_code == 404


async def test_the_repository_api_needs_credentials(anonymous: httpx.AsyncClient):
    refused = await anonymous.get("/acr/v1/_catalog")
    assert refused.status_code == 401
    assert 'scope="registry:catalog:*"' in refused.headers["www-authenticate"]


async def test_usage_counts_shared_layers_once(client: httpx.AsyncClient):
    image = make_image("usage")
    await push_image(client, "usage/a", image, "v1")
    await push_image(client, "usage/b", image, "v1")
    rows = (await client.get("/api/registries/default/usages")).json()["value"]
    size = next(r for r in rows if r["name"] == "Size")
    expected = image.size + sum(b.size for b in image.blobs)
    assert size["currentValue"] == expected and size["unit"] == "Bytes"
    assert [r["name"] for r in rows] == [
        "Size", "Webhooks", "Geo-replications", "IPRules", "Tokens", "ScopeMaps"
    ]  # fmt: skip
