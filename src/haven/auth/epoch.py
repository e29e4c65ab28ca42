"""A change counter shared by every process of one deployment on this machine.

Anything that changes who may do what (a role, a credential, a token's status, a
registry's access settings) bumps the counter after it commits. Each process compares
the counter with the value its caches were built at before using them, so a change
takes effect on the very next request, while the request path never asks the database
(reading the counter is one 8-byte read of a shared memory map).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)


class ChangeCounter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.pwrite(fd, b"\0" * _SIZE, 0)
            self._map = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self._path = path

    def value(self) -> int:
        return int(struct.unpack_from(_FORMAT, self._map, 0)[0])

    def bump(self) -> int:
        with open(self._path, "rb+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            value = self.value() + 1
            struct.pack_into(_FORMAT, self._map, 0, value)
            self._map.flush()
            return value

    def close(self) -> None:
        self._map.close()
