"""Blob contents that cost the load generator almost nothing to make, stream and digest.

A large blob is one random 1 MiB block repeated, followed by a 32-byte random tail that makes
it distinct. Two consequences keep the client out of the measurement:

* streaming it yields memoryviews of the same block, so nothing is copied and a 2 GiB blob
  never sits in memory;
* every blob of a given size shares its first `size - 32` bytes, so the sha256 of that common
  part is computed once and `hashlib`'s `copy()` finishes each blob's digest in microseconds.
  (The distinct part is at the end rather than the start for exactly this reason.)

Small blobs are plain `os.urandom` bytes: 2,000 of 4 KiB is 8 MB, cheap to hold.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

BLOCK_SIZE = 1 << 20
TAIL_SIZE = 32
_IO_PIECE = 1 << 20


@cache
def _block() -> bytes:
    """The shared random block, made once per run."""
    return os.urandom(BLOCK_SIZE)


@cache
def _common_prefix_hash(length: int) -> Any:
    """sha256 state after `length` bytes of the repeated block (memoised per blob size)."""
    h = hashlib.sha256()
    for piece in _cyclic(0, length):
        h.update(piece)
    return h


def _cyclic(start: int, end: int) -> Iterator[memoryview]:
    """Bytes [start, end) of the infinite repetition of the block, as zero-copy views."""
    block = memoryview(_block())
    pos = start
    while pos < end:
        offset = pos % BLOCK_SIZE
        n = min(BLOCK_SIZE - offset, end - pos, _IO_PIECE)
        yield block[offset : offset + n]
        pos += n


@dataclass(frozen=True)
class LargeBlob:
    """A blob of `size` bytes defined by its distinct tail; see the module docstring."""

    size: int
    tail: bytes

    @classmethod
    def new(cls, size: int) -> LargeBlob:
        if size <= TAIL_SIZE:
            raise ValueError(f"a large blob needs more than {TAIL_SIZE} bytes")
        return cls(size, os.urandom(TAIL_SIZE))

    @property
    def digest(self) -> str:
        h = _common_prefix_hash(self.size - TAIL_SIZE).copy()
        h.update(self.tail)
        return "sha256:" + str(h.hexdigest())

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[memoryview]:
        """The bytes [start, end) of the blob, in pieces of at most 1 MiB."""
        end = self.size if end is None else end
        boundary = self.size - TAIL_SIZE
        yield from _cyclic(start, min(end, boundary))
        if end > boundary:
            yield memoryview(self.tail)[max(start, boundary) - boundary : end - boundary]

    async def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[memoryview]:
        """`chunks` as the async iterable an HTTP client uploads as a streamed body."""
        for piece in self.chunks(start, end):
            yield piece


@dataclass(frozen=True)
class SmallBlob:
    """A blob small enough to hold: bytes plus their digest, both made before timing."""

    data: bytes
    digest: str

    @classmethod
    def new(cls, size: int) -> SmallBlob:
        data = os.urandom(size)
        return cls(data, "sha256:" + hashlib.sha256(data).hexdigest())

    @classmethod
    def of(cls, data: bytes) -> SmallBlob:
        return cls(data, "sha256:" + hashlib.sha256(data).hexdigest())
