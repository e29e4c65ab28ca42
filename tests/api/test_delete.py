"""end-9: deleting manifests and tags."""

from __future__ import annotations

import asyncio

import httpx

from .helpers import (
    Manifest,
    assert_oci_error,
    canonical,
    make_artifact,
    make_image,
    make_index,
    push_blobs,
    push_image,
    push_manifest,
    sha256,
)


async def test_delete_manifest_by_digest_answers_202_and_then_it_is_unknown(
    client: httpx.AsyncClient,
):
    image = make_image("delete-me")
    await push_image(client, "del/manifest", image, "v1")
    resp = await client.delete(f"/v2/del/manifest/manifests/{image.digest}")
    assert resp.status_code == 202
    got = await client.get(f"/v2/del/manifest/manifests/{image.digest}")
    assert_oci_error(got, 404, "MANIFEST_UNKNOWN")
    head = await client.head(f"/v2/del/manifest/manifests/{image.digest}")
    assert head.status_code == 404


async def test_deleting_a_manifest_by_digest_removes_every_tag_pointing_at_it(
    client: httpx.AsyncClient,
):
    image = make_image("tagged-thrice")
    other = make_image("survivor")
    await push_image(client, "del/tags", image, "a")
    for tag in ("b", "c"):
        assert (await push_manifest(client, "del/tags", tag, image.manifest)).status_code == 201
    await push_image(client, "del/tags", other, "keep")
    resp = await client.delete(f"/v2/del/tags/manifests/{image.digest}")
    assert resp.status_code == 202
    for tag in ("a", "b", "c"):
        got = await client.get(f"/v2/del/tags/manifests/{tag}")
        assert_oci_error(got, 404, "MANIFEST_UNKNOWN")
    tags = await client.get("/v2/del/tags/tags/list")
    assert tags.json()["tags"] == ["keep"]
    assert (await client.get("/v2/del/tags/manifests/keep")).content == other.manifest


async def test_delete_by_tag_answers_202_and_removes_only_the_tag(client: httpx.AsyncClient):
    image = make_image("untag")
    await push_image(client, "del/untag", image, "old")
    assert (await push_manifest(client, "del/untag", "new", image.manifest)).status_code == 201
    resp = await client.delete("/v2/del/untag/manifests/old")
    assert resp.status_code == 202
    assert_oci_error(await client.get("/v2/del/untag/manifests/old"), 404, "MANIFEST_UNKNOWN")
    by_digest = await client.get(f"/v2/del/untag/manifests/{image.digest}")
    assert by_digest.status_code == 200
    assert by_digest.content == image.manifest
    assert (await client.get("/v2/del/untag/manifests/new")).status_code == 200
    tags = await client.get("/v2/del/untag/tags/list")
    assert tags.json()["tags"] == ["new"]


async def test_delete_of_an_unknown_manifest_digest_answers_404_manifest_unknown(
    client: httpx.AsyncClient,
):
    await push_image(client, "del/unknown", make_image("present"), "v1")
    resp = await client.delete(f"/v2/del/unknown/manifests/{sha256(b'absent')}")
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN")


async def test_delete_of_an_unknown_tag_answers_404_manifest_unknown(client: httpx.AsyncClient):
    await push_image(client, "del/unknown", make_image("present"), "v1")
    resp = await client.delete("/v2/del/unknown/manifests/absent")
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN")


async def test_delete_of_a_manifest_in_an_unknown_repository_answers_404(
    client: httpx.AsyncClient,
):
    resp = await client.delete(f"/v2/no/such/repo/manifests/{sha256(b'x')}")
    assert_oci_error(resp, 404, ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"))


async def test_deleting_a_manifest_twice_answers_404_the_second_time(
    client: httpx.AsyncClient,
):
    image = make_image("twice-deleted")
    await push_image(client, "del/twice", image, "v1")
    assert (await client.delete(f"/v2/del/twice/manifests/{image.digest}")).status_code == 202
    resp = await client.delete(f"/v2/del/twice/manifests/{image.digest}")
    assert_oci_error(resp, 404, "MANIFEST_UNKNOWN")


async def test_deleting_a_manifest_in_one_repository_leaves_it_in_another(
    client: httpx.AsyncClient,
):
    image = make_image("two-homes")
    await push_image(client, "del/one", image, "v1")
    await push_image(client, "del/two", image, "v1")
    assert (await client.delete(f"/v2/del/one/manifests/{image.digest}")).status_code == 202
    assert (await client.get(f"/v2/del/one/manifests/{image.digest}")).status_code == 404
    kept = await client.get("/v2/del/two/manifests/v1")
    assert kept.status_code == 200
    assert kept.content == image.manifest


async def test_a_deleted_manifest_can_be_pushed_again(client: httpx.AsyncClient):
    """Deleting a manifest removes the repository's links to the blobs only it used (as
    ACR deletes an image's unique layers), so a client pushes them again, as docker does
    when its HEAD requests answer 404."""
    image = make_image("phoenix")
    await push_image(client, "del/again", image, "v1")
    assert (await client.delete(f"/v2/del/again/manifests/{image.digest}")).status_code == 202
    for blob in image.blobs:
        assert (await client.head(f"/v2/del/again/blobs/{blob.digest}")).status_code == 404
    resp = await push_manifest(client, "del/again", "v1", image.manifest)
    assert_oci_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")
    await push_image(client, "del/again", image, "v1")
    assert (await client.get("/v2/del/again/manifests/v1")).content == image.manifest


async def test_deleting_a_manifest_keeps_links_that_others_use(client: httpx.AsyncClient):
    """A layer another manifest of the repository references stays linked, and so does
    a blob uploaded again after the deleted manifest was pushed (a push in progress)."""
    shared = make_image("shared-base", layers=2)
    other = make_image("shared-other")
    await push_image(client, "del/keep", shared, "v1")
    # A second image reusing the first one's layers.
    reuse = make_image("shared-reuse")
    reuse_doc = reuse.json
    reuse_doc["layers"] = [layer.descriptor() for layer in shared.layers]
    reusing = Manifest(canonical(reuse_doc), reuse.media_type, (reuse.config, *shared.layers))
    await push_image(client, "del/keep", reusing, "v2")
    await push_image(client, "del/keep", other, "v3")
    await asyncio.sleep(0.01)
    await push_blobs(client, "del/keep", [other.layers[0]])  # uploaded again: about to be used
    for manifest in (shared, other):
        assert (await client.delete(f"/v2/del/keep/manifests/{manifest.digest}")).status_code == 202
    for layer in (*shared.layers, other.layers[0]):
        assert (await client.head(f"/v2/del/keep/blobs/{layer.digest}")).status_code == 200
    assert (await client.head(f"/v2/del/keep/blobs/{shared.config_digest}")).status_code == 404
    assert (await client.head(f"/v2/del/keep/blobs/{other.config_digest}")).status_code == 404


async def test_deleting_an_index_child_leaves_the_index_readable_or_is_refused(
    client: httpx.AsyncClient,
):
    child = make_image("child")
    index = make_index([child])
    await push_image(client, "del/index", index, "multi")
    resp = await client.delete(f"/v2/del/index/manifests/{child.digest}")
    assert resp.status_code in (202, 400, 405, 409), resp.status_code
    assert (await client.get("/v2/del/index/manifests/multi")).content == index.manifest


async def test_deleting_a_referrer_removes_it_from_the_referrers_list(
    client: httpx.AsyncClient,
):
    base = make_image("ref-base")
    await push_image(client, "del/referrer", base, "v1")
    sig = make_artifact("ref-sig", "application/vnd.example.signature.v1", subject=base)
    sbom = make_artifact("ref-sbom", "application/vnd.example.sbom.v1", subject=base)
    await push_image(client, "del/referrer", sig)
    await push_image(client, "del/referrer", sbom)
    assert (await client.delete(f"/v2/del/referrer/manifests/{sig.digest}")).status_code == 202
    resp = await client.get(f"/v2/del/referrer/referrers/{base.digest}")
    assert resp.status_code == 200
    assert [d["digest"] for d in resp.json()["manifests"]] == [sbom.digest]


async def test_deleting_a_subject_keeps_the_referrers_api_answering_200(
    client: httpx.AsyncClient,
):
    base = make_image("gone-base")
    await push_image(client, "del/subject", base, "v1")
    sig = make_artifact("gone-sig", "application/vnd.example.signature.v1", subject=base)
    await push_image(client, "del/subject", sig)
    assert (await client.delete(f"/v2/del/subject/manifests/{base.digest}")).status_code == 202
    resp = await client.get(f"/v2/del/subject/referrers/{base.digest}")
    assert resp.status_code == 200
    assert resp.headers["content-type"].split(";")[0] == "application/vnd.oci.image.index.v1+json"


async def test_deleting_the_only_tag_leaves_an_empty_tag_list(client: httpx.AsyncClient):
    image = make_image("only-tag")
    await push_image(client, "del/onlytag", image, "solo")
    assert (await client.delete("/v2/del/onlytag/manifests/solo")).status_code == 202
    resp = await client.get("/v2/del/onlytag/tags/list")
    assert resp.status_code == 200
    assert resp.json() == {"name": "del/onlytag", "tags": []}
    assert (await client.get(f"/v2/del/onlytag/manifests/{image.digest}")).status_code == 200
