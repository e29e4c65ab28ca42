"""Purging soft-deleted manifests and tags once their days have passed: part of every
garbage collection pass (`services/gc.py`), before it sweeps links and reviews blobs, so
that a purged manifest's blobs are reclaimed by the same pass when nothing else keeps
them. See `store/soft_delete.py`.
"""

from __future__ import annotations

from functools import partial

from haven.store import soft_delete
from haven.store.db import Database

BATCH = 256


async def purge_expired(db: Database, registry_id: int | None, now: int, dry_run: bool) -> int:
    """Purge (or, dry, count) what has been soft-deleted for longer than its registry's
    days: each manifest in its own short transaction, so that pushes wait at most for
    one. `registry_id` limits the purge to one registry. Returns the manifests and tags
    purged."""
    purged = 0
    for holder, days in await db.read(partial(soft_delete.holders, registry_id=registry_id)):
        before = now - days * soft_delete.DAY_MS
        if dry_run:
            purged += await db.read(
                partial(soft_delete.count_expired, registry_id=holder, before=before)
            )
            continue
        while batch := await db.read(
            partial(soft_delete.expired, registry_id=holder, before=before, limit=BATCH)
        ):
            done = 0
            for kept_id in batch:
                done += await db.write(
                    partial(soft_delete.purge, kept_id=kept_id, before=before, now=now)
                )
            purged += done
            if done == 0:
                break  # restored or purged meanwhile: the next read finds the rest
        purged += await db.write(partial(soft_delete.purge_tags, registry_id=holder, before=before))
    return purged
