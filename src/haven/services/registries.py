"""Which registry a request is for: its Host, matched case-insensitively."""

from __future__ import annotations

import time

from haven.epoch import ChangeCounter
from haven.store.metadata import MetadataStore

REFRESH_SECONDS = 5.0


class RegistryResolver:
    """Maps a request's Host to a registry id; unknown hosts reach the default registry.

    The table of login servers is small and read on every request, so it is cached in
    the process; it is re-read when the deployment's change counter moves (a registry
    was created or deleted) and every few seconds in any case.
    """

    def __init__(
        self, metadata: MetadataStore, default_registry_id: int, changes: ChangeCounter
    ) -> None:
        self._metadata = metadata
        self.default_registry_id = default_registry_id
        self._changes = changes
        self._epoch = -1
        self._hosts: dict[str, int] = {}
        self._loaded_at = 0.0

    async def refresh(self) -> None:
        hosts: dict[str, int] = {}
        for host, registry_id in (await self._metadata.login_servers()).items():
            hosts[host] = registry_id
            # A login server also answers without its port (behind a proxy on 443, say).
            hosts.setdefault(_without_port(host), registry_id)
        self._hosts = hosts
        self._loaded_at = time.monotonic()
        self._epoch = self._changes.value()

    async def resolve(self, host: str | None) -> int:
        stale = time.monotonic() - self._loaded_at > REFRESH_SECONDS
        if stale or self._changes.value() != self._epoch:
            await self.refresh()
        if not host:
            return self.default_registry_id
        key = host.lower()
        found = self._hosts.get(key)
        if found is None:
            found = self._hosts.get(_without_port(key))
        return self.default_registry_id if found is None else found


def _without_port(host: str) -> str:
    if host.endswith("]") or ":" not in host:
        return host
    return host.rsplit(":", 1)[0]
