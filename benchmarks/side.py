"""One registry under test as the scenarios see it: its server, a client, shared fixtures and
a timer that also records who spent the CPU.

The CPU split matters on a 2-core machine: a round whose client CPU approaches one core
measured the load generator rather than the server, and the JSON output lets a reader check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.client import RegistryClient
from benchmarks.machine import busy_cpu_seconds
from benchmarks.profile import Profile
from benchmarks.servers import CpuParts, Deployment


@dataclass
class Timing:
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0  # every process of the deployment
    other_cpu: float = 0.0  # machine CPU used by neither: other processes, kernel threads
    registry_cpu: float = 0.0  # the registry's own processes (Haven's nodes, docker-registry)
    parts: dict[str, float] = field(default_factory=dict)  # server_cpu by process tree


@dataclass
class Measurement:
    """One round's figure, in the scenario's unit, plus what is worth keeping beside it."""

    value: float
    timing: Timing
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Side:
    name: str
    server: Deployment
    client: RegistryClient
    profile: Profile
    workdir: Path
    start_fresh: Callable[[Path], Deployment]
    auth_mode: str = "bearer"
    _fixtures: dict[str, asyncio.Future[Any]] = field(default_factory=dict)

    async def fixture(self, key: str, build: Callable[[], Awaitable[Any]]) -> Any:
        """Build shared set-up (seed blobs, 10,000 tags...) once per side, whichever scenario
        asks first, so `--only` can run any scenario on its own."""
        if key not in self._fixtures:
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._fixtures[key] = future
            try:
                future.set_result(await build())
            except BaseException as exc:
                future.set_exception(exc)
                raise
        return await self._fixtures[key]

    @contextmanager
    def timed(self) -> Iterator[Timing]:
        """Wall time, this process's CPU, the deployment's CPU (part by part), and
        everything else the machine did meanwhile, across the block."""
        timing = Timing()
        c0, s0 = time.process_time(), self.server.cpu()
        m0 = busy_cpu_seconds()
        t0 = time.perf_counter()
        yield timing
        timing.seconds = time.perf_counter() - t0
        timing.client_cpu = time.process_time() - c0
        spent = cpu_delta(s0, self.server.cpu())
        timing.registry_cpu = sum(spent.registry.values())
        timing.server_cpu = spent.total()
        timing.parts = spent.by_part()
        busy = busy_cpu_seconds() - m0
        timing.other_cpu = max(0.0, busy - timing.client_cpu - timing.server_cpu)


def cpu_delta(before: CpuParts, after: CpuParts) -> CpuParts:
    """CPU used between two readings, part by part (a part that appeared meanwhile counts
    from zero; one that vanished counts nothing)."""

    def minus(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {name: max(0.0, value - b.get(name, 0.0)) for name, value in a.items()}

    return CpuParts(minus(after.registry, before.registry), minus(after.support, before.support))
