"""Entry point: `python -m benchmarks.run [--quick] [--haven-workers N] [--rounds R]
[--only SCENARIO ...] [--servers NAME ...] [--scale-out] [--json FILE]`.

Starts Haven and the reference registry on fresh data directories (and, with
`--scale-out`, Haven in scale-out mode with one node and with two: PostgreSQL, Azurite,
nginx), runs each scenario on every one in A B B A order (so drift over time — page cache,
writeback, thermal — falls on all sides alike), prints the table and optionally writes
JSON. Exits non-zero if any scenario failed on a registry that was under test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.profile import FULL, QUICK, Profile
from benchmarks.servers import Deployment, ServerError, haven_command, start_haven, start_reference

try:
    import aiohttp  # noqa: F401 - checked here so the message names the missing package
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("benchmarks need aiohttp: pip install aiohttp (and uvloop for the load client)")

from benchmarks.client import client_for, new_session
from benchmarks.machine import busy_cpu_seconds, describe, own_cpu_seconds
from benchmarks.report import (
    EMBEDDED,
    ONE_NODE,
    REFERENCE,
    SCALE_OUT,
    SIDES,
    TWO_NODES,
    ScenarioResult,
    footnotes,
    pull_cpu_table,
    table,
)
from benchmarks.scenarios import ALL, BY_NAME, Scenario
from benchmarks.side import Measurement, Side

T = TypeVar("T")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and counts: a smoke test that takes well under a minute",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"measured rounds per registry (default {FULL.rounds}, {QUICK.rounds} with --quick)",
    )
    parser.add_argument(
        "--haven-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="haven serve --workers (default: number of CPUs)",
    )
    parser.add_argument(
        "--haven-cmd", default=None, help="command that runs Haven's CLI (default: .venv/bin/haven)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=list(BY_NAME),
        metavar="SCENARIO",
        help=f"run only these scenarios: {', '.join(BY_NAME)}",
    )
    parser.add_argument(
        "--haven-auth",
        choices=("bearer", "basic"),
        default="bearer",
        help="how to authenticate to Haven: the token protocol real clients use (default), "
        "or HTTP Basic on every request",
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SIDES,
        default=None,
        metavar="NAME",
        help=f"registries to measure, any of: {', '.join(SIDES)} (default: {EMBEDDED} {REFERENCE})",
    )
    parser.add_argument(
        "--scale-out",
        action="store_true",
        help=f"also measure Haven in scale-out mode: {ONE_NODE} (one node) and {TWO_NODES} "
        "(two behind nginx), on PostgreSQL and Azurite",
    )
    parser.add_argument(
        "--scaleout-workers",
        type=int,
        default=1,
        help="haven serve --workers of each scale-out node (default 1)",
    )
    parser.add_argument(
        "--postgres-url",
        default=None,
        help="PostgreSQL for scale-out mode: the URL of a database there to connect to while "
        "creating (and dropping) one per deployment (default $HAVEN_BENCH_POSTGRES_URL, else "
        "the machine's at 127.0.0.1:5432 as user postgres)",
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument(
        "--reference-only",
        action="store_true",
        help="do not start Haven (its column shows 'pending')",
    )
    who.add_argument("--haven-only", action="store_true", help="do not start the reference")
    parser.add_argument(
        "--max-interference",
        type=float,
        default=0.10,
        help="measure a round again when other work took more than this share of the "
        "machine's CPU during it (default 0.10)",
    )
    parser.add_argument(
        "--interference-retries",
        type=int,
        default=2,
        help="at most this many repeats of a disturbed round (default 2; 0 disables)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary data directories (and server logs)"
    )
    return parser.parse_args(argv)


def chosen(args: argparse.Namespace) -> dict[str, bool]:
    """Which registries run: `--servers`, else Haven and the reference; `--scale-out` adds
    both scale-out sides; `--haven-only` drops the reference, `--reference-only` every
    Haven."""
    names = set(args.servers or (EMBEDDED, REFERENCE))
    if args.scale_out:
        names.update(SCALE_OUT)
    if args.haven_only:
        names.discard(REFERENCE)
    if args.reference_only:
        names = {REFERENCE}
    return {name: name in names for name in SIDES}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _run_scenario(
    scenario: Scenario,
    sides: dict[str, Side],
    rounds: int,
    max_disturbance: float,
    retries: int,
) -> ScenarioResult:
    """Set up on every side, then measure in A B / B A rounds. A round during which other
    work on the machine took more than `max_disturbance` of its CPU is measured again, up
    to `retries` times (shared machines); the last attempt is kept whatever it saw."""
    result = ScenarioResult(scenario)
    for name, side in sides.items():
        try:
            await scenario.setup(side)
        except Exception as exc:
            result.sides[name].error = f"setup: {exc}"
            _log(f"  {name}: setup failed: {exc}")
    order = list(sides)
    plan = (
        [order if r % 2 == 0 else order[::-1] for r in range(rounds)]
        if scenario.per_round
        else [order]
    )
    for round_no, names in enumerate(plan):
        for name in names:
            side_result = result.sides[name]
            if side_result.error:
                continue
            for attempt in range(1 + retries):
                os.sync()  # start every round with no dirty pages left by the previous one
                try:
                    m = await scenario.measure(sides[name], round_no)
                except Exception as exc:
                    side_result.error = f"round {round_no}: {exc}"
                    _log(f"  {name}: round {round_no} failed: {exc}")
                    break
                _log(
                    f"  round {round_no} {name:16s} {m.value:12.2f} {scenario.unit:12s}"
                    f" ({m.timing.seconds:.2f}s, client cpu {m.timing.client_cpu:.2f}s,"
                    f" server cpu {m.timing.server_cpu:.2f}s, other cpu {m.timing.other_cpu:.2f}s)"
                )
                if _disturbance(m) <= max_disturbance or attempt == retries:
                    m.detail["repeats_for_interference"] = attempt
                    side_result.measurements.append(m)
                    break
                _log(
                    f"  round {round_no} {name}: other work took {_disturbance(m):.0%} of the "
                    "machine; measuring again"
                )
    return result


def _disturbance(m: Measurement) -> float:
    """Share of the machine's CPU that went to neither client nor server during a round."""
    if m.timing.seconds <= 0:
        return 0.0
    return m.timing.other_cpu / (m.timing.seconds * (os.cpu_count() or 1))


async def _run(
    args: argparse.Namespace,
    profile: Profile,
    rounds: int,
    servers: dict[str, Deployment],
    fresh: dict[str, Callable[[Path], Deployment]],
    workdir: Path,
) -> list[ScenarioResult]:
    scenarios = [BY_NAME[n] for n in args.only] if args.only else ALL
    async with contextlib.AsyncExitStack() as stack:
        sides: dict[str, Side] = {}
        for name, server in servers.items():
            session = await stack.enter_async_context(new_session())
            sides[name] = Side(
                name,
                server,
                client_for(session, server, args.haven_auth),
                profile,
                workdir,
                fresh[name],
                args.haven_auth,
            )
        results = []
        for scenario in scenarios:
            _log(f"== {scenario.name}: {scenario.title}")
            t0 = time.monotonic()
            results.append(
                await _run_scenario(
                    scenario, sides, rounds, args.max_interference, args.interference_retries
                )
            )
            _log(f"   ({time.monotonic() - t0:.1f}s)")
        return results


def event_loop_run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when available (a cheaper client loop; it is a Haven dependency).

    SIGINT and SIGTERM cancel the run instead of killing the process, so `main` still stops
    the registries: they live in their own sessions and would otherwise outlive it."""

    async def guarded() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await coro

    try:
        import uvloop
    except ImportError:
        return asyncio.run(guarded())
    return uvloop.run(guarded())


def _scaleout(
    workdir: Path, name: str, nodes: int, args: argparse.Namespace, command: list[str]
) -> Deployment:
    # Imported here: only scale-out mode needs PostgreSQL's driver and the test helpers.
    from benchmarks.scaleout import start_scaleout

    return start_scaleout(workdir, name, nodes, args.scaleout_workers, command, args.postgres_url)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = QUICK if args.quick else FULL
    rounds = args.rounds or profile.rounds
    workdir = Path(tempfile.mkdtemp(prefix="haven-bench-"))
    machine = describe(workdir)
    present = chosen(args)
    havens = [name for name in SIDES if present[name] and name != REFERENCE]
    servers: dict[str, Deployment] = {}
    started = time.monotonic()
    busy0, own0 = busy_cpu_seconds(), own_cpu_seconds()
    try:
        command = haven_command(args.haven_cmd) if havens else []
        fresh: dict[str, Callable[[Path], Deployment]] = {
            EMBEDDED: lambda d: start_haven(d, args.haven_workers, command),
            REFERENCE: start_reference,
            ONE_NODE: lambda d: _scaleout(d, ONE_NODE, 1, args, command),
            TWO_NODES: lambda d: _scaleout(d, TWO_NODES, 2, args, command),
        }
        for name in SIDES:
            if present[name]:
                servers[name] = fresh[name](workdir / name)
                _log(f"{name}: {servers[name].description} at {servers[name].base_url}")
        results = event_loop_run(_run(args, profile, rounds, servers, fresh, workdir))
    except ServerError as exc:
        _log(f"error: {exc}")
        if present[EMBEDDED] and EMBEDDED not in servers:
            _log("(to measure the reference registry alone, pass --reference-only)")
        return 2
    except (asyncio.CancelledError, KeyboardInterrupt):
        _log("interrupted: registries stopped, nothing reported")
        return 130
    finally:
        for server in servers.values():
            server.stop()
        if args.keep:
            _log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    elapsed = time.monotonic() - started
    # Other work on the machine skews every figure: say how much CPU it took meanwhile.
    foreign = busy_cpu_seconds() - busy0 - (own_cpu_seconds() - own0)
    machine["other_processes_cpu_s"] = round(max(foreign, 0.0), 1)
    machine["other_processes_cpu_pct"] = round(
        100 * max(foreign, 0.0) / (elapsed * (os.cpu_count() or 1)), 1
    )
    print()
    scaled = any(present[name] for name in SCALE_OUT)
    print(
        f"Haven benchmark, profile {profile.name}, {rounds} rounds, "
        f"haven workers {args.haven_workers if present[EMBEDDED] else '-'}, "
        + (f"scale-out workers per node {args.scaleout_workers}, " if scaled else "")
        + f"haven auth {args.haven_auth if havens else '-'}, "
        f"{elapsed:.0f}s total"
    )
    print(
        f"{machine['date']}  {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB RAM, disk {machine['disk']}"
    )
    print(
        f"CPU not charged to this benchmark or its servers: "
        f"{machine['other_processes_cpu_s']} s ({machine['other_processes_cpu_pct']}% of the "
        "machine: other processes, and kernel work such as writeback)"
    )
    print(
        "clients (in the benchmark process, uvloop): manifest-get benchmarks.rawload "
        "(pre-encoded HTTP/1.1); pulls benchmarks.rawpull (recv_into); the rest aiohttp"
    )
    for name in SCALE_OUT:
        if name in servers:
            print(f"{name}: {servers[name].description}")
    print()
    print(table(results, present))
    pulls = pull_cpu_table(results, present)
    if pulls:
        print()
        print(pulls)
    notes = footnotes(results)
    for note in notes:
        print(f"* {note}")
    if args.json:
        doc = {
            "machine": machine,
            "profile": profile.__dict__,
            "rounds": rounds,
            "haven_workers": args.haven_workers if present[EMBEDDED] else None,
            "scaleout_workers": args.scaleout_workers if scaled else None,
            "haven_auth": args.haven_auth if havens else None,
            "registries": {name: s.description for name, s in servers.items()},
            "elapsed_s": round(elapsed, 1),
            "results": [r.to_json() for r in results],
            "footnotes": notes,
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        _log(f"wrote {args.json}")
    failed = any(r.sides[n].error for r in results for n in SIDES if present[n])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
