"""Turn per-round measurements into medians, spreads, ratios and a verdict per target.

Medians, not means: one round disturbed by page-cache writeback or a scheduler hiccup on a
2-core machine should not move the headline. The spread (half the min-max range, relative to
the median) is printed beside it so a reader can tell a real difference from noise.

Up to four registries take part: Haven on its embedded stores, the reference, and Haven in
scale-out mode with one node and with two (`benchmarks.scaleout`). Haven's targets compare
the embedded Haven with the reference. Scale-out adds two checks: two nodes against one
(`Scenario.scale_target`), and the CPU Haven's own processes spend per GiB pulled, which a
redirect to the object store should take out of Haven (`REDIRECT_CPU_SHARE`).
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from typing import Any

from benchmarks.scenarios import Scenario
from benchmarks.side import Measurement, Timing

SIDES = ("haven", "reference", "haven-scaleout-1", "haven-scaleout-2")
EMBEDDED, REFERENCE, ONE_NODE, TWO_NODES = SIDES
SCALE_OUT = (ONE_NODE, TWO_NODES)
GiB = 1 << 30
# A pull redirected to the object store may cost Haven at most this share of the CPU per
# GiB that the embedded Haven spends streaming the same bytes itself.
REDIRECT_CPU_SHARE = 0.1
REDIRECT_CPU_TARGET = f"scale-out <= {REDIRECT_CPU_SHARE:g}x haven"


@dataclass
class SideResult:
    measurements: list[Measurement] = field(default_factory=list)
    error: str | None = None

    @property
    def values(self) -> list[float]:
        return [m.value for m in self.measurements]

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def spread_pct(self) -> float | None:
        """Half the min-max range as a percentage of the median."""
        med = self.median
        if not med or len(self.values) < 2:
            return None
        return (max(self.values) - min(self.values)) / 2 / med * 100

    def registry_cpu_ms(self, per: str) -> float | None:
        """The registry's own CPU in ms per GiB moved (`per="bytes"`) or per blob GET
        (`per="pulls"`), over the rounds that count them (the pulls). Summed over all
        rounds before dividing, not a median of rounds: /proc counts CPU in 10 ms ticks,
        which would make a single redirected pull's figure mostly rounding."""
        rounds = [m for m in self.measurements if m.detail.get(per)]
        if not rounds:
            return None
        amount = sum(float(m.detail[per]) for m in rounds) / (GiB if per == "bytes" else 1)
        return sum(m.timing.registry_cpu for m in rounds) * 1000 / amount

    def cpu_us_per_request(self) -> dict[str, float] | None:
        """Median over rounds of the CPU per request, in µs, of each process tree of the
        deployment, of the load generator (`client`) and of the rest of the machine
        (`other`); for rounds that count requests (manifest-get)."""
        rounds = [m for m in self.measurements if m.detail.get("requests")]
        if not rounds:
            return None
        names = list(dict.fromkeys(name for m in rounds for name in m.timing.parts))

        def share(m: Measurement, name: str) -> float:
            spent = {"client": m.timing.client_cpu, "other": m.timing.other_cpu}
            cpu = m.timing.parts.get(name, spent.get(name, 0.0))
            return float(cpu * 1e6 / m.detail["requests"])

        return {
            name: statistics.median(share(m, name) for m in rounds)
            for name in [*names, "client", "other"]
        }

    def registry_us_per_request(self) -> float | None:
        """Median over rounds of the registry's own CPU per request, in µs."""
        rounds = [m for m in self.measurements if m.detail.get("requests")]
        if not rounds:
            return None
        return statistics.median(
            m.timing.registry_cpu * 1e6 / float(m.detail["requests"]) for m in rounds
        )

    def cores(self, which: str) -> float | None:
        """Median over rounds of the cores in use: by the registry's own processes
        (`which="registry"`), or by the whole machine (`"machine"`: client, deployment and
        everything else)."""

        def used(t: Timing) -> float:
            if which == "registry":
                return t.registry_cpu
            return t.client_cpu + t.server_cpu + t.other_cpu

        per = [used(m.timing) / m.timing.seconds for m in self.measurements if m.timing.seconds]
        return statistics.median(per) if per else None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "median": self.median,
            "spread_pct": self.spread_pct,
            "values": self.values,
            "rounds": [
                {
                    "value": m.value,
                    "seconds": m.timing.seconds,
                    "client_cpu_s": m.timing.client_cpu,
                    "server_cpu_s": m.timing.server_cpu,
                    "other_cpu_s": m.timing.other_cpu,
                    "registry_cpu_s": m.timing.registry_cpu,
                    "cpu_s_by_part": m.timing.parts,
                    **m.detail,
                }
                for m in self.measurements
            ],
            "error": self.error,
        }
        per_request = self.cpu_us_per_request()
        if per_request is not None:
            doc["cpu_us_per_request"] = per_request
        return doc


@dataclass
class ScenarioResult:
    scenario: Scenario
    sides: dict[str, SideResult] = field(default_factory=lambda: {s: SideResult() for s in SIDES})

    @property
    def ratio(self) -> float | None:
        """Haven / reference, as the brief defines it (for "lower is better" rows too)."""
        h, r = self.sides[EMBEDDED].median, self.sides[REFERENCE].median
        if h is None or not r:
            return None
        return h / r

    @property
    def met(self) -> bool | None:
        target = self.scenario.target
        if target.ratio is not None:
            return None if self.ratio is None else self.ratio >= target.ratio
        if target.below is not None:
            h = self.sides[EMBEDDED].median
            return None if h is None else h < target.below
        return None

    @property
    def scale_ratio(self) -> float | None:
        """Scale-out with two nodes / with one."""
        two, one = self.sides[TWO_NODES].median, self.sides[ONE_NODE].median
        if two is None or not one:
            return None
        return two / one

    @property
    def scale_met(self) -> bool | None:
        target = self.scenario.scale_target.ratio
        ratio = self.scale_ratio
        return None if target is None or ratio is None else ratio >= target

    def cpu_ms_per_gib(self) -> dict[str, float | None]:
        return {side: self.sides[side].registry_cpu_ms("bytes") for side in SIDES}

    def cpu_ms_per_pull(self) -> dict[str, float | None]:
        return {side: self.sides[side].registry_cpu_ms("pulls") for side in SIDES}

    @property
    def redirect_met(self) -> bool | None:
        """Whether every scale-out side's pulls cost Haven at most REDIRECT_CPU_SHARE of the
        embedded Haven's CPU per GiB; None without both figures."""
        cpu = self.cpu_ms_per_gib()
        embedded = cpu[EMBEDDED]
        scaled = [v for side in SCALE_OUT if (v := cpu[side]) is not None]
        if not embedded or not scaled:
            return None
        return all(v <= REDIRECT_CPU_SHARE * embedded for v in scaled)

    def to_json(self) -> dict[str, Any]:
        s = self.scenario
        doc = {
            "scenario": s.name,
            "title": s.title,
            "unit": s.unit,
            "higher_is_better": s.higher_is_better,
            "target": s.target.describe(s.unit) or None,
            "ratio_haven_over_reference": self.ratio,
            "target_met": self.met,
            "ratio_two_nodes_over_one": self.scale_ratio,
            "scale_out_target": s.scale_target.describe(s.unit) or None,
            "scale_out_target_met": self.scale_met,
            **{side: self.sides[side].to_json() for side in SIDES},
        }
        cpu = self.cpu_ms_per_gib()
        if any(v is not None for v in cpu.values()):
            doc["registry_cpu_ms_per_gib"] = cpu
            doc["registry_cpu_ms_per_pull"] = self.cpu_ms_per_pull()
            doc["redirect_cpu_target"] = REDIRECT_CPU_TARGET
            doc["redirect_cpu_target_met"] = self.redirect_met
        return doc


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(side: SideResult, present: bool) -> tuple[str, str]:
    if not present:
        return "pending", ""
    if side.error:
        return "ERROR", ""
    spread = side.spread_pct
    return _num(side.median), ("" if spread is None else f"±{spread:.0f}%")


def _verdict(met: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def _grid(rows: list[list[str]], left: int = 2) -> list[str]:
    """Rows as aligned text: the first `left` columns to the left, the rest to the right,
    a rule under the header row."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def columns(present: dict[str, bool]) -> list[str]:
    """The sides a table shows: Haven and the reference always ("pending" when not run),
    scale-out only when it ran."""
    return [EMBEDDED, REFERENCE] + [s for s in SCALE_OUT if present.get(s)]


def table(results: list[ScenarioResult], present: dict[str, bool]) -> str:
    """A plain-text table, one row per scenario."""
    shown = columns(present)
    scaled = all(present.get(s) for s in SCALE_OUT)
    header = ["scenario", "unit"]
    for side in shown:
        header += [side, "spread"]
    header += ["haven/ref", "target", "met"]
    if scaled:
        header += ["2 nodes/1", "target", "met"]
    rows = [header]
    for res in results:
        row = [res.scenario.name, res.scenario.unit]
        for side in shown:
            row += _cell(res.sides[side], bool(present.get(side)))
        row += [
            "-" if res.ratio is None else f"{res.ratio:.2f}x",
            res.scenario.target.describe(res.scenario.unit) or "-",
            _verdict(res.met),
        ]
        if scaled:
            row += [
                "-" if res.scale_ratio is None else f"{res.scale_ratio:.2f}x",
                res.scenario.scale_target.describe(res.scenario.unit) or "-",
                _verdict(res.scale_met),
            ]
        rows.append(row)
    lines = _grid(rows)
    for res in results:
        for side in SIDES:
            if res.sides[side].error:
                lines.append(f"! {res.scenario.name} on {side}: {res.sides[side].error}")
    return "\n".join(lines)


def pull_cpu_table(results: list[ScenarioResult], present: dict[str, bool]) -> str:
    """CPU of the registry's own processes per GiB pulled and per blob GET, two rows per
    pull scenario; empty when no pull scenario ran."""
    shown = [s for s in columns(present) if present.get(s)]
    scaled = any(present.get(s) for s in SCALE_OUT)
    rows = [["scenario", "unit", *shown, "target", "met"]]
    for res in results:
        per_gib, per_pull = res.cpu_ms_per_gib(), res.cpu_ms_per_pull()
        if all(per_gib[side] is None for side in shown):
            continue
        rows.append(
            [
                res.scenario.name,
                "ms/GiB",
                *(_num(per_gib[side]) for side in shown),
                REDIRECT_CPU_TARGET if scaled else "-",
                _verdict(res.redirect_met),
            ]
        )
        rows.append(["", "ms/GET", *(_num(per_pull[side]) for side in shown), "", ""])
    if len(rows) == 1:
        return ""
    return "\n".join([PULL_CPU_TITLE, "", *_grid(rows)])


PULL_CPU_TITLE = (
    "CPU of the registry's own processes per GiB pulled and per blob GET "
    "(Haven in scale-out mode: its nodes, not nginx, Azurite or PostgreSQL)"
)


def _detail(res: ScenarioResult, side: str, key: str) -> list[Any]:
    return [m.detail[key] for m in res.sides[side].measurements if key in m.detail]


def footnotes(results: list[ScenarioResult]) -> list[str]:
    """What a figure in the table does not say by itself."""
    notes = []
    for res in results:
        name = res.scenario.name
        if name == "memory":
            for side in SIDES:
                ms = res.sides[side].measurements
                if not ms:
                    continue
                d = ms[0].detail
                during = "during the push" if d["peak_reset_before_push"] else "since start"
                notes.append(
                    f"memory, {side}: sum of VmHWM {during} over {len(d['processes'])} "
                    f"process(es); RSS at rest before the push {d['idle_rss_mb']:.0f} MB; "
                    f"peak since start {d['peak_since_start_mb']:.0f} MB; sampled peak PSS "
                    f"(shared pages counted once) {d['sampled_peak_pss_mb']:.0f} MB"
                )
        elif name == "tag-page-latency":
            for side in SIDES:
                if False in _detail(res, side, "paginated"):
                    notes.append(
                        f"tag-page-latency, {side}: ignores n/last on tags/list, so "
                        "its figure is the latency of the whole unsorted tag list"
                    )
        elif name == "tag-walk":
            for side in SIDES:
                pages = _detail(res, side, "pages_per_walk")
                rate = _detail(res, side, "pages_per_s")
                if pages:
                    notes.append(
                        f"tag-walk, {side}: {pages[0]} page(s) per walk, "
                        f"median {statistics.median(rate):,.0f} pages/s"
                    )
        elif name in ("pull", "pull-parallel"):
            for side in SIDES:
                redirected, pulls = _detail(res, side, "redirected"), _detail(res, side, "pulls")
                if pulls and (side in SCALE_OUT or any(redirected)):
                    notes.append(
                        f"{name}, {side}: {sum(redirected)} of {sum(pulls)} blob GETs "
                        "answered with a redirect to the object store"
                    )
        notes.extend(_cpu_notes(res))
    return notes


def _cpu_notes(res: ScenarioResult) -> list[str]:
    """Where each request's CPU went, side by side, and for two nodes against one, whether
    the machine or Haven set the limit."""
    notes = []
    split = {side: res.sides[side].cpu_us_per_request() for side in SIDES}
    for side, per in split.items():
        if per is None:
            continue
        parts = ", ".join(f"{part} {us:.0f}" for part, us in per.items())
        busy = res.sides[side].cores("machine")
        notes.append(
            f"{res.scenario.name}, {side}: CPU per request in µs: {parts}; "
            f"{_num(busy)} of {os.cpu_count()} cores busy"
        )
    one, two = split[ONE_NODE], split[TWO_NODES]
    ratio, target = res.scale_ratio, res.scenario.scale_target.ratio
    rate_one = res.sides[ONE_NODE].median
    if one is None or two is None or ratio is None or target is None or not rate_one:
        return notes
    nodes = res.sides[TWO_NODES].registry_us_per_request() or 0.0
    needed = sum(us for part, us in two.items() if part != "other")
    cores = target * rate_one * needed / 1e6
    notes.append(
        f"{res.scenario.name}, two nodes / one node = {ratio:.2f}x (target {target:g}x): one "
        f"node's processes used {_num(res.sides[ONE_NODE].cores('registry'))} cores, two "
        f"nodes' {_num(res.sides[TWO_NODES].cores('registry'))}. At two nodes a request "
        f"cost {needed:.0f} µs of CPU in all (nodes {nodes:.0f}, the rest load balancer, "
        f"storage, database and client), so {target:g}x one node ({target * rate_one:,.0f} "
        f"req/s) would need {cores:.1f} cores; this machine has {os.cpu_count()}"
    )
    return notes
