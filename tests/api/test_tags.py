"""end-8a/8b: listing tags, with `n` and `last` paging."""

from __future__ import annotations

import httpx
import pytest

from .helpers import (
    assert_oci_error,
    make_image,
    next_link,
    push_image,
    push_manifest,
)

REPO = "list/tags"
TAGS = ["v1", "latest", "1.0", "alpha", "v10", "beta", "2.0", "v2", "0.9", "edge"]


async def _push_tags(client: httpx.AsyncClient, repo: str, tags: list[str]) -> None:
    image = make_image(f"tags-{repo}")
    await push_image(client, repo, image, tags[0])
    for tag in tags[1:]:
        resp = await push_manifest(client, repo, tag, image.manifest)
        assert resp.status_code == 201


async def test_tags_list_returns_name_and_all_tags_in_lexical_order(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list")
    assert resp.status_code == 200
    assert "json" in resp.headers["content-type"]
    assert resp.json() == {"name": REPO, "tags": sorted(TAGS)}
    assert "link" not in resp.headers


async def test_tags_of_different_manifests_are_all_listed(client: httpx.AsyncClient):
    for i, tag in enumerate(["c", "a", "b"]):
        await push_image(client, "list/mixed", make_image(f"mixed-{i}"), tag)
    resp = await client.get("/v2/list/mixed/tags/list")
    assert resp.json() == {"name": "list/mixed", "tags": ["a", "b", "c"]}


async def test_tags_list_of_an_unknown_repository_answers_404_name_unknown(
    client: httpx.AsyncClient,
):
    resp = await client.get("/v2/no/such/repo/tags/list")
    assert_oci_error(resp, 404, "NAME_UNKNOWN")


async def test_tags_list_with_n_returns_the_first_n_and_a_next_link(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    expected = sorted(TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": 3})
    assert resp.status_code == 200
    assert resp.json() == {"name": REPO, "tags": expected[:3]}
    assert resp.headers["link"] == f'</v2/{REPO}/tags/list?n=3&last={expected[2]}>; rel="next"'


async def test_following_next_links_walks_every_tag_once(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    seen: list[str] = []
    url: str | None = f"/v2/{REPO}/tags/list?n=3"
    pages = 0
    while url is not None:
        resp = await client.get(url)
        assert resp.status_code == 200
        page = resp.json()["tags"]
        assert len(page) <= 3
        seen.extend(page)
        url = next_link(resp)
        pages += 1
        assert pages <= 10
    assert seen == sorted(TAGS)
    assert pages == 4


async def test_the_last_page_has_no_link(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    expected = sorted(TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": 3, "last": expected[6]})
    assert resp.json()["tags"] == expected[7:]
    assert "link" not in resp.headers
    exact = await client.get(f"/v2/{REPO}/tags/list", params={"n": len(TAGS)})
    assert exact.json()["tags"] == expected
    assert "link" not in exact.headers


async def test_last_starts_after_the_given_tag(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    expected = sorted(TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": 2, "last": expected[3]})
    assert resp.json()["tags"] == expected[4:6]


async def test_last_without_n_returns_everything_after_it(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    expected = sorted(TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"last": expected[4]})
    assert resp.status_code == 200
    assert resp.json()["tags"] == expected[5:]


async def test_last_that_is_not_a_tag_starts_after_its_lexical_position(
    client: httpx.AsyncClient,
):
    await _push_tags(client, REPO, TAGS)
    expected = sorted(TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": 100, "last": "b"})
    assert resp.json()["tags"] == [t for t in expected if t > "b"]


async def test_last_after_every_tag_returns_an_empty_list(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": 5, "last": "zzz"})
    assert resp.status_code == 200
    assert resp.json() == {"name": REPO, "tags": []}
    assert "link" not in resp.headers


async def test_n_zero_returns_an_empty_list_and_no_link(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": 0})
    assert resp.status_code == 200
    assert resp.json() == {"name": REPO, "tags": []}
    assert "link" not in resp.headers


async def test_n_of_10000_is_accepted(client: httpx.AsyncClient):
    await _push_tags(client, REPO, TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": 10000})
    assert resp.status_code == 200
    assert resp.json()["tags"] == sorted(TAGS)
    assert "link" not in resp.headers


@pytest.mark.parametrize("n", ["-1", "abc", "10001", "1.5", "99999999999999999999"])
async def test_an_invalid_n_answers_400_pagination_number_invalid(
    client: httpx.AsyncClient, n: str
):
    await _push_tags(client, REPO, TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list?n={n}")
    assert_oci_error(resp, 400, "PAGINATION_NUMBER_INVALID")


async def test_a_repository_with_only_untagged_manifests_lists_no_tags(
    client: httpx.AsyncClient,
):
    await push_image(client, "list/untagged", make_image("untagged"))
    resp = await client.get("/v2/list/untagged/tags/list")
    assert resp.status_code == 200
    assert resp.json() == {"name": "list/untagged", "tags": []}


async def test_a_retagged_tag_is_listed_once(client: httpx.AsyncClient):
    await push_image(client, "list/retag", make_image("one"), "latest")
    await push_image(client, "list/retag", make_image("two"), "latest")
    resp = await client.get("/v2/list/retag/tags/list")
    assert resp.json()["tags"] == ["latest"]


async def test_tags_are_scoped_to_their_repository(client: httpx.AsyncClient):
    await _push_tags(client, "list/a", ["x", "y"])
    await _push_tags(client, "list/b", ["z"])
    await _push_tags(client, "list/a/nested", ["w"])
    assert (await client.get("/v2/list/a/tags/list")).json()["tags"] == ["x", "y"]
    assert (await client.get("/v2/list/b/tags/list")).json()["tags"] == ["z"]
    assert (await client.get("/v2/list/a/nested/tags/list")).json()["tags"] == ["w"]


async def test_many_tags_page_through_completely(client: httpx.AsyncClient):
    tags = [f"t{i:04d}" for i in range(250)]
    await _push_tags(client, "list/many", tags)
    seen: list[str] = []
    url: str | None = "/v2/list/many/tags/list?n=100"
    while url is not None:
        resp = await client.get(url)
        assert resp.status_code == 200
        seen.extend(resp.json()["tags"])
        url = next_link(resp)
    assert seen == tags


PUNCTUATED_TAGS = ["b", "ab", "a_b", "a__b", "a0", "a.b", "a-b", "a--b", "a", "_x", "9", "10"]


async def test_tags_with_punctuation_are_listed_in_code_point_order(client: httpx.AsyncClient):
    await _push_tags(client, "list/punct", PUNCTUATED_TAGS)
    resp = await client.get("/v2/list/punct/tags/list")
    assert resp.json()["tags"] == sorted(PUNCTUATED_TAGS)


async def test_paging_one_tag_at_a_time_walks_the_same_order_as_the_full_list(
    client: httpx.AsyncClient,
):
    await _push_tags(client, "list/punct", PUNCTUATED_TAGS)
    full = (await client.get("/v2/list/punct/tags/list")).json()["tags"]
    assert sorted(full) == sorted(PUNCTUATED_TAGS)
    walked: list[str] = []
    url: str | None = "/v2/list/punct/tags/list?n=1"
    while url is not None and len(walked) <= len(PUNCTUATED_TAGS):
        resp = await client.get(url)
        walked.extend(resp.json()["tags"])
        url = next_link(resp)
    assert walked == full
    # `last` alone gives the rest of the same order.
    for i, tag in enumerate(full):
        rest = await client.get("/v2/list/punct/tags/list", params={"last": tag})
        assert rest.json()["tags"] == full[i + 1 :], tag


async def test_the_next_link_of_a_middle_page_carries_n_and_the_last_tag_of_that_page(
    client: httpx.AsyncClient,
):
    await _push_tags(client, REPO, TAGS)
    expected = sorted(TAGS)
    resp = await client.get(f"/v2/{REPO}/tags/list", params={"n": 2, "last": expected[1]})
    assert resp.json()["tags"] == expected[2:4]
    assert resp.headers["link"] == f'</v2/{REPO}/tags/list?n=2&last={expected[3]}>; rel="next"'
