"""The in-process manifest cache: valid only while the content counter stands still."""

from __future__ import annotations

from pathlib import Path

from haven.epoch import ChangeCounter
from haven.services.manifest_cache import MAX_ENTRY_BYTES, ManifestCache
from haven.store.metadata import StoredManifest


def manifest(digest: str, size: int = 10) -> StoredManifest:
    return StoredManifest(digest, "application/vnd.oci.image.manifest.v1+json", b"x" * size)


def test_a_read_is_kept_until_the_counter_moves(tmp_path: Path) -> None:
    counter = ChangeCounter(tmp_path / "content.epoch")
    cache = ManifestCache(counter)
    key = (1, "app", "v1")
    found, epoch = cache.lookup(key)
    assert found is None
    cache.store(key, manifest("sha256:a"), epoch)
    assert cache.lookup(key)[0] == manifest("sha256:a")

    # Another process commits a change: its counter (the same file) moves on.
    ChangeCounter(tmp_path / "content.epoch").bump()
    assert cache.lookup(key)[0] is None


def test_a_read_that_raced_a_change_is_not_kept(tmp_path: Path) -> None:
    counter = ChangeCounter(tmp_path / "content.epoch")
    cache = ManifestCache(counter)
    key = (1, "app", "v1")
    _, epoch = cache.lookup(key)
    counter.bump()  # a tag moves while the query is in flight
    cache.lookup((1, "app", "other"))  # some other request notices the change first
    cache.store(key, manifest("sha256:old"), epoch)
    assert cache.lookup(key)[0] is None


def test_a_stale_read_stored_before_anyone_noticed_is_never_served(tmp_path: Path) -> None:
    counter = ChangeCounter(tmp_path / "content.epoch")
    cache = ManifestCache(counter)
    key = (1, "app", "v1")
    _, epoch = cache.lookup(key)
    counter.bump()
    cache.store(key, manifest("sha256:old"), epoch)
    assert cache.lookup(key)[0] is None


def test_memory_stays_bounded(tmp_path: Path) -> None:
    cache = ManifestCache(ChangeCounter(tmp_path / "content.epoch"), max_total_bytes=1000)
    _, epoch = cache.lookup((1, "app", "x"))
    cache.store((1, "app", "huge"), manifest("sha256:h", MAX_ENTRY_BYTES + 1), epoch)
    assert cache.lookup((1, "app", "huge"))[0] is None
    for i in range(50):
        cache.store((1, "app", f"t{i}"), manifest(f"sha256:{i}", 100), epoch)
    kept = [i for i in range(50) if cache.lookup((1, "app", f"t{i}"))[0] is not None]
    assert 0 < len(kept) <= 10
    assert kept[-1] == 49
