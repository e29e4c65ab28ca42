"""Turn per-round measurements into medians, spreads, ratios and a verdict per target.

Medians, not means: one round disturbed by page-cache writeback or a scheduler hiccup on a
2-core machine should not move the headline. The spread (half the min-max range, relative to
the median) is printed beside it so a reader can tell a real difference from noise.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from benchmarks.scenarios import Scenario
from benchmarks.side import Measurement

SIDES = ("haven", "reference")


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

    def to_json(self) -> dict[str, Any]:
        return {
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
                    **m.detail,
                }
                for m in self.measurements
            ],
            "error": self.error,
        }


@dataclass
class ScenarioResult:
    scenario: Scenario
    sides: dict[str, SideResult] = field(default_factory=lambda: {s: SideResult() for s in SIDES})

    @property
    def ratio(self) -> float | None:
        """Haven / reference, as the brief defines it (for "lower is better" rows too)."""
        h, r = self.sides["haven"].median, self.sides["reference"].median
        if h is None or not r:
            return None
        return h / r

    @property
    def met(self) -> bool | None:
        target = self.scenario.target
        if target.ratio is not None:
            return None if self.ratio is None else self.ratio >= target.ratio
        if target.below is not None:
            h = self.sides["haven"].median
            return None if h is None else h < target.below
        return None

    def to_json(self) -> dict[str, Any]:
        s = self.scenario
        return {
            "scenario": s.name,
            "title": s.title,
            "unit": s.unit,
            "higher_is_better": s.higher_is_better,
            "target": s.target.describe(s.unit) or None,
            "ratio_haven_over_reference": self.ratio,
            "target_met": self.met,
            **{side: self.sides[side].to_json() for side in SIDES},
        }


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


def table(results: list[ScenarioResult], present: dict[str, bool]) -> str:
    """A plain-text table, one row per scenario."""
    header = [
        "scenario",
        "unit",
        "haven",
        "spread",
        "reference",
        "spread",
        "haven/ref",
        "target",
        "met",
    ]
    rows = [header]
    for res in results:
        h_val, h_spread = _cell(res.sides["haven"], present["haven"])
        r_val, r_spread = _cell(res.sides["reference"], present["reference"])
        ratio = "-" if res.ratio is None else f"{res.ratio:.2f}x"
        met = {True: "yes", False: "NO", None: "-"}[res.met]
        target = res.scenario.target.describe(res.scenario.unit) or "-"
        rows.append(
            [
                res.scenario.name,
                res.scenario.unit,
                h_val,
                h_spread,
                r_val,
                r_spread,
                ratio,
                target,
                met,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    errors = [
        (res.scenario.name, side, res.sides[side].error)
        for res in results
        for side in SIDES
        if res.sides[side].error
    ]
    for name, side, error in errors:
        lines.append(f"! {name} on {side}: {error}")
    return "\n".join(lines)


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
    return notes
