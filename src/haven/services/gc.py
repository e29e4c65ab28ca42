"""Online garbage collection: runs on demand (`haven gc run`) and in the background.

See `store/gc.py` for what is reclaimed and why it is safe while pushes and pulls go on.
A run works in small transactions (a batch of links or blobs each), so pushes wait at
most for one batch, never for the whole run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from haven.errors import Denied
from haven.services.soft_delete import purge_expired
from haven.store import gc, retention
from haven.store.content import BlobStore
from haven.store.db import Database
from haven.store.metadata import MetadataStore, now_ms

log = logging.getLogger("haven.gc")

BATCH = 256
LEASE = "gc"


@dataclass(slots=True)
class GcReport:
    dry_run: bool
    registry: str | None = None
    manifests_expired: int = 0
    soft_deleted_purged: int = 0
    stale_links_removed: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    orphan_files_deleted: int = 0
    duration_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        return {_camel(name): value for name, value in asdict(self).items()}


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


class GarbageCollector:
    def __init__(
        self,
        db: Database,
        metadata: MetadataStore,
        store: BlobStore,
        *,
        link_grace_seconds: float,
        review_delay_seconds: float,
    ) -> None:
        self._db = db
        self._metadata = metadata
        self._store = store
        self._link_grace_ms = int(link_grace_seconds * 1000)
        self._review_delay_ms = int(review_delay_seconds * 1000)
        self._running = asyncio.Lock()
        self._holder = f"{socket.gethostname()}:{os.getpid()}"

    async def run(
        self,
        *,
        registry_id: int | None = None,
        registry_name: str | None = None,
        dry_run: bool = False,
        full: bool = False,
    ) -> GcReport:
        """One pass. `registry_id` limits the link sweep to one registry (blobs are shared
        by registries, so the blob reviews are always the deployment's). `full` also
        queues every blob linked nowhere and deletes stored files that have no row."""
        report = GcReport(dry_run=dry_run, registry=registry_name)
        started = time.monotonic()
        async with self._running:
            await self._expire(report, registry_id)
            report.soft_deleted_purged = await purge_expired(
                self._db, registry_id, now_ms(), dry_run
            )
            await self._sweep_links(report, registry_id)
            if full:
                await self._sweep_files(report)
                if not dry_run:
                    await self._db.write(lambda c: gc.enqueue_unlinked_blobs(c, now_ms()))
            await self._collect(report, full)
        report.duration_ms = int((time.monotonic() - started) * 1000)
        return report

    async def _expire(self, report: GcReport, registry_id: int | None) -> None:
        """Apply the retention policies: delete manifests untagged for too long (their
        blobs then go the way of any deleted manifest's)."""
        rules = await self._db.read(retention.policies)
        for rule in rules:
            if registry_id is not None and rule.registry_id != registry_id:
                continue
            doomed = await self._db.read(
                partial(retention.expired, rule=rule, now=now_ms(), limit=100_000)
            )
            if report.dry_run:
                report.manifests_expired += len(doomed)
                continue
            for repository, digest in doomed:
                try:
                    if await self._metadata.delete_manifest(rule.registry_id, repository, digest):
                        report.manifests_expired += 1
                except Denied:
                    continue  # locked since it was selected

    async def _sweep_links(self, report: GcReport, registry_id: int | None) -> None:
        cutoff = now_ms() - self._link_grace_ms
        if report.dry_run:
            report.stale_links_removed = await self._db.read(
                lambda c: gc.count_stale_links(c, registry_id, cutoff)
            )
            return
        if not await self._db.read(lambda c: gc.has_old_pending_links(c, cutoff)):
            return  # the common case: nothing to write, so pushes never wait for this
        await self._db.write(lambda c: gc.settle_pending_links(c, cutoff), content=False)
        while links := await self._db.read(lambda c: gc.stale_links(c, registry_id, cutoff, BATCH)):
            removed = await self._db.write(
                partial(gc.remove_stale_links, links=links, linked_before=cutoff, now=now_ms()),
                content=False,
            )
            report.stale_links_removed += removed
            if removed == 0:
                return  # relinked meanwhile; the rest waits for the next pass

    async def _collect(self, report: GcReport, full: bool) -> None:
        # A full pass reviews at once what it has just queued; otherwise a review waits
        # out the delay, so that a blob unlinked and re-uploaded moments later survives.
        cutoff = now_ms() - (0 if full else self._review_delay_ms)
        if report.dry_run:
            count, size = await self._db.read(lambda c: gc.would_collect(c, cutoff))
            report.blobs_deleted += count
            report.bytes_freed += size
            return
        while due := await self._db.read(lambda c: gc.due_reviews(c, cutoff, BATCH)):
            deleted, freed = await self._db.write(
                partial(
                    gc.collect,
                    digests=due,
                    queued_before=cutoff,
                    delete_file=self._store.delete_sync,
                ),
                content=False,
            )
            report.blobs_deleted += deleted
            report.bytes_freed += freed

    async def _sweep_files(self, report: GcReport) -> None:
        """Delete stored files that no blob row names, once older than the link grace
        period (a crash between publishing a blob and linking it leaves such files)."""
        loop = asyncio.get_running_loop()
        oldest = time.time() - self._link_grace_ms / 1000
        scanned = await loop.run_in_executor(None, lambda: list(self._store.scan_sync()))
        candidates = [(digest, size) for digest, size, mtime in scanned if mtime < oldest]
        for start in range(0, len(candidates), BATCH * 4):
            batch = candidates[start : start + BATCH * 4]
            known = await self._db.read(
                partial(gc.known_blobs, digests=[digest for digest, _ in batch])
            )
            for digest, size in batch:
                if digest in known:
                    continue
                if not report.dry_run:
                    size = await loop.run_in_executor(None, self._store.delete_sync, digest)
                report.orphan_files_deleted += 1
                report.bytes_freed += size

    # Background ------------------------------------------------------------------

    async def run_forever(self, interval_seconds: float) -> None:
        """Run a pass every `interval_seconds` in whichever process holds the lease."""
        while True:
            await asyncio.sleep(interval_seconds)
            try:
                now = now_ms()
                lease = partial(
                    gc.take_lease,
                    name=LEASE,
                    holder=self._holder,
                    now=now,
                    until=now + int(interval_seconds * 2000),
                )
                held = await self._db.write(lease, content=False)
                if not held:
                    continue
                report = await self.run()
                if report.blobs_deleted or report.stale_links_removed:
                    log.info("garbage collection: %s", report.as_json())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("garbage collection failed; trying again next interval")
