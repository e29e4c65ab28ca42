"""Manifests recently read, kept in the process while the content counter stands still.

Clients read the same few manifests over and over (every `docker pull` of a tag asks
for it, often twice), and a database read costs a thread hop that is far dearer than
the query. A hit here costs a dictionary lookup and one read of the shared content
counter (`epoch.py`); any committed change to manifests, tags, repositories or their
lock attributes, in any process of the deployment, bumps the counter and empties every
process's cache before its next lookup.

An entry is stored under the counter value read before its query ran: if a change
commits while the query is in flight, the counter has moved on by the time the entry
could be used, so a stale answer is never served.
"""

from __future__ import annotations

from haven.epoch import ChangeCounter
from haven.store.metadata import StoredManifest

Key = tuple[int, str, str]  # registry id, repository, tag or digest

# Large manifests (big indexes, artifacts) are rare and would crowd out the rest.
MAX_ENTRY_BYTES = 256 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024


class ManifestCache:
    def __init__(self, changes: ChangeCounter, max_total_bytes: int = MAX_TOTAL_BYTES) -> None:
        self._changes = changes
        self._max_total = max_total_bytes
        self._entries: dict[Key, StoredManifest] = {}
        self._bytes = 0
        self._epoch = -1

    def lookup(self, key: Key) -> tuple[StoredManifest | None, int]:
        """The cached manifest (or None) and the counter value to store a fresh read under."""
        epoch = self._changes.value()
        if epoch != self._epoch:
            self._entries.clear()
            self._bytes = 0
            self._epoch = epoch
            return None, epoch
        return self._entries.get(key), epoch

    def store(self, key: Key, manifest: StoredManifest, epoch: int) -> None:
        """Keep `manifest`, read after `lookup` returned `epoch`, unless a change has
        been seen since."""
        size = len(manifest.payload)
        if epoch != self._epoch or size > MAX_ENTRY_BYTES:
            return
        if self._bytes + size > self._max_total:
            self._entries.clear()
            self._bytes = 0
        previous = self._entries.get(key)
        if previous is not None:
            self._bytes -= len(previous.payload)
        self._entries[key] = manifest
        self._bytes += size
