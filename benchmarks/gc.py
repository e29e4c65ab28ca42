"""Garbage collection benchmark: `python -m benchmarks.gc [--blobs N] [--manifests M]
[--json FILE]` (defaults N=100,000 blobs, M=50,000 manifests; `--blobs 2000 --manifests
1000` is a smoke run of a minute or two).

Haven collects garbage online (`POST /api/gc` while the registry serves); the reference
registry (distribution 2.8) collects offline (`docker-registry garbage-collect CONFIG`,
with the server stopped). On the same content in one run this measures:

1. populate: M image manifests in `--repos` repositories, each referencing a config and
   layers of a few hundred bytes, N distinct blobs in all (N/M per manifest), pushed with
   bounded concurrency to both registries (timed, but not the figure of interest);
2. delete every other manifest by digest (`DELETE /v2/<repo>/manifests/<digest>`), so
   half the blobs become garbage;
3. garbage collection on each side: wall time, peak memory, what it deleted, checked on
   disk blob by blob (what should be gone is gone, what should stay is there);
4. push throughput on Haven while its garbage collection runs back to back, against the
   same with collection idle, in A B B A phases (idle, busy, busy, idle). A paced
   deleter removes earlier images during every phase, idle ones included, so collection
   has work and the two kinds of phase differ by the collection alone.

Haven runs with `HAVEN_GC_INTERVAL_SECONDS=0` (no background pass) and
`HAVEN_GC_REVIEW_DELAY_SECONDS=0` (a blob unlinked is collectable at once). Manifests are
pushed by digest, untagged, on both sides: distribution 2.8 untags on a manifest delete
by listing every tag of the repository, which at thousands of tags per repository would
make step 2 measure that instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from benchmarks.auth import Authorizer
from benchmarks.client import RegistryClient, RegistryError, image_manifest, new_session
from benchmarks.machine import busy_cpu_seconds, describe
from benchmarks.payload import SmallBlob
from benchmarks.procinfo import process_tree, reset_tree_peak_rss, tree_cpu_seconds
from benchmarks.run import event_loop_run
from benchmarks.servers import (
    REFERENCE_BINARY,
    Server,
    ServerError,
    haven_command,
    start_haven,
    start_reference,
)

T = TypeVar("T")

LAYER_SIZE = 384  # bytes of each layer blob; configs are JSON of about 250 bytes
PUSH_TARGET = 0.90  # push throughput with collection running, relative to idle
DELETERS = 4  # deletes in flight at most during the push phases
HAVEN_ENV = {"HAVEN_GC_INTERVAL_SECONDS": "0", "HAVEN_GC_REVIEW_DELAY_SECONDS": "0"}
_PAGE = os.sysconf("SC_PAGE_SIZE")
_REFERENCE_SUMMARY = re.compile(
    r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion"
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- content ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """One image: its repository, blobs (config first) and manifest, made deterministically
    from a key so both registries get the same bytes and nothing is held for long."""

    repo: str
    config: SmallBlob
    layers: tuple[SmallBlob, ...]
    body: bytes
    digest: str

    @property
    def blobs(self) -> tuple[SmallBlob, ...]:
        return (self.config, *self.layers)

    @property
    def blob_digests(self) -> tuple[str, ...]:
        return tuple(b.digest for b in self.blobs)

    @property
    def blob_bytes(self) -> int:
        return sum(len(b.data) for b in self.blobs)


def make_image(salt: bytes, key: str, repo: str, blob_count: int) -> Image:
    """A config (distinct JSON) and `blob_count - 1` layers (pseudo-random bytes)."""
    if blob_count < 2:
        raise ValueError("an image needs a config and at least one layer")
    seed = salt + key.encode()
    config_doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"bench.gc.image": key}},
        "rootfs": {"type": "layers", "diff_ids": []},
        "comment": hashlib.shake_256(seed + b"/config").hexdigest(48),
    }
    config = SmallBlob.of(json.dumps(config_doc, separators=(",", ":")).encode())
    layers = tuple(
        SmallBlob.of(hashlib.shake_256(seed + f"/layer/{j}".encode()).digest(LAYER_SIZE))
        for j in range(blob_count - 1)
    )
    body = image_manifest(config, list(layers), {"bench.gc.image": key})
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return Image(repo, config, layers, body, digest)


@dataclass(frozen=True)
class Plan:
    """What the populate phase pushes: manifest i goes to repository i % repos and has
    blobs // manifests blobs (one more for the first blobs % manifests); odd i are deleted."""

    blobs: int
    manifests: int
    repos: int
    salt: bytes

    def __post_init__(self) -> None:
        if self.manifests < 2:
            raise ValueError("--manifests must be at least 2 (half of them are deleted)")
        if self.blobs < 2 * self.manifests:
            raise ValueError("--blobs must be at least twice --manifests (config + a layer)")
        if self.repos < 1:
            raise ValueError("--repos must be at least 1")

    def repo(self, i: int) -> str:
        return f"gc/r{i % self.repos:03d}"

    def blob_count(self, i: int) -> int:
        base, extra = divmod(self.blobs, self.manifests)
        return base + (1 if i < extra else 0)

    def image(self, i: int) -> Image:
        return make_image(self.salt, f"m{i}", self.repo(i), self.blob_count(i))

    @staticmethod
    def deleted(i: int) -> bool:
        return i % 2 == 1

    def deleted_indices(self) -> range:
        return range(1, self.manifests, 2)


# -- the client ------------------------------------------------------------------------


class GcClient(RegistryClient):
    """`RegistryClient` plus manifest deletion."""

    async def delete_manifest(self, repo: str, digest: str) -> None:
        url = self._url(f"/v2/{repo}/manifests/{digest}")
        await self._expect("DELETE", url, (202,))

    async def push_image(self, image: Image) -> None:
        for blob in image.blobs:
            await self.push_small(image.repo, blob)
        await self.put_manifest(image.repo, image.digest, image.body)


def make_client(session: aiohttp.ClientSession, server: Server, auth_mode: str) -> GcClient:
    auth = None
    if server.credentials is not None:
        auth = Authorizer(server.credentials, auth_mode, session)
    return GcClient(session, server.base_url, auth)


async def haven_gc(session: aiohttp.ClientSession, server: Server) -> dict[str, Any]:
    """`POST /api/gc {"full": false}` as the deployment owner (HTTP Basic)."""
    assert server.credentials is not None
    url = server.base_url + "/api/gc"
    headers = {"Authorization": server.credentials.basic, "Content-Type": "application/json"}
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    async with session.post(url, data=b'{"full":false}', headers=headers, timeout=timeout) as r:
        body = await r.read()
        if r.status != 200:
            raise RegistryError("POST", url, r.status, r.headers, body)
    report: dict[str, Any] = json.loads(body)
    return report


async def haven_check_usage(session: aiohttp.ClientSession, server: Server) -> dict[str, Any]:
    """The default registry's usage recount (`driftBytes` should be 0)."""
    assert server.credentials is not None
    url = server.base_url + "/api/registries/default/usages/check"
    headers = {"Authorization": server.credentials.basic}
    async with session.get(url, headers=headers) as r:
        body = await r.read()
        if r.status != 200:
            raise RegistryError("GET", url, r.status, r.headers, body)
    result: dict[str, Any] = json.loads(body)
    return result


async def bounded(
    concurrency: int, items: Iterable[T], work: Callable[[T], Awaitable[object]], label: str
) -> float:
    """Run `work` on every item, `concurrency` at a time, logging progress every 10 s;
    return the wall time."""
    iterator = iter(items)
    done = 0
    t0 = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        for item in iterator:
            await work(item)
            done += 1

    async def progress() -> None:
        while True:
            await asyncio.sleep(10)
            elapsed = time.perf_counter() - t0
            _log(f"  {label}: {done:,} done in {elapsed:.0f}s ({done / elapsed:,.0f}/s)")

    reporter = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    return time.perf_counter() - t0


@contextlib.asynccontextmanager
async def heartbeat(label: str, every: float = 30.0) -> AsyncIterator[None]:
    """Log that `label` is still running every `every` seconds (long collections)."""
    t0 = time.perf_counter()

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            _log(f"  {label}: still running after {time.perf_counter() - t0:.0f}s")

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- what is on disk -------------------------------------------------------------------


def reference_blob_path(data_dir: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return data_dir / "docker/registry/v2/blobs" / algorithm / hexdigest[:2] / hexdigest / "data"


def haven_blob_path(data_dir: Path, digest: str) -> Path:
    algorithm, _, hexdigest = digest.partition(":")
    return data_dir / "blobs" / algorithm / hexdigest[:2] / hexdigest


def count_files(root: Path, name: str | None = None) -> tuple[int, int]:
    """(files, bytes) under `root`, only files called `name` if given."""
    files = size = 0
    if not root.is_dir():
        return 0, 0
    todo = [root]
    while todo:
        with os.scandir(todo.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and (name is None or entry.name == name):
                    files += 1
                    size += entry.stat(follow_symlinks=False).st_size
    return files, size


def on_disk(side: str, data_dir: Path) -> tuple[int, int]:
    if side == "reference":
        return count_files(data_dir / "docker/registry/v2/blobs", "data")
    return count_files(data_dir / "blobs")


def present(paths: Iterable[Path]) -> int:
    return sum(1 for p in paths if p.exists())


@dataclass
class Census:
    """Blob by blob: what should have gone and what should have stayed."""

    garbage_total: int = 0
    garbage_left: int = 0  # blobs of deleted images still stored (0 when collected)
    live_total: int = 0
    live_missing: int = 0  # blobs of kept images that are gone (must be 0)
    manifests_garbage_left: int | None = None  # reference: manifests are blobs too
    manifests_live_missing: int | None = None


def census(side: str, data_dir: Path, plan: Plan) -> Census:
    path = reference_blob_path if side == "reference" else haven_blob_path
    c = Census()
    if side == "reference":
        c.manifests_garbage_left = c.manifests_live_missing = 0
    for i in range(plan.manifests):
        image = plan.image(i)
        found = present(path(data_dir, d) for d in image.blob_digests)
        manifest_found = side == "reference" and path(data_dir, image.digest).exists()
        if plan.deleted(i):
            c.garbage_total += len(image.blobs)
            c.garbage_left += found
            if c.manifests_garbage_left is not None:
                c.manifests_garbage_left += int(manifest_found)
        else:
            c.live_total += len(image.blobs)
            c.live_missing += len(image.blobs) - found
            if c.manifests_live_missing is not None:
                c.manifests_live_missing += int(not manifest_found)
    return c


# -- memory ----------------------------------------------------------------------------


def _rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def _hwm_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError):
            continue
    return total


class TreeMemory:
    """Resident memory of a server's process tree across a block: sampled every 50 ms (the
    tree's peak total, a lower bound), and the sum of per-process VmHWM reset just before
    (an upper bound: the processes' peaks need not coincide)."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.pids = process_tree(root)
        self.interval = interval
        self.before = self.peak = self.hwm_after = 0
        self.hwm_reset = False
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, _rss_bytes(self.pids))
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> TreeMemory:
        self.hwm_reset = reset_tree_peak_rss(self.pids[0])
        self.before = self.peak = _rss_bytes(self.pids)
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, _rss_bytes(self.pids))
        self.hwm_after = _hwm_bytes(self.pids)

    def as_json(self) -> dict[str, Any]:
        return {
            "processes": len(self.pids),
            "rss_before_mb": self.before / 1e6,
            "sampled_peak_mb": self.peak / 1e6,
            "sampled_growth_mb": (self.peak - self.before) / 1e6,
            "hwm_sum_after_mb": self.hwm_after / 1e6,
            "hwm_growth_mb": (self.hwm_after - self.before) / 1e6 if self.hwm_reset else None,
        }


# -- garbage collection on each side ---------------------------------------------------


@dataclass
class GcResult:
    seconds: float
    peak_memory_mb: float  # reference: the collector's peak RSS; Haven: the tree's growth
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    census: Census
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def files_deleted(self) -> int:
        return self.files_before - self.files_after


def _run_reference_collector(config: Path, log_path: Path) -> dict[str, Any]:
    """Run `docker-registry garbage-collect` to its end; wall time and rusage via wait4."""
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [REFERENCE_BINARY, "garbage-collect", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "seconds": seconds,
        "exit_code": proc.returncode,
        "max_rss_mb": usage.ru_maxrss * 1024 / 1e6,  # KiB on Linux
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


async def reference_gc(server: Server, plan: Plan) -> GcResult:
    server.stop()  # offline collection: that is how distribution 2.8 does it
    files_before, bytes_before = on_disk("reference", server.data_dir)
    config = server.data_dir.parent / "config.yml"
    log_path = server.data_dir.parent / "garbage-collect.log"
    os.sync()
    async with heartbeat("reference garbage-collect"):
        run = await asyncio.to_thread(_run_reference_collector, config, log_path)
    text = log_path.read_text(errors="replace")
    if run["exit_code"] != 0:
        tail = "\n".join(text.splitlines()[-20:])
        raise RuntimeError(f"garbage-collect exited with {run['exit_code']}:\n{tail}")
    summary = _REFERENCE_SUMMARY.search(text)
    if summary:
        run["marked"], run["blobs_eligible"], run["manifests_eligible"] = (
            int(g) for g in summary.groups()
        )
    files_after, bytes_after = on_disk("reference", server.data_dir)
    return GcResult(
        run["seconds"],
        run["max_rss_mb"],
        files_before,
        files_after,
        bytes_before,
        bytes_after,
        await asyncio.to_thread(census, "reference", server.data_dir, plan),
        run,
    )


async def online_gc(session: aiohttp.ClientSession, server: Server, plan: Plan) -> GcResult:
    files_before, bytes_before = on_disk("haven", server.data_dir)
    os.sync()
    cpu0 = tree_cpu_seconds(server.pid)
    async with TreeMemory(server.pid) as memory:
        t0 = time.perf_counter()
        async with heartbeat("haven POST /api/gc"):
            report = await haven_gc(session, server)
        seconds = time.perf_counter() - t0
    cpu = tree_cpu_seconds(server.pid) - cpu0
    files_after, bytes_after = on_disk("haven", server.data_dir)
    uploads, _ = count_files(server.data_dir / "uploads")
    detail = {
        "response": report,
        "server_cpu_s": cpu,
        "memory": memory.as_json(),
        "upload_files_left": uploads,
    }
    return GcResult(
        seconds,
        (memory.peak - memory.before) / 1e6,
        files_before,
        files_after,
        bytes_before,
        bytes_after,
        await asyncio.to_thread(census, "haven", server.data_dir, plan),
        detail,
    )


# -- push throughput while collecting --------------------------------------------------


@dataclass
class Phase:
    kind: str  # "idle" or "busy"
    seconds: float = 0.0
    pushed: int = 0
    push_errors: int = 0
    deleted: int = 0
    delete_errors: int = 0
    gc_calls: int = 0
    gc_blobs_deleted: int = 0
    gc_call_ms: list[float] = field(default_factory=list)
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.pushed / self.seconds if self.seconds else 0.0

    def note(self, exc: Exception) -> None:
        if len(self.errors) < 5:
            self.errors.append(str(exc)[:300])

    def as_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["manifests_per_s"] = self.rate
        calls = self.gc_call_ms
        d["gc_call_ms"] = {
            "count": len(calls),
            "mean": sum(calls) / len(calls) if calls else None,
            "max": max(calls) if calls else None,
        }
        return d


@dataclass
class Throughput:
    session: aiohttp.ClientSession
    server: Server
    client: GcClient
    salt: bytes
    repos: int
    seconds: float
    concurrency: int
    delete_rate: float
    pool: deque[Image]  # live images, oldest first: what the deleter removes
    live_pushed: list[Image] = field(default_factory=list)
    deleted: list[Image] = field(default_factory=list)
    _keys: itertools.count[int] = field(default_factory=itertools.count)

    def _next_image(self) -> Image:
        n = next(self._keys)
        return make_image(self.salt, f"t{n}", f"gc/r{n % self.repos:03d}", 2)

    async def _pushers(self, phase: Phase) -> None:
        deadline = time.monotonic() + self.seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                image = self._next_image()
                try:
                    await self.client.push_image(image)
                except RegistryError as exc:
                    phase.push_errors += 1
                    phase.note(exc)
                    continue
                phase.pushed += 1
                self.pool.append(image)
                self.live_pushed.append(image)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def _deleter(self, phase: Phase, stop: asyncio.Event) -> None:
        """`delete_rate` deletes per second, oldest image first, in idle and busy phases
        alike; a few deletes may be in flight, so the rate holds while the server is slow."""
        if self.delete_rate <= 0:
            return
        interval = 1.0 / self.delete_rate
        start = time.monotonic()
        tickets = itertools.count()

        async def worker() -> None:
            while not stop.is_set():
                due = start + next(tickets) * interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
                if stop.is_set() or not self.pool:
                    continue
                image = self.pool.popleft()
                try:
                    await self.client.delete_manifest(image.repo, image.digest)
                except RegistryError as exc:
                    phase.delete_errors += 1
                    phase.note(exc)
                    continue
                phase.deleted += 1
                self.deleted.append(image)

        await asyncio.gather(*(worker() for _ in range(DELETERS)))

    async def _collector(self, phase: Phase, stop: asyncio.Event) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                report = await haven_gc(self.session, self.server)
            except RegistryError as exc:
                phase.note(exc)
                await asyncio.sleep(0.1)
                continue
            phase.gc_call_ms.append((time.perf_counter() - t0) * 1000)
            phase.gc_calls += 1
            phase.gc_blobs_deleted += int(report.get("blobsDeleted", 0))

    async def run_phase(self, kind: str) -> Phase:
        phase = Phase(kind)
        os.sync()
        stop = asyncio.Event()
        cpu0, own0, busy0 = (
            tree_cpu_seconds(self.server.pid),
            time.process_time(),
            busy_cpu_seconds(),
        )
        t0 = time.perf_counter()
        helpers = [asyncio.create_task(self._deleter(phase, stop))]
        if kind == "busy":
            helpers.append(asyncio.create_task(self._collector(phase, stop)))
        try:
            await self._pushers(phase)
            phase.seconds = time.perf_counter() - t0
        finally:
            stop.set()
            await asyncio.gather(*helpers)
        phase.server_cpu_s = tree_cpu_seconds(self.server.pid) - cpu0
        phase.client_cpu_s = time.process_time() - own0
        phase.other_cpu_s = max(
            0.0, busy_cpu_seconds() - busy0 - phase.server_cpu_s - phase.client_cpu_s
        )
        return phase


# -- the run ---------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    unit: str
    haven: float | None
    reference: float | None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def table(rows: list[Row]) -> str:
    header = ["scenario", "unit", "haven", "reference", "ratio", "target", "met"]
    cells = [header]
    for r in rows:
        cells.append(
            [
                r.scenario,
                r.unit,
                _num(r.haven),
                _num(r.reference),
                "-" if r.ratio is None else f"{r.ratio:.2f}x",
                r.target or "-",
                {True: "yes", False: "NO", None: "-"}[r.met],
            ]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        line = "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        lines.append(line.rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.gc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--blobs", type=int, default=100_000, help="distinct blobs (default 100000)")
    p.add_argument("--manifests", type=int, default=50_000, help="manifests (default 50000)")
    p.add_argument("--repos", type=int, default=10, help="repositories (default 10)")
    p.add_argument(
        "--concurrency", type=int, default=32, help="images in flight while populating and deleting"
    )
    p.add_argument(
        "--push-seconds", type=float, default=20.0, help="length of each push phase (default 20)"
    )
    p.add_argument(
        "--push-concurrency", type=int, default=16, help="images in flight in the push phases"
    )
    p.add_argument(
        "--delete-rate",
        type=float,
        default=25.0,
        help="manifest deletes per second during every push phase (default 25; 0: none)",
    )
    p.add_argument("--skip-push", action="store_true", help="skip the push-throughput phases")
    p.add_argument(
        "--haven-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="haven serve --workers (default: number of CPUs)",
    )
    p.add_argument("--haven-cmd", default=None, help="command that runs Haven's CLI")
    p.add_argument("--haven-auth", choices=("bearer", "basic"), default="bearer")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    args = p.parse_args(argv)
    try:
        Plan(args.blobs, args.manifests, args.repos, b"")
    except ValueError as exc:
        p.error(str(exc))
    return args


async def _populate(name: str, client: GcClient, plan: Plan, concurrency: int) -> float:
    async def push(i: int) -> None:
        await client.push_image(plan.image(i))

    seconds = await bounded(concurrency, range(plan.manifests), push, f"populate {name}")
    _log(
        f"{name}: pushed {plan.manifests:,} manifests, {plan.blobs:,} blobs in {seconds:.1f}s "
        f"({plan.manifests / seconds:,.0f} manifests/s)"
    )
    return seconds


async def _delete_half(name: str, client: GcClient, plan: Plan, concurrency: int) -> float:
    async def delete(i: int) -> None:
        image = plan.image(i)
        await client.delete_manifest(image.repo, image.digest)

    seconds = await bounded(concurrency, plan.deleted_indices(), delete, f"delete {name}")
    _log(f"{name}: deleted {len(plan.deleted_indices()):,} manifests in {seconds:.1f}s")
    return seconds


def _describe_gc(name: str, r: GcResult) -> None:
    c = r.census
    _log(
        f"{name}: garbage collection {r.seconds:.2f}s, peak memory {r.peak_memory_mb:.1f} MB; "
        f"blob files {r.files_before:,} -> {r.files_after:,}; garbage blobs left "
        f"{c.garbage_left:,}/{c.garbage_total:,}; live blobs missing {c.live_missing:,}"
        f"/{c.live_total:,}"
    )


async def _run(args: argparse.Namespace, workdir: Path, doc: dict[str, Any]) -> list[Row]:
    plan = Plan(args.blobs, args.manifests, args.repos, os.urandom(8))
    command = haven_command(args.haven_cmd)
    servers: dict[str, Server] = {}
    rows: list[Row] = []
    problems: list[str] = doc["problems"]
    try:
        servers["haven"] = start_haven(workdir / "haven", args.haven_workers, command, HAVEN_ENV)
        servers["reference"] = start_reference(workdir / "reference")
        for name, server in servers.items():
            _log(f"{name}: {server.description} at {server.base_url}")
        doc["registries"] = {n: s.description for n, s in servers.items()}
        async with contextlib.AsyncExitStack() as stack:
            sessions = {
                n: await stack.enter_async_context(new_session(max(64, args.concurrency * 2)))
                for n in servers
            }
            clients = {n: make_client(sessions[n], s, args.haven_auth) for n, s in servers.items()}

            populate = {}
            for name in servers:
                os.sync()
                populate[name] = await _populate(name, clients[name], plan, args.concurrency)
            deletes = {}
            for name in servers:
                deletes[name] = await _delete_half(name, clients[name], plan, args.concurrency)

            gc: dict[str, GcResult] = {}
            gc["reference"] = await reference_gc(servers["reference"], plan)
            _describe_gc("reference", gc["reference"])
            gc["haven"] = await online_gc(sessions["haven"], servers["haven"], plan)
            _describe_gc("haven", gc["haven"])
            response = gc["haven"].detail["response"]
            _log(f"haven: POST /api/gc answered {json.dumps(response)}")

            garbage = gc["haven"].census.garbage_total
            for name, r in gc.items():
                c = r.census
                if c.live_missing:
                    problems.append(f"{name}: {c.live_missing} blobs of kept images are gone")
                if c.garbage_left:
                    problems.append(f"{name}: {c.garbage_left} of {garbage} garbage blobs remain")
            if int(response.get("blobsDeleted", -1)) != gc["haven"].files_deleted:
                problems.append(
                    f"haven: the response says {response.get('blobsDeleted')} blobs deleted, "
                    f"{gc['haven'].files_deleted} files went from disk"
                )

            n_images = plan.manifests
            rows += [
                Row(
                    f"populate ({n_images:,} manifests)",
                    "s",
                    populate["haven"],
                    populate["reference"],
                    _ratio(populate["haven"], populate["reference"]),
                ),
                Row(
                    "populate rate",
                    "manifests/s",
                    n_images / populate["haven"],
                    n_images / populate["reference"],
                    _ratio(n_images / populate["haven"], n_images / populate["reference"]),
                ),
                Row(
                    f"delete {len(plan.deleted_indices()):,} manifests",
                    "s",
                    deletes["haven"],
                    deletes["reference"],
                    _ratio(deletes["haven"], deletes["reference"]),
                ),
                Row(
                    "gc time (haven online, reference offline)",
                    "s",
                    gc["haven"].seconds,
                    gc["reference"].seconds,
                    _ratio(gc["haven"].seconds, gc["reference"].seconds),
                ),
                Row(
                    "gc peak memory (haven: growth of tree)",
                    "MB",
                    gc["haven"].peak_memory_mb,
                    gc["reference"].peak_memory_mb,
                    _ratio(gc["haven"].peak_memory_mb, gc["reference"].peak_memory_mb),
                ),
                Row(
                    f"config+layer blobs deleted (of {garbage:,} garbage)",
                    "blobs",
                    garbage - gc["haven"].census.garbage_left,
                    garbage - gc["reference"].census.garbage_left,
                ),
                Row(
                    "blob files deleted from disk",
                    "files",
                    gc["haven"].files_deleted,
                    gc["reference"].files_deleted,
                ),
                Row(
                    "bytes freed on disk",
                    "MB",
                    (gc["haven"].bytes_before - gc["haven"].bytes_after) / 1e6,
                    (gc["reference"].bytes_before - gc["reference"].bytes_after) / 1e6,
                ),
            ]
            doc["populate_s"] = populate
            doc["delete_s"] = deletes
            doc["gc"] = {n: {**asdict(r), "files_deleted": r.files_deleted} for n, r in gc.items()}

            if not args.skip_push:
                rows += await _push_phases(args, plan, servers["haven"], sessions, clients, doc)
    finally:
        for server in servers.values():
            server.stop()
    return rows


async def _push_phases(
    args: argparse.Namespace,
    plan: Plan,
    server: Server,
    sessions: dict[str, aiohttp.ClientSession],
    clients: dict[str, GcClient],
    doc: dict[str, Any],
) -> list[Row]:
    """Idle, busy, busy, idle on the Haven that was just collected."""
    problems: list[str] = doc["problems"]
    pool = deque(plan.image(i) for i in range(0, plan.manifests, 2))
    bench = Throughput(
        sessions["haven"],
        server,
        clients["haven"],
        plan.salt,
        plan.repos,
        args.push_seconds,
        args.push_concurrency,
        args.delete_rate,
        pool,
    )
    phases: list[Phase] = []
    for kind in ("idle", "busy", "busy", "idle"):
        phase = await bench.run_phase(kind)
        phases.append(phase)
        _log(
            f"haven push, gc {kind}: {phase.rate:,.1f} manifests/s ({phase.pushed:,} in "
            f"{phase.seconds:.1f}s; {phase.deleted} deleted; {phase.gc_calls} gc calls "
            f"deleting {phase.gc_blobs_deleted} blobs; server cpu {phase.server_cpu_s:.1f}s, "
            f"client cpu {phase.client_cpu_s:.1f}s, other cpu {phase.other_cpu_s:.1f}s)"
        )
        for error in phase.errors:
            _log(f"  error: {error}")
        if phase.push_errors or phase.delete_errors:
            problems.append(
                f"push phase {kind}: {phase.push_errors} push errors, "
                f"{phase.delete_errors} delete errors (first: {phase.errors[:1]})"
            )

    # Afterwards: one more pass, then every image still live must be whole on disk and
    # every deleted one gone; usage must match a recount.
    final = await haven_gc(sessions["haven"], server)
    deleted = {img.digest for img in bench.deleted}
    live_blobs = {
        d for img in bench.live_pushed if img.digest not in deleted for d in img.blob_digests
    }
    live_blobs |= {d for img in bench.pool for d in img.blob_digests}
    dead_blobs = {d for img in bench.deleted for d in img.blob_digests} - live_blobs
    missing = len(live_blobs) - present(haven_blob_path(server.data_dir, d) for d in live_blobs)
    left = present(haven_blob_path(server.data_dir, d) for d in dead_blobs)
    if missing:
        problems.append(f"after the push phases: {missing} blobs of live images are gone")
    if left:
        problems.append(f"after the push phases and a final pass: {left} garbage blobs remain")
    try:
        usage = await haven_check_usage(sessions["haven"], server)
    except RegistryError as exc:
        usage = {"error": str(exc)}
    if usage.get("driftBytes") not in (0, None):
        problems.append(f"usage drift after the push phases: {usage}")
    doc["push"] = {
        "phases": [p.as_json() for p in phases],
        "final_gc": final,
        "live_blobs_checked": len(live_blobs),
        "live_blobs_missing": missing,
        "garbage_blobs_checked": len(dead_blobs),
        "garbage_blobs_left": left,
        "usage_check": usage,
    }
    _log(
        f"haven after the phases: final gc {json.dumps(final)}; live blobs missing "
        f"{missing}/{len(live_blobs)}; garbage left {left}/{len(dead_blobs)}; usage {usage}"
    )

    idle = [p.rate for p in phases if p.kind == "idle"]
    busy = [p.rate for p in phases if p.kind == "busy"]
    idle_rate, busy_rate = sum(idle) / len(idle), sum(busy) / len(busy)
    ratio = _ratio(busy_rate, idle_rate)
    doc["push"]["idle_manifests_per_s"] = idle_rate
    doc["push"]["busy_manifests_per_s"] = busy_rate
    doc["push"]["busy_over_idle"] = ratio
    return [
        Row("push, gc idle (haven)", "manifests/s", idle_rate, None),
        Row(
            "push, gc back to back (haven)",
            "manifests/s",
            busy_rate,
            None,
            ratio,
            f">= {PUSH_TARGET:.2f}x idle",
            None if ratio is None else ratio >= PUSH_TARGET,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="haven-gc-bench-"))
    started = time.monotonic()
    doc: dict[str, Any] = {
        "machine": describe(workdir),
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "haven_env": HAVEN_ENV,
        "problems": [],
    }
    try:
        rows = event_loop_run(_run(args, workdir, doc))
    except ServerError as exc:
        _log(f"error: {exc}")
        return 2
    except (asyncio.CancelledError, KeyboardInterrupt):
        _log("interrupted: registries stopped, nothing reported")
        return 130
    except (RegistryError, RuntimeError, aiohttp.ClientError, OSError) as exc:
        _log(f"error: {type(exc).__name__}: {exc}")
        return 1
    finally:
        if args.keep:
            _log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    m = doc["machine"]
    print()
    print(
        f"Garbage collection benchmark: {args.manifests:,} manifests, {args.blobs:,} blobs in "
        f"{args.repos} repositories, half the manifests deleted; {elapsed:.0f}s total"
    )
    print(
        f"{m['date']}  {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
        f"disk {m['disk']}; haven workers {args.haven_workers}, auth {args.haven_auth}"
    )
    print()
    print(table(rows))
    print()
    print("* ratio: haven / reference; on the push row, haven busy / haven idle")
    print(
        "* gc peak memory: reference = peak RSS of `docker-registry garbage-collect` (a fresh "
        "process); haven = growth of the server tree's RSS during POST /api/gc, sampled every "
        "50 ms (the JSON also has the summed VmHWM)"
    )
    print(
        "* the reference also stores each manifest as a blob file, so its files deleted "
        "include the deleted manifests"
    )
    for problem in doc["problems"]:
        print(f"! {problem}")
    doc["elapsed_s"] = round(elapsed, 1)
    doc["rows"] = [asdict(r) for r in rows]
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        _log(f"wrote {args.json}")
    return 1 if doc["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
