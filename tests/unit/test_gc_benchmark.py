"""The garbage collection benchmark's own arithmetic: what it pushes, deletes and counts
(`benchmarks/gc.py`; the benchmark itself needs both registries and is run by hand)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository's benchmarks/

gc = pytest.importorskip("benchmarks.gc")


def test_the_plan_spreads_exactly_n_blobs_over_m_manifests() -> None:
    plan = gc.Plan(blobs=11, manifests=4, repos=3, salt=b"s")
    counts = [plan.blob_count(i) for i in range(4)]
    assert counts == [3, 3, 3, 2]
    images = [plan.image(i) for i in range(4)]
    digests = {d for image in images for d in image.blob_digests}
    assert len(digests) == 11  # every blob distinct
    assert [image.repo for image in images] == ["gc/r000", "gc/r001", "gc/r002", "gc/r000"]
    assert list(plan.deleted_indices()) == [1, 3]
    assert [plan.deleted(i) for i in range(4)] == [False, True, False, True]


def test_the_defaults_give_two_blobs_per_manifest() -> None:
    plan = gc.Plan(blobs=100_000, manifests=50_000, repos=10, salt=b"s")
    assert {plan.blob_count(i) for i in (0, 1, 49_999)} == {2}


@pytest.mark.parametrize(("blobs", "manifests"), [(3, 2), (10, 1), (1, 0)])
def test_impossible_plans_are_refused(blobs: int, manifests: int) -> None:
    with pytest.raises(ValueError):
        gc.Plan(blobs=blobs, manifests=manifests, repos=1, salt=b"s")


def test_images_are_the_same_for_both_registries_and_well_formed() -> None:
    a = gc.make_image(b"salt", "m7", "gc/r007", 3)
    b = gc.make_image(b"salt", "m7", "gc/r007", 3)
    assert a == b  # deterministic: both sides get the same bytes
    assert a != gc.make_image(b"other", "m7", "gc/r007", 3)
    assert a.digest == "sha256:" + hashlib.sha256(a.body).hexdigest()
    doc = json.loads(a.body)
    assert doc["config"]["digest"] == a.config.digest
    assert [layer["digest"] for layer in doc["layers"]] == [x.digest for x in a.layers]
    assert [layer["size"] for layer in doc["layers"]] == [gc.LAYER_SIZE] * 2
    config = json.loads(a.config.data)
    assert config["os"] == "linux"
    assert 100 < len(a.config.data) < 1000


def test_census_counts_what_went_and_what_stayed(tmp_path: Path) -> None:
    plan = gc.Plan(blobs=8, manifests=4, repos=2, salt=b"s")
    for i in range(4):
        image = plan.image(i)
        for digest in (*image.blob_digests, image.digest):
            ref = gc.reference_blob_path(tmp_path / "ref", digest)
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_bytes(b"x")
            if digest != image.digest:
                own = gc.haven_blob_path(tmp_path / "haven", digest)
                own.parent.mkdir(parents=True, exist_ok=True)
                own.write_bytes(b"xy")
    assert gc.on_disk("reference", tmp_path / "ref") == (12, 12)
    assert gc.on_disk("haven", tmp_path / "haven") == (8, 16)

    # Collect image 1 properly, and (wrongly) one blob of live image 2.
    for digest in (*plan.image(1).blob_digests, plan.image(1).digest):
        gc.reference_blob_path(tmp_path / "ref", digest).unlink()
    gc.reference_blob_path(tmp_path / "ref", plan.image(2).config.digest).unlink()
    c = gc.census("reference", tmp_path / "ref", plan)
    assert (c.garbage_total, c.garbage_left) == (4, 2)  # image 3 still there
    assert (c.live_total, c.live_missing) == (4, 1)
    assert (c.manifests_garbage_left, c.manifests_live_missing) == (1, 0)

    h = gc.census("haven", tmp_path / "haven", plan)
    assert (h.garbage_left, h.live_missing, h.manifests_garbage_left) == (4, 0, None)


def test_the_table_lines_up() -> None:
    rows = [
        gc.Row("gc time", "s", 1.5, 12.31, 1.5 / 12.31),
        gc.Row("push", "manifests/s", 420.0, None, 0.95, ">= 0.90x idle", True),
    ]
    lines = gc.table(rows).splitlines()
    assert lines[0].split() == ["scenario", "unit", "haven", "reference", "ratio", "target", "met"]
    assert lines[2].split() == ["gc", "time", "s", "1.50", "12.3", "0.12x", "-", "-"]
    assert lines[3].split()[-5:] == ["0.95x", ">=", "0.90x", "idle", "yes"]
    assert len({len(line) for line in lines[:2]}) == 1
