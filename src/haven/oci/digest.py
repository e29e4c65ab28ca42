"""Content digests: parsing, validation and the hashers behind them.

Only algorithms Haven can verify are accepted: a digest it cannot check is refused with
DIGEST_INVALID rather than stored on trust.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, NamedTuple

from haven.errors import DigestInvalid

# Hex lengths of the algorithms the image-spec registers.
HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_LOWER_HEX = re.compile(r"^[a-f0-9]+$")


class Digest(NamedTuple):
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(value: str) -> Digest:
    """Parse `algorithm:hex`; raises DigestInvalid with the reason."""
    match = _DIGEST.match(value)
    if match is None:
        raise DigestInvalid(f"invalid digest {value[:200]!r}: expected algorithm:hex")
    algorithm, encoded = match.groups()
    expected = HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise DigestInvalid(
            f"unsupported digest algorithm {algorithm!r}: use one of {', '.join(HEX_LENGTHS)}"
        )
    if len(encoded) != expected or not _LOWER_HEX.match(encoded):
        raise DigestInvalid(
            f"invalid {algorithm} digest: expected {expected} lowercase hex characters"
        )
    return Digest(algorithm, encoded)


def is_digest(reference: str) -> bool:
    """Whether a manifest reference is meant as a digest (tags never contain ':')."""
    return ":" in reference


def new_hasher(algorithm: str) -> Any:
    return hashlib.new(algorithm)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
