"""Which registry a request is for: its Host, matched case-insensitively."""

from __future__ import annotations

import time

from haven.store.metadata import MetadataStore

REFRESH_SECONDS = 5.0


class RegistryResolver:
    """Maps a request's Host to a registry id; unknown hosts reach the default registry.

    The table of login servers is small and read on every request, so it is cached in
    the process and re-read at most every few seconds.
    """

    def __init__(self, metadata: MetadataStore, default_registry_id: int) -> None:
        self._metadata = metadata
        self.default_registry_id = default_registry_id
        self._hosts: dict[str, int] = {}
        self._loaded_at = 0.0

    async def refresh(self) -> None:
        self._hosts = await self._metadata.login_servers()
        self._loaded_at = time.monotonic()

    async def resolve(self, host: str | None) -> int:
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            await self.refresh()
        if not host:
            return self.default_registry_id
        key = host.lower()
        found = self._hosts.get(key)
        if found is None and ":" in key and not key.endswith("]"):
            found = self._hosts.get(key.rsplit(":", 1)[0])
        return self.default_registry_id if found is None else found
