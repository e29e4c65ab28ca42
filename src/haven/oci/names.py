"""Repository names and tags, with the distribution spec's rules."""

from __future__ import annotations

import re

from haven.errors import NameInvalid, TagInvalid

MAX_NAME_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")

NAME_RULE = (
    "repository names are path components of lowercase letters and digits, separated by "
    "'.', '_', '__' or '-' within a component and '/' between components, at most "
    f"{MAX_NAME_LENGTH} characters"
)
TAG_RULE = (
    "tags start with a letter, digit or '_', continue with letters, digits, '.', '_' or '-', "
    "and are at most 128 characters"
)


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH or not _NAME.match(name):
        raise NameInvalid(f"invalid repository name {name[:300]!r}: {NAME_RULE}")
    return name


def validate_tag(tag: str) -> str:
    if not _TAG.match(tag):
        raise TagInvalid(f"invalid tag {tag[:300]!r}: {TAG_RULE}")
    return tag
