"""Describe the machine a run happened on: figures mean little without it."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def _first(path: str, prefix: str) -> str:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _disk(path: Path) -> str:
    """Device behind `path`, its size and whether the kernel calls it rotational."""
    try:
        out = subprocess.run(
            ["df", "--output=source,size", "-h", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")[1]
        device, size = out.split()
        name = Path(device).name
        rota = Path(f"/sys/block/{name}/queue/rotational")
        kind = {"0": "non-rotational", "1": "rotational"}.get(
            rota.read_text().strip() if rota.exists() else "", "unknown kind"
        )
        return f"{device} ({size}, {kind} per the kernel)"
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return "unknown"


def _version(argv: list[str]) -> str:
    if not shutil.which(argv[0]):
        return "not installed"
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def _haven_revision() -> str:
    """The commit of the Haven tree being measured, `-dirty` when it has local changes."""
    repo = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def describe(data_path: Path) -> dict[str, Any]:
    import aiohttp

    mem_kib = int(_first("/proc/meminfo", "MemTotal").split()[0])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "memory_gib": round(mem_kib / (1 << 20), 1),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "disk": _disk(data_path),
        "python": sys.version.split()[0],
        "aiohttp": aiohttp.__version__,
        "reference_version": _version(["docker-registry", "--version"]),
        "haven_revision": _haven_revision(),
    }


def busy_cpu_seconds() -> float:
    """CPU time the whole machine has spent busy since boot (all cores, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and of the registries it has stopped (their trees' CPU, read
    just before each stop; rusage of children would miss workers orphaned by the stop)."""
    from benchmarks.servers import SERVER_CPU_SECONDS

    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime + sum(SERVER_CPU_SECONDS)
