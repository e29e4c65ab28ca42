"""end-12a/12b: the referrers API."""

from __future__ import annotations

import httpx
import pytest

from .helpers import (
    MALFORMED_DIGESTS,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    assert_oci_error,
    make_artifact,
    make_image,
    make_index,
    push_image,
    sha256,
    sha512,
)

SIGNATURE = "application/vnd.example.signature.v1"
SBOM = "application/vnd.example.sbom.v1"


async def _referrers(
    client: httpx.AsyncClient, repo: str, digest: str, **params: str
) -> httpx.Response:
    resp = await client.get(f"/v2/{repo}/referrers/{digest}", params=params or None)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["content-type"].split(";")[0].strip() == OCI_INDEX
    return resp


def _by_digest(resp: httpx.Response) -> dict[str, dict]:
    body = resp.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return {d["digest"]: d for d in body["manifests"]}


async def test_referrers_lists_descriptors_of_manifests_whose_subject_is_the_digest(
    client: httpx.AsyncClient,
):
    base = make_image("base")
    await push_image(client, "ref/app", base, "v1")
    sig = make_artifact(
        "sig", SIGNATURE, subject=base, annotations={"org.example.fingerprint": "abcd"}
    )
    sbom = make_artifact("sbom", SBOM, subject=base, annotations={"org.example.format": "spdx"})
    await push_image(client, "ref/app", sig)
    await push_image(client, "ref/app", sbom)
    found = _by_digest(await _referrers(client, "ref/app", base.digest))
    assert found == {
        sig.digest: {
            "mediaType": OCI_MANIFEST,
            "digest": sig.digest,
            "size": sig.size,
            "artifactType": SIGNATURE,
            "annotations": {"org.example.fingerprint": "abcd"},
        },
        sbom.digest: {
            "mediaType": OCI_MANIFEST,
            "digest": sbom.digest,
            "size": sbom.size,
            "artifactType": SBOM,
            "annotations": {"org.example.format": "spdx"},
        },
    }


async def test_an_image_manifest_without_artifact_type_is_listed_with_its_config_media_type(
    client: httpx.AsyncClient,
):
    base = make_image("base-at")
    await push_image(client, "ref/at", base, "v1")
    custom = make_image(
        "custom-config", config_media_type="application/vnd.example.config.v1+json", subject=base
    )
    plain = make_image("plain-config", subject=base)
    await push_image(client, "ref/at", custom)
    await push_image(client, "ref/at", plain)
    found = _by_digest(await _referrers(client, "ref/at", base.digest))
    assert found[custom.digest]["artifactType"] == "application/vnd.example.config.v1+json"
    assert found[plain.digest]["artifactType"] == OCI_CONFIG


async def test_an_index_referrer_is_listed_with_its_artifact_type_or_none(
    client: httpx.AsyncClient,
):
    base = make_image("base-idx")
    await push_image(client, "ref/idx", base, "v1")
    typed = make_index(
        [make_image("typed-child")],
        subject=base,
        artifact_type="application/vnd.example.bundle.v1",
        annotations={"org.example.kind": "bundle"},
    )
    untyped = make_index([make_image("untyped-child")], subject=base)
    await push_image(client, "ref/idx", typed)
    await push_image(client, "ref/idx", untyped)
    found = _by_digest(await _referrers(client, "ref/idx", base.digest))
    assert found[typed.digest]["mediaType"] == OCI_INDEX
    assert found[typed.digest]["size"] == typed.size
    assert found[typed.digest]["artifactType"] == "application/vnd.example.bundle.v1"
    assert found[typed.digest]["annotations"] == {"org.example.kind": "bundle"}
    assert "artifactType" not in found[untyped.digest]


async def test_manifests_without_that_subject_are_not_listed(client: httpx.AsyncClient):
    base = make_image("base-only")
    other = make_image("other-subject")
    await push_image(client, "ref/only", base, "v1")
    await push_image(client, "ref/only", other, "v2")
    mine = make_artifact("mine", SIGNATURE, subject=base)
    theirs = make_artifact("theirs", SIGNATURE, subject=other)
    await push_image(client, "ref/only", mine)
    await push_image(client, "ref/only", theirs)
    found = _by_digest(await _referrers(client, "ref/only", base.digest))
    assert list(found) == [mine.digest]
    # The subject itself and untagged plain images are not referrers.
    assert base.digest not in found


async def test_referrers_are_scoped_to_the_repository(client: httpx.AsyncClient):
    base = make_image("scoped-base")
    await push_image(client, "ref/one", base, "v1")
    await push_image(client, "ref/two", base, "v1")
    sig = make_artifact("scoped-sig", SIGNATURE, subject=base)
    await push_image(client, "ref/two", sig)
    assert _by_digest(await _referrers(client, "ref/one", base.digest)) == {}
    assert list(_by_digest(await _referrers(client, "ref/two", base.digest))) == [sig.digest]


async def test_an_unknown_subject_answers_200_with_an_empty_index(client: httpx.AsyncClient):
    await push_image(client, "ref/empty", make_image("something"), "v1")
    resp = await _referrers(client, "ref/empty", sha256(b"no such subject"))
    assert resp.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


async def test_a_subject_with_a_sha512_digest_answers_200(client: httpx.AsyncClient):
    await push_image(client, "ref/empty", make_image("something"), "v1")
    resp = await _referrers(client, "ref/empty", sha512(b"no such subject"))
    assert resp.json()["manifests"] == []


async def test_a_referrer_pushed_before_its_subject_is_listed(client: httpx.AsyncClient):
    base = make_image("late-base")
    sig = make_artifact("early-sig", SIGNATURE, subject=base)
    await push_image(client, "ref/order", sig)
    found = _by_digest(await _referrers(client, "ref/order", base.digest))
    assert list(found) == [sig.digest]
    await push_image(client, "ref/order", base, "v1")
    found = _by_digest(await _referrers(client, "ref/order", base.digest))
    assert list(found) == [sig.digest]


async def test_artifact_type_filter_returns_only_that_type_and_says_so(
    client: httpx.AsyncClient,
):
    base = make_image("filter-base")
    await push_image(client, "ref/filter", base, "v1")
    sig = make_artifact("f-sig", SIGNATURE, subject=base)
    sbom = make_artifact("f-sbom", SBOM, subject=base)
    sbom2 = make_artifact("f-sbom-2", SBOM, subject=base)
    for manifest in (sig, sbom, sbom2):
        await push_image(client, "ref/filter", manifest)
    resp = await _referrers(client, "ref/filter", base.digest, artifactType=SBOM)
    assert resp.headers["oci-filters-applied"] == "artifactType"
    found = _by_digest(resp)
    assert set(found) == {sbom.digest, sbom2.digest}
    assert all(d["artifactType"] == SBOM for d in found.values())


async def test_artifact_type_filter_matches_the_config_media_type_fallback(
    client: httpx.AsyncClient,
):
    base = make_image("filter-fallback-base")
    await push_image(client, "ref/filterfb", base, "v1")
    legacy = make_image(
        "legacy-sig", config_media_type="application/vnd.example.legacy.v1", subject=base
    )
    await push_image(client, "ref/filterfb", legacy)
    await push_image(client, "ref/filterfb", make_artifact("other", SBOM, subject=base))
    resp = await _referrers(
        client, "ref/filterfb", base.digest, artifactType="application/vnd.example.legacy.v1"
    )
    assert resp.headers["oci-filters-applied"] == "artifactType"
    assert list(_by_digest(resp)) == [legacy.digest]


async def test_artifact_type_filter_with_no_match_answers_an_empty_index(
    client: httpx.AsyncClient,
):
    base = make_image("filter-none-base")
    await push_image(client, "ref/filternone", base, "v1")
    await push_image(client, "ref/filternone", make_artifact("s", SIGNATURE, subject=base))
    resp = await _referrers(
        client, "ref/filternone", base.digest, artifactType="application/vnd.example.none"
    )
    assert resp.headers["oci-filters-applied"] == "artifactType"
    assert resp.json()["manifests"] == []


async def test_no_filter_means_no_filters_applied_header(client: httpx.AsyncClient):
    base = make_image("nofilter-base")
    await push_image(client, "ref/nofilter", base, "v1")
    resp = await _referrers(client, "ref/nofilter", base.digest)
    assert "oci-filters-applied" not in resp.headers


@pytest.mark.parametrize("digest", MALFORMED_DIGESTS)
async def test_referrers_with_a_malformed_digest_answers_400_digest_invalid(
    client: httpx.AsyncClient, digest: str
):
    await push_image(client, "ref/bad", make_image("bad"), "v1")
    resp = await client.get(f"/v2/ref/bad/referrers/{digest}")
    assert_oci_error(resp, 400, "DIGEST_INVALID")


async def test_a_referrer_of_a_referrer_is_listed_under_its_own_subject(
    client: httpx.AsyncClient,
):
    base = make_image("chain-base")
    await push_image(client, "ref/chain", base, "v1")
    sbom = make_artifact("chain-sbom", SBOM, subject=base)
    await push_image(client, "ref/chain", sbom)
    sbom_sig = make_artifact("chain-sig", SIGNATURE, subject=sbom)
    await push_image(client, "ref/chain", sbom_sig)
    assert list(_by_digest(await _referrers(client, "ref/chain", base.digest))) == [sbom.digest]
    assert list(_by_digest(await _referrers(client, "ref/chain", sbom.digest))) == [sbom_sig.digest]


async def test_a_tagged_referrer_is_listed_and_untagging_it_keeps_it_listed(
    client: httpx.AsyncClient,
):
    base = make_image("tagged-ref-base")
    await push_image(client, "ref/tagged", base, "v1")
    sig = make_artifact("tagged-sig", SIGNATURE, subject=base)
    await push_image(client, "ref/tagged", sig, "sig")
    assert list(_by_digest(await _referrers(client, "ref/tagged", base.digest))) == [sig.digest]
    assert (await client.delete("/v2/ref/tagged/manifests/sig")).status_code == 202
    assert list(_by_digest(await _referrers(client, "ref/tagged", base.digest))) == [sig.digest]


async def test_many_referrers_are_all_reachable(client: httpx.AsyncClient):
    base = make_image("many-base")
    await push_image(client, "ref/many", base, "v1")
    digests = set()
    for i in range(30):
        artifact = make_artifact(f"many-{i}", SIGNATURE, subject=base)
        await push_image(client, "ref/many", artifact)
        digests.add(artifact.digest)
    seen: set[str] = set()
    url: str | None = f"/v2/ref/many/referrers/{base.digest}"
    pages = 0
    while url is not None:
        resp = await client.get(url)
        assert resp.status_code == 200
        seen |= {d["digest"] for d in resp.json()["manifests"]}
        link = resp.headers.get("link")
        url = link.split(";")[0].strip()[1:-1] if link else None
        pages += 1
        assert pages <= 40
    assert seen == digests
