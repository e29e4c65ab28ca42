"""SHA-256 whose running state can be saved, and resumed in another process.

Behind a load balancer each PATCH of a chunked upload may land on another node. The node
that took a chunk saves the hash state beside the upload's row; the next one resumes from
it instead of reading back every byte stored so far (which made an upload alternating
between nodes quadratic in its size).

hashlib's objects cannot be exported, so this drives the SHA-256 of OpenSSL's libcrypto
(the library hashlib itself uses) through ctypes, which releases the GIL for the call as
hashlib does. The context is OpenSSL's SHA256_CTX: eight chaining words, the message
length in bits as two words, the pending 64-byte block, its fill and the digest length,
all native unsigned ints (112 bytes), a layout OpenSSL has kept since 0.9.8. A saved
state is checked before use: its fill must be inside the block and its bit count must
match the upload's stored size, so a stale or foreign state is never resumed.

Where libcrypto cannot be loaded (or fails the self-test at import) `AVAILABLE` is false
and uploads fall back to re-reading.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import struct
from typing import Any

CONTEXT_BYTES = 112
_LAYOUT = struct.Struct("=8I2I16I2I")
_BLOCK = 64


def _load() -> Any:
    for name in ("libcrypto.so.3", ctypes.util.find_library("crypto")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            for function in (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final):
                function.restype = ctypes.c_int
            lib.SHA256_Init.argtypes = [ctypes.c_char_p]
            lib.SHA256_Update.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
            lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        except (OSError, AttributeError):
            continue
        return lib
    return None


_lib = _load()


class Sha256:
    """hashlib.sha256's `update` and `hexdigest`, plus `state()` and `resume()`."""

    __slots__ = ("_context",)

    def __init__(self) -> None:
        if _lib is None:
            raise RuntimeError("libcrypto is not available")
        self._context = ctypes.create_string_buffer(CONTEXT_BYTES)
        _lib.SHA256_Init(self._context)

    @classmethod
    def resume(cls, state: bytes, offset: int) -> Sha256 | None:
        """The hash of an upload's first `offset` bytes from its saved state, or None if
        the state does not describe exactly that many bytes."""
        if _lib is None or len(state) != CONTEXT_BYTES:
            return None
        fields = _LAYOUT.unpack(state)
        low, high, fill, digest_length = fields[8], fields[9], fields[26], fields[27]
        if digest_length != 32 or fill >= _BLOCK or fill != offset % _BLOCK:
            return None
        if (high << 32 | low) != offset * 8:
            return None
        resumed = cls.__new__(cls)
        resumed._context = ctypes.create_string_buffer(state, CONTEXT_BYTES)
        return resumed

    def update(self, data: bytes | bytearray | memoryview) -> None:
        assert _lib is not None
        if isinstance(data, bytes):
            _lib.SHA256_Update(self._context, data, len(data))
            return
        view = memoryview(data).cast("B")
        if view.readonly:
            self.update(view.tobytes())
            return
        buffer = (ctypes.c_char * view.nbytes).from_buffer(view)
        _lib.SHA256_Update(self._context, buffer, view.nbytes)

    def state(self) -> bytes:
        """The running state, to `resume()` from in any process."""
        return self._context.raw

    def digest(self) -> bytes:
        assert _lib is not None
        final = ctypes.create_string_buffer(self._context.raw, CONTEXT_BYTES)
        out = ctypes.create_string_buffer(32)
        _lib.SHA256_Final(out, final)
        return out.raw

    def hexdigest(self) -> str:
        return self.digest().hex()


def _works() -> bool:
    if _lib is None or _LAYOUT.size != CONTEXT_BYTES:
        return False
    try:
        first = Sha256()
        first.update(b"a" * 100)
        resumed = Sha256.resume(first.state(), 100)
        if resumed is None:
            return False
        resumed.update(bytearray(b"b" * 29))
        return resumed.hexdigest() == hashlib.sha256(b"a" * 100 + b"b" * 29).hexdigest()
    except (OSError, ValueError):
        return False


AVAILABLE = _works()
