"""`haven purge`'s filters and durations, read as `acr purge` reads them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haven.errors import ApiError
from haven.purge_rules import parse_ago, parse_filter

UNITS_MS = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}


@given(st.lists(st.tuples(st.integers(0, 500), st.sampled_from(list(UNITS_MS))), min_size=1))
def test_a_duration_is_the_sum_of_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * UNITS_MS[unit] for n, unit in parts)
    assert parse_ago(text) == expected


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2d3h6m", 2 * 86_400_000 + 3 * 3_600_000 + 6 * 60_000),
        ("1.5h", 5_400_000),
        ("90m", 5_400_000),
        ("0", 0),
        ("0d", 0),
        ("500us", 0),
        ("1500µs", 1),
        ("30s", 30_000),
    ],
)
def test_durations_as_acr_purge_takes_them(text: str, ms: int) -> None:
    assert parse_ago(text) == ms


@pytest.mark.parametrize(
    "text", ["", "2", "d", "2x", "2d 3h", "-1d", "1w", "h2", "2d3", "1e3s", "99999999999d"]
)
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_ago(text)
    assert refused.value.status == 400


@given(st.text(max_size=40))
def test_any_text_is_parsed_or_refused_cleanly(text: str) -> None:
    try:
        assert parse_ago(text) >= 0
    except ApiError as refused:
        assert refused.status == 400
    try:
        parse_filter(text)
    except ApiError as refused:
        assert refused.status == 400


def test_the_repository_part_is_anchored_and_the_tag_part_is_not() -> None:
    selected = parse_filter("app:v1")
    assert selected.repository_matches("app")
    assert not selected.repository_matches("myapp")
    assert not selected.repository_matches("app-old")
    assert [t for t in ["v1", "v10", "xv1", "v2"] if selected.tag_matches(t)] == [
        "v1",
        "v10",
        "xv1",
    ]
    assert parse_filter("samples/.*:^v1$").repository_matches("samples/hello")
    assert not parse_filter("samples/.*:^v1$").tag_matches("v10")


def test_an_empty_tag_part_selects_every_tag_and_groups_keep_their_colon() -> None:
    assert parse_filter("app:").tag_matches("anything")
    grouped = parse_filter("(?:app|web):(?:v1|v2)")
    assert grouped.repository_matches("web") and grouped.tag_matches("v2")
    assert not grouped.tag_matches("v3")


@pytest.mark.parametrize("text", ["app", ":v1", "app:(", "(:v1", "a" * 1001 + ":x"])
def test_a_malformed_filter_is_refused(text: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_filter(text)
    assert refused.value.status == 400
