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
        repositories = [
            (name, repository_id)
            for name, repository_id in await self._db.read(
                lambda c: purge.repositories(c, registry_id)
            )
            if any(f.repository_matches(name) for f in request.filters)
        ]
        doomed: list[purge.TagRow] = []
        if not request.untagged_only:
            rows = await self._db.read(lambda c: purge.tags(c, registry_id))
            doomed = _tags_to_delete(rows, request, cutoff)
            await asyncio.gather(
                *(self._delete_tag(registry_id, row, request, report, limit) for row in doomed)
            )
        if request.untagged or request.untagged_only:
            for name, repository_id in repositories:
                # A dry run deleted no tag: count the manifests its tags would have left.
                ignoring = [
                    row.tag
                    for row in doomed
                    if request.dry_run and row.repository_id == repository_id and not row.locked
                ]
                manifests = await self._db.read(
                    partial(
                        purge.untagged_manifests, repository_id=repository_id, ignoring=ignoring
                    )
                )
                old = [m for m in manifests if m.updated_at < cutoff or request.ago_ms == 0]
                await asyncio.gather(
                    *(
                        self._delete_manifest(
                            registry_id, name, repository_id, m, request, report, limit
                        )
                        for m in old
                    )
                )
        return report

    async def _delete_tag(
        self,
        registry_id: int,
        row: purge.TagRow,
        request: PurgeRequest,
        report: PurgeReport,
        limit: asyncio.Semaphore,
    ) -> None:
        name = f"{row.repository}:{row.tag}"
        if row.locked and not request.include_locked:
            report.skipped_locked.append(name)
            return
        if request.dry_run:
            report.deleted_tags.append(name)
            return
        async with limit:
            try:
                if row.locked:
                    await self._repositories.set_tag_attributes(
                        row.repository_id, row.tag, UNLOCKED
                    )
                if await self._metadata.delete_tag(registry_id, row.repository, row.tag):
                    report.deleted_tags.append(name)
            except Denied:
                report.skipped_locked.append(name)  # the repository itself is locked

    async def _delete_manifest(
        self,
        registry_id: int,
        repository: str,
        repository_id: int,
        row: purge.ManifestRow,
        request: PurgeRequest,
        report: PurgeReport,
        limit: asyncio.Semaphore,
    ) -> None:
        name = f"{repository}@{row.digest}"
        if row.locked and not request.include_locked:
            report.skipped_locked.append(name)
            return
        if request.dry_run:
            report.deleted_manifests.append(name)
            return
        async with limit:
            try:
                if row.locked:
                    await self._repositories.set_manifest_attributes(
                        repository_id, row.digest, UNLOCKED
                    )
                if await self._metadata.delete_manifest(registry_id, repository, row.digest):
                    report.deleted_manifests.append(name)
            except Denied:
                report.skipped_locked.append(name)


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
