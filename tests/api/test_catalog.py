"""GET /v2/_catalog: listing repositories, with `n` and `last` paging."""

from __future__ import annotations

import httpx
import pytest

from .helpers import assert_oci_error, make_image, next_link, push_image

REPOS = ["zeta", "alpha", "mid/one", "mid/two", "beta", "alpha/nested", "gamma"]


async def _push_repos(client: httpx.AsyncClient, repos: list[str]) -> None:
    for repo in repos:
        await push_image(client, repo, make_image(f"catalog-{repo}"), "latest")


async def test_an_empty_registry_has_an_empty_catalog(client: httpx.AsyncClient):
    resp = await client.get("/v2/_catalog")
    assert resp.status_code == 200
    assert resp.json() == {"repositories": []}


async def test_catalog_lists_every_repository_sorted(client: httpx.AsyncClient):
    await _push_repos(client, REPOS)
    resp = await client.get("/v2/_catalog")
    assert resp.status_code == 200
    assert "json" in resp.headers["content-type"]
    assert resp.json() == {"repositories": sorted(REPOS)}
    assert "link" not in resp.headers


async def test_catalog_with_n_returns_the_first_n_and_a_next_link(client: httpx.AsyncClient):
    repos = ["c", "a", "e", "b", "d"]
    await _push_repos(client, repos)
    resp = await client.get("/v2/_catalog", params={"n": 2})
    assert resp.json() == {"repositories": ["a", "b"]}
    assert resp.headers["link"] == '</v2/_catalog?n=2&last=b>; rel="next"'


async def test_following_catalog_links_walks_every_repository_once(
    client: httpx.AsyncClient,
):
    await _push_repos(client, REPOS)
    seen: list[str] = []
    url: str | None = "/v2/_catalog?n=2"
    pages = 0
    while url is not None:
        resp = await client.get(url)
        assert resp.status_code == 200
        page = resp.json()["repositories"]
        assert len(page) <= 2
        seen.extend(page)
        url = next_link(resp)
        pages += 1
        assert pages <= 10
    assert seen == sorted(REPOS)


async def test_catalog_last_starts_after_the_given_repository(client: httpx.AsyncClient):
    await _push_repos(client, REPOS)
    expected = sorted(REPOS)
    resp = await client.get("/v2/_catalog", params={"n": 2, "last": expected[1]})
    assert resp.json()["repositories"] == expected[2:4]
    rest = await client.get("/v2/_catalog", params={"last": expected[4]})
    assert rest.json()["repositories"] == expected[5:]
    assert "link" not in rest.headers


async def test_catalog_n_zero_returns_an_empty_list_and_no_link(client: httpx.AsyncClient):
    await _push_repos(client, REPOS)
    resp = await client.get("/v2/_catalog", params={"n": 0})
    assert resp.status_code == 200
    assert resp.json() == {"repositories": []}
    assert "link" not in resp.headers


async def test_catalog_n_of_10000_is_accepted(client: httpx.AsyncClient):
    await _push_repos(client, REPOS)
    resp = await client.get("/v2/_catalog", params={"n": 10000})
    assert resp.status_code == 200
    assert resp.json() == {"repositories": sorted(REPOS)}
    assert "link" not in resp.headers


@pytest.mark.parametrize("n", ["-1", "abc", "10001", "1.5", "99999999999999999999"])
async def test_catalog_with_an_invalid_n_answers_400_pagination_number_invalid(
    client: httpx.AsyncClient, n: str
):
    resp = await client.get(f"/v2/_catalog?n={n}")
    assert_oci_error(resp, 400, "PAGINATION_NUMBER_INVALID")


async def test_a_repository_whose_manifests_are_all_pushed_twice_is_listed_once(
    client: httpx.AsyncClient,
):
    await push_image(client, "once", make_image("one"), "a")
    await push_image(client, "once", make_image("two"), "b")
    resp = await client.get("/v2/_catalog")
    assert resp.json()["repositories"] == ["once"]


PUNCTUATED_REPOS = ["ab", "a_b", "a/b", "a0", "a.b", "a-b", "a", "a/b/c", "a-b/c", "9", "10"]


async def test_repositories_with_punctuation_are_listed_in_code_point_order(
    client: httpx.AsyncClient,
):
    await _push_repos(client, PUNCTUATED_REPOS)
    resp = await client.get("/v2/_catalog")
    assert resp.json()["repositories"] == sorted(PUNCTUATED_REPOS)


async def test_paging_one_repository_at_a_time_walks_the_same_order_as_the_full_list(
    client: httpx.AsyncClient,
):
    await _push_repos(client, PUNCTUATED_REPOS)
    full = (await client.get("/v2/_catalog")).json()["repositories"]
    assert sorted(full) == sorted(PUNCTUATED_REPOS)
    walked: list[str] = []
    url: str | None = "/v2/_catalog?n=1"
    while url is not None and len(walked) <= len(PUNCTUATED_REPOS):
        resp = await client.get(url)
        walked.extend(resp.json()["repositories"])
        url = next_link(resp)
    assert walked == full
