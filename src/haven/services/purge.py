"""`haven purge`: delete tags (and untagged manifests) by filter and age, as `acr purge`.

For every repository whose whole name matches a filter's repository part, the tags that
match the filter's tag part and were last updated before the cutoff are deleted, except
the `keep` most recently updated of them. With `untagged`, manifests that no tag names
afterwards (and that no index lists and whose subject is gone) are deleted as well if
they are older than the cutoff; `untagged_only` deletes only those and leaves tags be.
Locked items (deleteEnabled or writeEnabled off) are skipped unless `include_locked`,
which unlocks them first. Every deletion goes through the same code as a `DELETE` on the
API, so usage, quotas and garbage collection follow at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from haven.errors import Denied
from haven.purge_rules import Filter
from haven.store import purge
from haven.store.db import Database
from haven.store.metadata import MetadataStore, now_ms
from haven.store.repositories import RepositoryStore

UNLOCKED = {"deleteEnabled": True, "writeEnabled": True}


@dataclass(frozen=True, slots=True)
class PurgeRequest:
    filters: list[Filter]
    ago_ms: int
    untagged: bool = False
    untagged_only: bool = False
    keep: int = 0
    dry_run: bool = False
    include_locked: bool = False
    concurrency: int = 8


@dataclass(slots=True)
class PurgeReport:
    dry_run: bool
    deleted_tags: list[str] = field(default_factory=list)
    deleted_manifests: list[str] = field(default_factory=list)
    skipped_locked: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "deletedTags": sorted(self.deleted_tags),
            "deletedManifests": sorted(self.deleted_manifests),
            "skippedLocked": sorted(self.skipped_locked),
        }


class PurgeService:
    def __init__(
        self, db: Database, metadata: MetadataStore, repositories: RepositoryStore
    ) -> None:
        self._db = db
        self._metadata = metadata
        self._repositories = repositories

    async def run(self, registry_id: int, request: PurgeRequest) -> PurgeReport:
        report = PurgeReport(request.dry_run)
        cutoff = now_ms() - request.ago_ms
        limit = asyncio.Semaphore(request.concurrency)

        async def delete(
            name: str,
            locked: bool,
            deleted: list[str],
            unlock: Callable[[], Awaitable[object]],
            remove: Callable[[], Awaitable[bool]],
        ) -> None:
            if locked and not request.include_locked:
                report.skipped_locked.append(name)
            elif request.dry_run:
                deleted.append(name)
            else:
                async with limit:
                    try:
                        if locked:
                            await unlock()
                        if await remove():
                            deleted.append(name)
                    except Denied:
                        report.skipped_locked.append(name)  # the repository is locked

        doomed: list[purge.TagRow] = []
        if not request.untagged_only:
            rows = await self._db.read(lambda c: purge.tags(c, registry_id))
            doomed = _tags_to_delete(rows, request, cutoff)
            await asyncio.gather(
                *(
                    delete(
                        f"{t.repository}:{t.tag}",
                        t.locked,
                        report.deleted_tags,
                        partial(
                            self._repositories.set_tag_attributes, t.repository_id, t.tag, UNLOCKED
                        ),
                        partial(self._metadata.delete_tag, registry_id, t.repository, t.tag),
                    )
                    for t in doomed
                )
            )
        if not (request.untagged or request.untagged_only):
            return report
        for name, repository_id in await self._db.read(
            lambda c: purge.repositories(c, registry_id)
        ):
            if not any(f.repository_matches(name) for f in request.filters):
                continue
            # A dry run deleted no tag: count the manifests its tags would have left.
            ignoring = [
                t.tag
                for t in doomed
                if request.dry_run and t.repository_id == repository_id and not t.locked
            ]
            manifests = await self._db.read(
                partial(purge.untagged_manifests, repository_id=repository_id, ignoring=ignoring)
            )
            await asyncio.gather(
                *(
                    delete(
                        f"{name}@{m.digest}",
                        m.locked,
                        report.deleted_manifests,
                        partial(
                            self._repositories.set_manifest_attributes,
                            repository_id,
                            m.digest,
                            UNLOCKED,
                        ),
                        partial(self._metadata.delete_manifest, registry_id, name, m.digest),
                    )
                    for m in manifests
                    if m.updated_at < cutoff or request.ago_ms == 0
                )
            )
        return report


def _tags_to_delete(
    rows: list[purge.TagRow], request: PurgeRequest, cutoff: int
) -> list[purge.TagRow]:
    """The matching tags older than the cutoff, less the `keep` newest matching tags of
    each repository."""
    matching: dict[str, list[purge.TagRow]] = {}
    for row in rows:
        if any(
            f.repository_matches(row.repository) and f.tag_matches(row.tag) for f in request.filters
        ):
            matching.setdefault(row.repository, []).append(row)
    doomed = []
    for tags in matching.values():
        newest_first = sorted(tags, key=lambda t: (t.updated_at, t.tag), reverse=True)
        for row in newest_first[request.keep :]:
            if request.ago_ms == 0 or row.updated_at < cutoff:
                doomed.append(row)
    return doomed
