"""Crash safety of garbage collection: `kill -9` of the whole server in the middle of a pass.

Many small images sharing layers are pushed and most of them deleted, so that a pass has
over a thousand blobs to delete. The server is then killed while a pass is deleting them, at
several points of the work (the fraction of doomed blob files already gone), and started
again on the same data directory and database each time. Afterwards every manifest that
was not deleted must pull completely, garbage collection must finish the work (the
background loop by itself, although the killed process still held its lease) and leave
no blob file or row that nothing references, and usage must equal a recount.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from e2e_support import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    OWNER,
    HavenServer,
    sha256_digest,
    with_params,
)

pytestmark = pytest.mark.e2e

REGISTRY = "default"  # the registry that answers for 127.0.0.1
REPOSITORIES = 4
IMAGES = 500
BASES = 16  # base layers, shared by images of every repository
DOOMED_BASES = 6  # bases used only by images that are deleted
DELETED_SHARE = 0.5  # of the other images
CLIENTS = 12  # requests in flight while pushing, deleting and pulling

# The points at which passes are killed: fractions of the doomed blob files gone.
KILL_POINTS = (0.2, 0.5, 0.75)
BACKGROUND_INTERVAL = 2.0  # seconds between background passes (the lease lasts twice that)
ONLY_ON_DEMAND = {
    "HAVEN_GC_INTERVAL_SECONDS": "0",
    "HAVEN_GC_LINK_GRACE_SECONDS": "0",
    "HAVEN_GC_REVIEW_DELAY_SECONDS": "0",
}
IN_BACKGROUND = ONLY_ON_DEMAND | {"HAVEN_GC_INTERVAL_SECONDS": str(BACKGROUND_INTERVAL)}


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str
    manifest: bytes
    blobs: dict[str, bytes]  # config and layers, by digest

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


def make_image(repository: str, tag: str, layers: Sequence[bytes]) -> Image:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Labels": {"tag": tag}}}
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
        "layers": [
            {"mediaType": OCI_LAYER_GZIP, "digest": sha256_digest(data), "size": len(data)}
            for data in layers
        ],
    }
    blobs = {sha256_digest(data): data for data in (config, *layers)}
    return Image(repository, tag, json.dumps(manifest).encode(), blobs)


@dataclass
class Workload:
    """The images pushed, which of them are deleted, and what that dooms."""

    images: list[Image]
    deleted: list[Image]
    kept: list[Image] = field(init=False)
    kept_blobs: dict[str, bytes] = field(init=False)
    doomed: set[str] = field(init=False)  # blob digests that only deleted images use

    def __post_init__(self) -> None:
        gone = {image.digest for image in self.deleted}
        self.kept = [image for image in self.images if image.digest not in gone]
        self.kept_blobs = {d: data for image in self.kept for d, data in image.blobs.items()}
        every = {digest for image in self.images for digest in image.blobs}
        self.doomed = every - set(self.kept_blobs)


def make_workload(rng: random.Random, repositories: Sequence[str]) -> Workload:
    """Images of a base layer shared across repositories plus two layers of their own.

    Deleted: every image on the first bases (those bases go), every image of the first
    repository (which so unlinks bases that the other repositories keep), and part of the
    rest."""
    bases = [rng.randbytes(rng.randrange(500, 3000)) for _ in range(BASES)]
    images: list[Image] = []
    deleted: list[Image] = []
    for number in range(IMAGES):
        repository = repositories[number % len(repositories)]
        base = rng.randrange(BASES)
        own = [rng.randbytes(rng.randrange(200, 2000)) for _ in range(2)]
        image = make_image(repository, f"t{number}", [bases[base], *own])
        images.append(image)
        if base < DOOMED_BASES or repository == repositories[0] or rng.random() < DELETED_SHARE:
            deleted.append(image)
    rng.shuffle(deleted)
    return Workload(images, deleted)


def in_parallel(work: Callable[[Any], None], items: Iterable[Any]) -> None:
    with ThreadPoolExecutor(CLIENTS) as pool:
        for _ in pool.map(work, items):
            pass


def push_all(http: httpx.Client, images: Sequence[Image]) -> None:
    """Each distinct blob uploaded once per repository (a client would HEAD it first and
    skip it), then the manifests, each by tag."""
    uploads = {(image.repository, d): data for image in images for d, data in image.blobs.items()}

    def upload(item: tuple[tuple[str, str], bytes]) -> None:
        (repository, digest), data = item
        url = with_params(f"/v2/{repository}/blobs/uploads/", digest=digest)
        done = http.post(url, content=data, headers={"Content-Type": "application/octet-stream"})
        assert done.status_code == 201, done.text

    def put(image: Image) -> None:
        done = http.put(
            f"/v2/{image.repository}/manifests/{image.tag}",
            content=image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert done.status_code == 201, done.text
        assert done.headers["docker-content-digest"] == image.digest

    in_parallel(upload, uploads.items())
    in_parallel(put, images)


def delete_all(http: httpx.Client, images: Sequence[Image]) -> None:
    def delete(image: Image) -> None:
        done = http.delete(f"/v2/{image.repository}/manifests/{image.digest}")
        assert done.status_code == 202, done.text

    in_parallel(delete, images)


def assert_pulls_completely(http: httpx.Client, images: Sequence[Image]) -> None:
    """Manifest by tag and by digest, byte-exact, and every blob it names, digest verified."""

    def pull(image: Image) -> None:
        for reference in (image.tag, image.digest):
            got = http.get(
                f"/v2/{image.repository}/manifests/{reference}", headers={"Accept": OCI_MANIFEST}
            )
            assert got.status_code == 200, f"{image.repository}:{reference}: {got.text}"
            assert got.content == image.manifest
        for digest, data in image.blobs.items():
            blob = http.get(f"/v2/{image.repository}/blobs/{digest}")
            assert blob.status_code == 200, f"{image.repository}@{digest}: {blob.text}"
            assert sha256_digest(blob.content) == digest and blob.content == data

    in_parallel(pull, images)


# --------------------------------------------------------------------------- what is stored


def blob_file(data_dir: Path, digest: str) -> Path:
    """Where the filesystem store keeps a blob: blobs/<algorithm>/<two hex>/<hex>."""
    algorithm, _, encoded = digest.partition(":")
    return data_dir / "blobs" / algorithm / encoded[:2] / encoded


def stored_files(data_dir: Path) -> set[str]:
    root = data_dir / "blobs"
    return {
        f"{algorithm.name}:{path.name}"
        for algorithm in root.iterdir()
        for path in algorithm.glob("*/*")
        if path.is_file()
    }


def missing_files(data_dir: Path, digests: Iterable[str]) -> set[str]:
    return {digest for digest in digests if not blob_file(data_dir, digest).exists()}


class Metadata:
    """Queries on the server's database from outside it (SQLite file or PostgreSQL)."""

    def __init__(self, data_dir: Path, database_url: str | None):
        self.sqlite = data_dir / "haven.db"
        self.database_url = database_url

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.database_url is not None:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                return list(conn.execute(sql).fetchall())
        with contextlib.closing(sqlite3.connect(self.sqlite, timeout=30)) as conn:
            return list(conn.execute(sql).fetchall())

    def digests(self, sql: str) -> set[str]:
        return {str(row[0]) for row in self.rows(sql)}

    def blob_rows(self) -> set[str]:
        return self.digests("SELECT digest FROM blobs")

    def unlinked_blob_rows(self) -> set[str]:
        return self.digests(
            "SELECT digest FROM blobs b WHERE NOT EXISTS "
            "(SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)"
        )

    def links(self) -> set[tuple[str, str]]:
        """Which repository links which blob."""
        found = self.rows(
            "SELECT r.name, rb.digest FROM repository_blobs rb "
            "JOIN repositories r ON r.id = rb.repository_id"
        )
        return {(str(name), str(digest)) for name, digest in found}

    def reviews(self) -> set[str]:
        return self.digests("SELECT digest FROM gc_blob_reviews")

    def lease(self) -> tuple[str, int] | None:
        found = self.rows("SELECT holder, expires_at FROM leases WHERE name = 'gc'")
        return (str(found[0][0]), int(found[0][1])) if found else None


def group_holders(server: HavenServer) -> set[str]:
    """The lease holder names of every process in the server's process group."""
    assert server.process is not None
    group = server.process.pid  # the group leader: started in a session of its own
    holders = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses
            if int(stat.rpartition(")")[2].split()[2]) == group:
                holders.add(f"{socket.gethostname()}:{entry.name}")
    return holders


# --------------------------------------------------------------------------- the kill


@dataclass(frozen=True)
class Kill:
    """How far the doomed blobs' deletion had gone when a round started and at its kill."""

    gone_before: int
    gone_at_kill: int
    total: int


def gone_count(data_dir: Path, doomed: Sequence[str]) -> int:
    return sum(1 for digest in doomed if not blob_file(data_dir, digest).exists())


def kill_when(
    server: HavenServer,
    data_dir: Path,
    doomed: Sequence[str],
    fraction: float,
    before_kill: Callable[[], None] = lambda: None,
    timeout: float = 60.0,
) -> Kill:
    """Watch the doomed files disappear and SIGKILL the server's whole process group as
    soon as about `fraction` of them are gone (judged on an even sample of them, which is
    quick to look at, so that the kill follows closely)."""
    gone_before = gone_count(data_dir, doomed)
    sample = [blob_file(data_dir, digest) for digest in doomed[:: max(1, len(doomed) // 100)]]
    deadline = time.monotonic() + timeout
    while sum(1 for path in sample if not path.exists()) < fraction * len(sample):
        assert time.monotonic() < deadline, (
            f"no pass deleted {fraction:.0%} of the doomed blobs within {timeout:.0f}s"
        )
        time.sleep(0.001)
    before_kill()
    server.kill()
    return Kill(gone_before, gone_count(data_dir, doomed), len(doomed))


def assert_killed_mid_pass(kill: Kill, data_dir: Path, kept: Iterable[str]) -> None:
    assert kill.gone_before < kill.gone_at_kill < kill.total, (
        f"the server was not killed in the middle of a pass: {kill.gone_before} doomed blob "
        f"files were gone when the round started, {kill.gone_at_kill} of {kill.total} at the kill"
    )
    lost = missing_files(data_dir, kept)
    assert not lost, f"{len(lost)} blob files of kept images deleted, e.g. {sorted(lost)[:3]}"


@contextlib.contextmanager
def gc_in_flight(server: HavenServer) -> Iterator[None]:
    """`POST /api/gc` sent from a thread for the duration of the block, which must kill
    the server: the request must end without an answer."""
    answers: list[httpx.Response] = []
    errors: list[httpx.TransportError] = []

    def run() -> None:
        try:
            with httpx.Client(base_url=server.url, auth=OWNER, timeout=120.0) as client:
                answers.append(client.post("/api/gc", json={}))
        except httpx.TransportError as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join(timeout=120)
    assert not answers, f"the pass finished before the kill: {answers[0].text}"
    assert errors, "the GC request neither answered nor failed"


def wait_until_none_left(left: Callable[[], dict[str, int]], timeout: float, what: str) -> None:
    """Wait until every count that `left` answers is zero."""
    deadline = time.monotonic() + timeout
    while any((counts := left()).values()):
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s: left {counts}"
        time.sleep(0.1)


# --------------------------------------------------------------------------- the test


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Metadata in SQLite inside the data directory (the default), or in PostgreSQL."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("own_postgres_database"))
    return None


def test_gc_killed_mid_pass_loses_nothing_and_resumes_after_restart(
    start_haven: Callable[..., HavenServer],
    database_url: str | None,
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "haven-data"
    metadata = Metadata(data_dir, database_url)
    workload = make_workload(random.Random(2024), [repo(f"r{n}") for n in range(REPOSITORIES)])
    doomed = sorted(workload.doomed)
    kept = sorted(workload.kept_blobs)

    server = start_haven(data_dir, database_url=database_url, settings=ONLY_ON_DEMAND)
    with httpx.Client(base_url=server.url, auth=OWNER, timeout=60.0) as http:
        push_all(http, workload.images)
        delete_all(http, workload.deleted)
    assert len(doomed) > 1000, len(doomed)
    assert not missing_files(data_dir, doomed), "blobs went before any pass ran"

    # Two passes run on demand, each killed at its point of the work; the server comes
    # back the second time with passes in the background.
    on_demand = zip(KILL_POINTS[:2], (ONLY_ON_DEMAND, IN_BACKGROUND), strict=True)
    for fraction, next_settings in on_demand:
        with gc_in_flight(server):
            kill = kill_when(server, data_dir, doomed, fraction)
        assert_killed_mid_pass(kill, data_dir, kept)
        server = start_haven(data_dir, server.port, database_url, next_settings)

    # Then a background pass, killed while its process holds the lease. Every doomed blob
    # was queued before this server started and is due, so the pass that deletes some
    # deletes them all before it ends: some left means killed mid-pass.
    holders = group_holders(server)
    seen: list[tuple[tuple[str, int] | None, int]] = []  # the lease, and when it was read
    kill = kill_when(
        server,
        data_dir,
        doomed,
        KILL_POINTS[2],
        before_kill=lambda: seen.append((metadata.lease(), int(time.time() * 1000))),
    )
    assert_killed_mid_pass(kill, data_dir, kept)
    lease, read_at = seen[0]
    assert lease is not None and lease[0] in holders, (lease, holders)
    assert lease[1] > read_at, "the lease had expired when its holder was killed"

    # Restarted, the background loop takes the lease over and finishes the work by itself.
    server = start_haven(data_dir, server.port, database_url, IN_BACKGROUND)
    wait_until_none_left(
        lambda: {
            "doomed files": len(doomed) - len(missing_files(data_dir, doomed)),
            "doomed rows": len(metadata.blob_rows() & set(doomed)),
            "reviews": len(metadata.reviews()),
        },
        timeout=30 + 3 * BACKGROUND_INTERVAL,
        what="the background loop did not finish the interrupted work",
    )
    lease = metadata.lease()
    assert lease is not None and lease[0] in group_holders(server), lease

    with httpx.Client(base_url=server.url, auth=OWNER, timeout=60.0) as http:
        # A full pass completes and finds nothing the interrupted ones left behind.
        report = http.post("/api/gc", json={"full": True})
        assert report.status_code == 200, report.text
        counts = ("manifestsExpired", "staleLinksRemoved", "blobsDeleted", "orphanFilesDeleted")
        assert {name: report.json()[name] for name in counts} == dict.fromkeys(counts, 0)

        # Nothing stored that nothing references, nothing referenced missing.
        assert stored_files(data_dir) == set(kept)
        assert metadata.blob_rows() == set(kept)
        assert not metadata.unlinked_blob_rows()
        assert not metadata.reviews()
        assert metadata.links() == {
            (image.repository, digest) for image in workload.kept for digest in image.blobs
        }

        check = http.get(f"/api/registries/{REGISTRY}/usages/check")
        assert check.status_code == 200, check.text
        assert check.json()["driftBytes"] == 0, check.json()
        expected = sum(len(image.manifest) for image in workload.kept) + sum(
            len(data) for data in workload.kept_blobs.values()
        )
        assert check.json()["usedBytes"] == expected, (check.json(), expected)

        assert_pulls_completely(http, workload.kept)
        for repository in sorted({image.repository for image in workload.kept}):
            listed = http.get(f"/v2/{repository}/tags/list", params={"n": "10000"})
            assert listed.status_code == 200, listed.text
            tags = {image.tag for image in workload.kept if image.repository == repository}
            assert set(listed.json()["tags"]) == tags
