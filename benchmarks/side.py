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
from benchmarks.procinfo import tree_cpu_seconds
from benchmarks.profile import Profile
from benchmarks.servers import Server


@dataclass
class Timing:
    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    other_cpu: float = 0.0  # machine CPU used by neither: other processes, kernel threads


@dataclass
class Measurement:
    """One round's figure, in the scenario's unit, plus what is worth keeping beside it."""

    value: float
    timing: Timing
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Side:
    name: str
    server: Server
    client: RegistryClient
    profile: Profile
    workdir: Path
    start_fresh: Callable[[Path], Server]
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
        """Wall time, this process's CPU, the server tree's CPU, and everything else the
        machine did meanwhile, across the block."""
        timing = Timing()
        c0, s0 = time.process_time(), tree_cpu_seconds(self.server.pid)
        m0 = busy_cpu_seconds()
        t0 = time.perf_counter()
        yield timing
        timing.seconds = time.perf_counter() - t0
        timing.client_cpu = time.process_time() - c0
        timing.server_cpu = tree_cpu_seconds(self.server.pid) - s0
        busy = busy_cpu_seconds() - m0
        timing.other_cpu = max(0.0, busy - timing.client_cpu - timing.server_cpu)
