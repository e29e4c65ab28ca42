"""What `haven purge` selects, parsed as `acr purge` reads it.

- `--filter 'repoRegex:tagRegex'`: the repository part must match a repository's whole
  name; the tag part may match anywhere in a tag (so `app:.*` and `app:` select every tag
  of `app`, `app:^v1` the tags starting with v1). The two parts are split at the first
  colon that does not belong to a `(?:` group.
- `--ago 2d3h6m`: a duration of days (`d`) plus Go's units (`h`, `m`, `s`, `ms`, `us`/`µs`,
  `ns`), each a number with an optional fraction; `0` (or `0d`) means "any age".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from haven.errors import ApiError

_UNIT_MS = {
    "d": 86_400_000.0,
    "h": 3_600_000.0,
    "m": 60_000.0,
    "s": 1_000.0,
    "ms": 1.0,
    "us": 0.001,
    "µs": 0.001,
    "μs": 0.001,
    "ns": 0.000001,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|μs|ns|d|h|m|s)")
MAX_AGO_MS = 100 * 365 * 86_400_000  # a century: anything longer is a typo
MAX_REGEX = 1000


def parse_ago(text: str) -> int:
    """Milliseconds in a duration such as `2d3h6m`, `30m`, `1.5h` or `0`."""
    value = text.strip()
    if value in ("0", ""):
        if value == "":
            raise ApiError(400, "InvalidDuration", "the duration is empty: use e.g. 2d3h6m")
        return 0
    total, position = 0.0, 0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    if position != len(value):
        raise ApiError(
            400,
            "InvalidDuration",
            f"invalid duration {text[:60]!r}: use days and Go units, e.g. 2d3h6m, 90m, 1.5h",
        )
    if total > MAX_AGO_MS:
        raise ApiError(400, "InvalidDuration", f"duration {text[:60]!r} is longer than a century")
    return int(total)


@dataclass(frozen=True)
class Filter:
    repository: re.Pattern[str]
    tag: re.Pattern[str]
    text: str

    def repository_matches(self, name: str) -> bool:
        return self.repository.fullmatch(name) is not None

    def tag_matches(self, tag: str) -> bool:
        return self.tag.search(tag) is not None


def _split(text: str) -> tuple[str, str]:
    for index, char in enumerate(text):
        if char == ":" and not text[max(0, index - 2) : index].endswith("(?"):
            return text[:index], text[index + 1 :]
    raise ApiError(
        400, "InvalidFilter", f"filter {text[:100]!r} has no ':' between repository and tag"
    )


def parse_filter(text: str) -> Filter:
    if len(text) > MAX_REGEX:
        raise ApiError(400, "InvalidFilter", f"a filter is limited to {MAX_REGEX} characters")
    repository, tag = _split(text)
    if not repository:
        raise ApiError(400, "InvalidFilter", f"filter {text[:100]!r} names no repository")
    try:
        return Filter(re.compile(repository), re.compile(tag or ".*"), text)
    except re.error as error:
        raise ApiError(
            400,
            "InvalidFilter",
            f"filter {text[:100]!r} is not a valid regular expression: {error}",
        ) from None
