"""Tag lists and the catalog, in sorted pages."""

from __future__ import annotations

from dataclasses import dataclass

from haven.errors import NameUnknown
from haven.store.metadata import MetadataStore


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    more: bool


class ListingService:
    def __init__(self, metadata: MetadataStore) -> None:
        self._metadata = metadata

    async def tags(self, registry_id: int, repository: str, last: str | None, n: int) -> Page:
        # One extra row says whether a next page exists.
        found = await self._metadata.list_tags(registry_id, repository, last, n + 1)
        if found is None:
            raise NameUnknown(f"repository {repository} is not known to this registry")
        return Page(found[:n], len(found) > n)

    async def repositories(self, registry_id: int, last: str | None, n: int) -> Page:
        found = await self._metadata.list_repositories(registry_id, last, n + 1)
        return Page(found[:n], len(found) > n)
