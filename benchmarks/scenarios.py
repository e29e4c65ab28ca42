"""The scenarios: what each one sets up (untimed) and what one timed round does.

Each scenario answers one question a registry operator asks — how fast do big layers go in
and out, how many small writes per second, how fast is the metadata path — and each round
uses fresh content (new blobs, new tags) so that no round is served from an earlier one.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from typing import ClassVar

from benchmarks.client import OCI_MANIFEST, client_for, image_manifest, new_session, run_bounded
from benchmarks.fixtures import (
    CONFIG,
    TAG_REPO,
    populate_repositories,
    populate_tags,
    seed_blobs,
    tag_name,
)
from benchmarks.payload import LargeBlob, SmallBlob
from benchmarks.procinfo import (
    reset_tree_peak_rss,
    tree_breakdown,
    tree_peak_rss_bytes,
    tree_pss_bytes,
    tree_rss_bytes,
)
from benchmarks.rawload import run_load
from benchmarks.side import Measurement, Side, Timing

MB = 1_000_000  # throughput and memory are reported in decimal megabytes


class ScenarioError(RuntimeError):
    """The server answered, but not with what the scenario needs to measure."""


@dataclass(frozen=True)
class Target:
    """A goal for Haven: a ratio to the reference (`ratio`), or an absolute bound on Haven's
    own figure (`below`)."""

    ratio: float | None = None
    below: float | None = None

    def describe(self, unit: str) -> str:
        if self.ratio is not None:
            return f">= {self.ratio:g}x"
        if self.below is not None:
            return f"< {self.below:g} {unit}"
        return ""


class Scenario:
    name: ClassVar[str]
    title: ClassVar[str]
    unit: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    target: ClassVar[Target] = Target()
    # Haven in scale-out mode: two nodes against one (`ratio`), when both are measured.
    scale_target: ClassVar[Target] = Target()
    per_round: ClassVar[bool] = True  # False: measured once per side, not in rounds

    async def setup(self, side: Side) -> None:
        """Untimed preparation; shared state goes through `side.fixture`."""

    async def measure(self, side: Side, round_no: int) -> Measurement:
        raise NotImplementedError


# -- big blobs ----------------------------------------------------------------------------


def _rate_mb(nbytes: int, timing: Timing) -> float:
    return nbytes / MB / timing.seconds


class PushMonolithic(Scenario):
    name = "push-monolithic"
    title = "big blob push, monolithic"
    unit = "MB/s"
    target = Target(ratio=1.3)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        blob = LargeBlob.new(side.profile.big_blob)
        blob.digest  # noqa: B018 - hash the common prefix before the clock starts
        with side.timed() as t:
            await side.client.push_monolithic("bench/push", blob)
        return Measurement(_rate_mb(blob.size, t), t)


class PushChunked(Scenario):
    name = "push-chunked"
    title = "big blob push, chunked"
    unit = "MB/s"
    target = Target(ratio=1.3)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        blob = LargeBlob.new(side.profile.big_blob)
        blob.digest  # noqa: B018 - hash the common prefix before the clock starts
        with side.timed() as t:
            await side.client.push_chunked("bench/chunked", blob, side.profile.chunk)
        return Measurement(_rate_mb(blob.size, t), t, {"chunk": side.profile.chunk})


class Pull(Scenario):
    name = "pull"
    title = "big blob pull, sha256-verified"
    unit = "MB/s"
    target = Target(ratio=1.5)

    async def setup(self, side: Side) -> None:
        async def build() -> LargeBlob:
            blob = LargeBlob.new(side.profile.big_blob)
            await side.client.push_monolithic("bench/pull", blob)
            return blob

        await side.fixture("pull-blob", build)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        blob: LargeBlob = await side.fixture("pull-blob", _missing)
        redirected = side.client.redirected_pulls
        with side.timed() as t:
            await side.client.pull("bench/pull", blob.digest, blob.size, verify=True)
        return Measurement(_rate_mb(blob.size, t), t, _pulled(side, blob.size, 1, redirected))


class PullParallel(Scenario):
    name = "pull-parallel"
    title = "parallel pulls of distinct blobs"
    unit = "MB/s"
    target = Target(ratio=1.5)

    async def setup(self, side: Side) -> None:
        async def build() -> list[LargeBlob]:
            blobs = [
                LargeBlob.new(side.profile.parallel_blob)
                for _ in range(side.profile.parallel_pulls)
            ]
            for blob in blobs:
                await side.client.push_monolithic("bench/parallel", blob)
                # Content is verified here, once: the timed rounds check lengths only, so the
                # client's hashing does not take the server's second core.
                await side.client.pull("bench/parallel", blob.digest, blob.size, verify=True)
            return blobs

        await side.fixture("parallel-blobs", build)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        blobs: list[LargeBlob] = await side.fixture("parallel-blobs", _missing)
        redirected = side.client.redirected_pulls
        with side.timed() as t:
            got = await asyncio.gather(
                *(side.client.pull("bench/parallel", b.digest, b.size, verify=False) for b in blobs)
            )
        detail = {"streams": len(blobs), **_pulled(side, sum(got), len(blobs), redirected)}
        return Measurement(_rate_mb(sum(got), t), t, detail)


def _pulled(side: Side, nbytes: int, pulls: int, redirected_before: int) -> dict[str, int]:
    """What a pull round moved, and how many of its GETs were redirected to the bytes: the
    report divides the registry's CPU by the bytes to show who carried them."""
    return {
        "bytes": nbytes,
        "pulls": pulls,
        "redirected": side.client.redirected_pulls - redirected_before,
    }


# -- many small writes --------------------------------------------------------------------


class PushSmall(Scenario):
    name = "push-small"
    title = "small blob pushes (POST+PUT)"
    unit = "blobs/s"
    target = Target(ratio=2.0)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        p = side.profile
        blobs = [SmallBlob.new(p.small_size) for _ in range(p.small_count)]

        async def push(blob: SmallBlob) -> None:
            await side.client.push_small("bench/small", blob)

        with side.timed() as t:
            await run_bounded(p.small_concurrency, blobs, push)
        return Measurement(len(blobs) / t.seconds, t, {"count": len(blobs)})


class ManifestPush(Scenario):
    name = "manifest-push"
    title = "manifest pushes by tag"
    unit = "manifests/s"
    target = Target(ratio=2.0)
    repo = "bench/manifests"

    async def setup(self, side: Side) -> None:
        await seed_blobs(side, self.repo)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        p = side.profile
        layer = await seed_blobs(side, self.repo)
        bodies = [
            (
                f"r{round_no}-{i:04d}",
                image_manifest(CONFIG, [layer], {"org.example.bench": f"{round_no}/{i}"}),
            )
            for i in range(p.manifest_count)
        ]

        async def put(item: tuple[str, bytes]) -> None:
            await side.client.put_manifest(self.repo, item[0], item[1])

        with side.timed() as t:
            await run_bounded(p.manifest_concurrency, bodies, put)
        return Measurement(len(bodies) / t.seconds, t, {"count": len(bodies)})


# -- metadata reads -----------------------------------------------------------------------


class ManifestGet(Scenario):
    name = "manifest-get"
    title = "manifest HEAD+GET by tag"
    unit = "req/s"
    target = Target(ratio=3.0)
    scale_target = Target(ratio=1.6)
    repo = "bench/get"

    async def setup(self, side: Side) -> None:
        async def build() -> None:
            layer = await seed_blobs(side, self.repo)
            await side.client.put_manifest(self.repo, "latest", image_manifest(CONFIG, [layer]))
            await side.client.get(f"/v2/{self.repo}/manifests/latest", OCI_MANIFEST)

        await side.fixture("get-manifest", build)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        p = side.profile
        path = f"/v2/{self.repo}/manifests/latest"
        auth = await side.client.auth_headers(path)  # a fresh token, before the clock starts
        with side.timed() as t:
            result = await run_load(
                side.server.host,
                side.server.port,
                path,
                OCI_MANIFEST,
                p.get_concurrency,
                p.get_seconds,
                auth,
            )
        if result.errors > result.requests * 0.01 or result.requests == 0:
            raise ScenarioError(
                f"manifest HEAD/GET: {result.errors} errors in "
                f"{result.requests} answers, statuses {result.statuses}"
            )
        return Measurement(
            result.rate,
            t,
            {
                "requests": result.requests,
                "errors": result.errors,
                "client": "benchmarks.rawload (uvloop)",
            },
        )


async def repeated_walk(side: Side, first: str, key: str) -> tuple[int, int, int]:
    """Walk from `first` again and again until `walk_seconds` have passed (at least once):
    one walk of a few pages lasts milliseconds, too short to time on its own.
    Returns (walks, pages, entries) summed over all walks."""
    walks = pages = entries = 0
    deadline = time.perf_counter() + side.profile.walk_seconds
    while walks == 0 or time.perf_counter() < deadline:
        p, e = await side.client.walk(first, key)
        walks, pages, entries = walks + 1, pages + p, entries + e
    return walks, pages, entries


class TagWalk(Scenario):
    """Enumerate every tag of the big repository, n=100 a page, following Link.

    Reported in tags per second, not pages per second: distribution 2.8 ignores `n` and
    `last` on tags/list and answers every tag in one unsorted page, so a page count would
    compare 100 pages with one. Tags per second compares the same work, "list them all";
    Haven's pages per second is kept in the JSON detail.
    """

    name = "tag-walk"
    title = "tag list walk, n=100"
    unit = "tags/s"

    async def setup(self, side: Side) -> None:
        await populate_tags(side)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        p = side.profile
        with side.timed() as t:
            walks, pages, entries = await repeated_walk(
                side, f"/v2/{TAG_REPO}/tags/list?n={p.page}", "tags"
            )
        if entries != p.tags * walks:
            raise ScenarioError(f"tag walk listed {entries // walks} tags, expected {p.tags}")
        return Measurement(
            entries / t.seconds,
            t,
            {
                "walks": walks,
                "pages_per_walk": pages // walks,
                "tags": p.tags,
                "pages_per_s": pages / t.seconds,
            },
        )


class TagPageLatency(Scenario):
    """Median latency of one n=100 page from the middle of the big repository.

    A registry that ignores pagination (distribution 2.8) answers the whole list instead;
    the round's detail then says `paginated: false`, and the figure is that full answer's
    latency.
    """

    name = "tag-page-latency"
    title = "one tag page (n=100) of the big repo"
    unit = "ms"
    higher_is_better = False
    target = Target(below=5.0)

    async def setup(self, side: Side) -> None:
        await populate_tags(side)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        p = side.profile
        # A page from the middle: a registry that scans from the start pays for it here.
        middle = p.tags // 2
        url = f"/v2/{TAG_REPO}/tags/list?n={p.page}&last={tag_name(middle)}"
        await side.client.get(url)  # warm the connection
        samples = []
        with side.timed() as t:
            for _ in range(p.latency_samples):
                t0 = time.perf_counter()
                _, body = await side.client.get(url)
                samples.append((time.perf_counter() - t0) * 1000)
        tags = json.loads(body)["tags"]
        expected = [tag_name(i) for i in range(middle + 1, min(middle + 1 + p.page, p.tags))]
        paginated = tags == expected
        if not paginated and len(tags) != p.tags:
            raise ScenarioError(
                f"GET {url}: expected {expected[0]}..{expected[-1]}, "
                f"got {len(tags)} tags: {body[:200]!r}"
            )
        samples.sort()
        return Measurement(
            statistics.median(samples),
            t,
            {
                "p95_ms": samples[int(len(samples) * 0.95) - 1],
                "samples": len(samples),
                "paginated": paginated,
            },
        )


class CatalogWalk(Scenario):
    name = "catalog-walk"
    title = "catalog walk, n=100"
    unit = "pages/s"
    target = Target(ratio=5.0)

    async def setup(self, side: Side) -> None:
        await populate_repositories(side)

    async def measure(self, side: Side, round_no: int) -> Measurement:
        with side.timed() as t:
            walks, pages, entries = await repeated_walk(
                side, f"/v2/_catalog?n={side.profile.page}", "repositories"
            )
        if entries < side.profile.repos * walks:
            raise ScenarioError(
                f"catalog listed {entries // walks} repositories, "
                f"at least {side.profile.repos} exist"
            )
        return Measurement(
            pages / t.seconds,
            t,
            {"walks": walks, "pages_per_walk": pages // walks, "repositories": entries // walks},
        )


# -- memory -------------------------------------------------------------------------------


class PushMemory(Scenario):
    """Peak resident memory of a server while one big blob streams in.

    On a freshly started server, whose peaks are then reset (`clear_refs`) just before the
    push: the long-running server's VmHWM would report earlier scenarios, and a fresh one's
    would report its start-up (migrations, password hashing) rather than the push. In
    scale-out mode the figure sums Haven's nodes, not nginx, Azurite or PostgreSQL.
    """

    name = "memory"
    title = "server peak RSS during big push"
    unit = "MB"
    higher_is_better = False
    target = Target(below=150.0)
    per_round = False

    async def measure(self, side: Side, round_no: int) -> Measurement:
        server = side.start_fresh(side.workdir / f"memory-{side.name}")
        try:
            blob = LargeBlob.new(side.profile.memory_blob)
            blob.digest  # noqa: B018 - hash the common prefix before the clock starts
            async with new_session(8) as session:
                client = client_for(session, server, side.auth_mode)
                await client.auth_headers("/v2/bench/memory/blobs/uploads/")
                roots = server.registry_pids()
                since_start = sum(tree_peak_rss_bytes(pid) for pid in roots)
                idle = sum(tree_rss_bytes(pid) for pid in roots)
                was_reset = all([reset_tree_peak_rss(pid) for pid in roots])
                sampled = sampled_pss = 0
                done = asyncio.Event()

                async def sample() -> None:
                    nonlocal sampled, sampled_pss
                    while not done.is_set():
                        sampled = max(sampled, sum(tree_rss_bytes(pid) for pid in roots))
                        sampled_pss = max(sampled_pss, sum(tree_pss_bytes(pid) for pid in roots))
                        await asyncio.sleep(0.05)

                sampler = asyncio.create_task(sample())
                t0 = time.perf_counter()
                await client.push_monolithic("bench/memory", blob)
                seconds = time.perf_counter() - t0
                done.set()
                await sampler
            peak = sum(tree_peak_rss_bytes(pid) for pid in roots)
            processes = [row for pid in roots for row in tree_breakdown(pid)]
        finally:
            server.stop()
        return Measurement(
            peak / MB,
            Timing(seconds=seconds),
            {
                "peak_reset_before_push": was_reset,
                "peak_since_start_mb": round(max(since_start, peak) / MB, 1),
                "idle_rss_mb": round(idle / MB, 1),
                "sampled_peak_mb": round(sampled / MB, 1),
                "sampled_peak_pss_mb": round(sampled_pss / MB, 1),
                "processes": processes,
                "push_mb_s": round(blob.size / MB / seconds, 1),
                "blob_bytes": blob.size,
            },
        )


async def _missing() -> None:
    raise ScenarioError("fixture used before its scenario's setup ran")


ALL: list[Scenario] = [
    PushMonolithic(),
    PushChunked(),
    Pull(),
    PullParallel(),
    PushSmall(),
    ManifestPush(),
    ManifestGet(),
    TagWalk(),
    TagPageLatency(),
    CatalogWalk(),
    PushMemory(),
]
BY_NAME = {s.name: s for s in ALL}
