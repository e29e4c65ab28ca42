"""Change counters shared by every process of one deployment on this machine.

A process keeps caches of what the database holds; a counter says when they are stale.
Whoever commits a change the caches depend on bumps the counter after the commit, and
each process compares the counter with the value its caches were built at before using
them. A change thus takes effect on the very next request, while the request path never
asks the database: reading a counter is one 8-byte read of a shared memory map.

Two counters exist: `access.epoch` (roles, credentials, tokens, a registry's access
settings and login servers) and `content.epoch` (manifests, tags, repositories and their
lock attributes). The value only has to change, so nothing is written back to disk: the
caches it guards live no longer than the processes. Machines that share a PostgreSQL
database pass their bumps to each other through `store/change_feed.py`.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from collections.abc import Callable
from pathlib import Path

_SIZE = 8


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
        # One aligned 8-byte word, read on every request: indexing a view is the
        # cheapest read Python offers.
        self._word = memoryview(self._map).cast("Q")
        self._path = path
        # Also told of each bump, for other machines (store/change_feed.py).
        self.on_bump: Callable[[], None] | None = None

    def value(self) -> int:
        return self._word[0]

    def bump(self, local: bool = False) -> int:
        """Move the counter; `local` for a change another machine made and announced."""
        with open(self._path, "rb+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            value = self._word[0] + 1
            self._word[0] = value
        if self.on_bump is not None and not local:
            self.on_bump()
        return value

    def close(self) -> None:
        self._word.release()
        self._map.close()
