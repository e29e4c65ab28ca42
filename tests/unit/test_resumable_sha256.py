"""The resumable SHA-256: equal to hashlib's for any split of the input, resumable from
its saved state in a fresh object, and refusing a state that does not fit the offset."""

from __future__ import annotations

import hashlib
import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haven.oci import resumable
from haven.oci.resumable import CONTEXT_BYTES, Sha256


def test_libcrypto_is_available_on_this_machine() -> None:
    # Debian's Python links hashlib against libcrypto: without it uploads still work,
    # but a chunk on another node re-reads the upload, so the suite insists on it.
    assert resumable.AVAILABLE


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=6))
def test_saving_and_resuming_at_any_split_gives_hashlibs_digest(
    data: bytes, cuts: list[int]
) -> None:
    points = sorted({0, len(data), *(min(cut, len(data)) for cut in cuts)})
    hasher = Sha256()
    for start, end in itertools.pairwise(points):
        piece = data[start:end]
        hasher.update(piece if start % 2 else bytearray(piece))
        resumed = Sha256.resume(hasher.state(), end)
        assert resumed is not None
        hasher = resumed
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_digest_does_not_end_the_hash() -> None:
    hasher = Sha256()
    hasher.update(b"abc")
    assert hasher.hexdigest() == hashlib.sha256(b"abc").hexdigest()
    hasher.update(memoryview(b"def"))  # read-only views too
    assert hasher.hexdigest() == hashlib.sha256(b"abcdef").hexdigest()


def test_large_buffers_hash_like_hashlib() -> None:
    data = bytearray(hashlib.sha256(b"seed").digest() * 300_000)  # 9.6 MB
    hasher = Sha256()
    hasher.update(memoryview(data)[:5_000_001])
    hasher.update(memoryview(data)[5_000_001:])
    assert hasher.hexdigest() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("offset", [0, 99, 101, 100 + 64])
def test_a_state_is_resumed_only_at_the_offset_it_describes(offset: int) -> None:
    hasher = Sha256()
    hasher.update(b"x" * 100)
    assert Sha256.resume(hasher.state(), offset) is None
    assert Sha256.resume(hasher.state(), 100) is not None


def test_malformed_states_are_refused() -> None:
    hasher = Sha256()
    hasher.update(b"y" * 10)
    state = hasher.state()
    fields = list(struct.unpack("=28I", state))
    assert Sha256.resume(state[:-1], 10) is None
    assert Sha256.resume(state + b"\0", 10) is None
    assert Sha256.resume(b"\0" * CONTEXT_BYTES, 0) is None  # no digest length
    for index, value in ((26, 64), (26, 9), (27, 28)):  # fill beyond the block; sha224
        bad = fields.copy()
        bad[index] = value
        assert Sha256.resume(struct.pack("=28I", *bad), 10) is None
