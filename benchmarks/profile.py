"""Sizes and counts of one benchmark run: the full profile, and a quick one for smoke tests.

Kept apart from the scenarios so that a reader sees every knob of a run in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class Profile:
    name: str
    rounds: int
    big_blob: int  # monolithic push, chunked push and single pull
    chunk: int  # PATCH size of the chunked push
    parallel_pulls: int
    parallel_blob: int
    small_count: int
    small_size: int
    small_concurrency: int
    manifest_count: int
    manifest_concurrency: int
    get_seconds: float
    get_concurrency: int
    tags: int
    repos: int
    page: int
    latency_samples: int
    walk_seconds: float  # a walk is repeated for at least this long per round
    memory_blob: int
    populate_concurrency: int


FULL = Profile(
    name="full",
    rounds=4,
    big_blob=512 * MiB,
    chunk=16 * MiB,
    parallel_pulls=16,
    parallel_blob=32 * MiB,
    small_count=2000,
    small_size=4096,
    small_concurrency=32,
    manifest_count=500,
    manifest_concurrency=16,
    get_seconds=10.0,
    get_concurrency=64,
    tags=10_000,
    repos=1000,
    page=100,
    latency_samples=200,
    walk_seconds=1.0,
    memory_blob=2 * GiB,
    populate_concurrency=32,
)

QUICK = Profile(
    name="quick",
    rounds=2,
    big_blob=32 * MiB,
    chunk=4 * MiB,
    parallel_pulls=16,
    parallel_blob=2 * MiB,
    small_count=200,
    small_size=4096,
    small_concurrency=32,
    manifest_count=100,
    manifest_concurrency=16,
    get_seconds=1.0,
    get_concurrency=64,
    tags=500,
    repos=100,
    page=100,
    latency_samples=50,
    walk_seconds=0.2,
    memory_blob=64 * MiB,
    populate_concurrency=32,
)
