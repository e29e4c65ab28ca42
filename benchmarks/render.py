"""`python -m benchmarks.render RESULTS.json`: a run's JSON as the Markdown that
docs/benchmarks.md records, so the published figures are copied by a program, not by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _side(doc: dict[str, Any], present: bool) -> str:
    if not present:
        return "pending"
    if doc.get("error"):
        return "ERROR"
    spread = doc.get("spread_pct")
    return _num(doc.get("median")) + ("" if spread is None else f" ±{spread:.0f}%")


_LABELS = {
    "haven": "Haven",
    "reference": "reference",
    "haven-scaleout-1": "Haven scale-out, 1 node",
    "haven-scaleout-2": "Haven scale-out, 2 nodes",
}
_SCALE_OUT = ("haven-scaleout-1", "haven-scaleout-2")
_MET = {True: "yes", False: "**no**", None: "—"}


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def render(doc: dict[str, Any]) -> str:
    """The Markdown of one run: its header, the scenario table, the table of CPU per GiB
    pulled when pulls ran, and the footnotes. Runs recorded before scale-out mode existed
    render as they always did."""
    m = doc["machine"]
    registries = doc["registries"]
    present = {name: name in registries for name in _LABELS}
    scale_out = [name for name in _SCALE_OUT if present[name]]
    both = len(scale_out) == len(_SCALE_OUT)
    shown = ["haven", "reference", *scale_out]
    lines = [
        f"- date: {m['date']}; profile {doc['profile']['name']}, {doc['rounds']} rounds, "
        f"{doc['elapsed_s']:.0f} s",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
        f"disk {m['disk']}, kernel {m['kernel']}",
        f"- CPU used outside the benchmark and its servers during the run: "
        f"{m.get('other_processes_cpu_s', '?')} s ({m.get('other_processes_cpu_pct', '?')}% "
        "of the machine)",
        f"- Haven: {registries.get('haven', 'not run')}; "
        f"auth {doc.get('haven_auth') or '—'}; revision {m.get('haven_revision', 'unknown')}",
        f"- reference: {registries.get('reference', 'not run')} ({m['reference_version']})",
        *(f"- {_LABELS[name]}: {registries[name]}" for name in scale_out),
        f"- client: Python {m['python']}, aiohttp {m['aiohttp']}, uvloop",
        "",
    ]
    header = ["scenario", "unit", *(_LABELS[name] for name in shown), "Haven/ref", "target", "met"]
    align = ["---", "---"] + ["---:"] * (len(shown) + 1) + ["---", "---"]
    if both:
        header += ["2 nodes/1 node", "target", "met"]
        align += ["---:", "---", "---"]
    lines += [_row(header), _row(align)]
    for r in doc["results"]:
        cells = [r["scenario"], r["unit"], *(_side(r[name], present[name]) for name in shown)]
        cells += [
            _ratio(r["ratio_haven_over_reference"]),
            r["target"] or "—",
            _MET[r["target_met"]],
        ]
        if both:
            cells += [
                _ratio(r.get("ratio_two_nodes_over_one")),
                r.get("scale_out_target") or "—",
                _MET[r.get("scale_out_target_met")],
            ]
        lines.append(_row(cells))
    lines += _pull_cpu(doc, [name for name in shown if present[name]])
    notes = doc.get("footnotes") or []
    if notes:
        lines += ["", *(f"* {note}" for note in notes)]
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _pull_cpu(doc: dict[str, Any], shown: list[str]) -> list[str]:
    rows = [r for r in doc["results"] if r.get("registry_cpu_ms_per_gib")]
    if not rows:
        return []
    lines = [
        "",
        "CPU of the registry's own processes per GiB pulled and per blob GET (for Haven in "
        "scale-out mode its nodes, not nginx, Azurite or PostgreSQL):",
        "",
        _row(["scenario", "unit", *(_LABELS[name] for name in shown), "target", "met"]),
        _row(["---", "---"] + ["---:"] * len(shown) + ["---", "---"]),
    ]
    for r in rows:
        per_gib, per_pull = r["registry_cpu_ms_per_gib"], r.get("registry_cpu_ms_per_pull", {})
        target = r.get("redirect_cpu_target") if any(n in shown for n in _SCALE_OUT) else None
        lines.append(
            _row(
                [
                    r["scenario"],
                    "ms/GiB",
                    *(_num(per_gib.get(name)) for name in shown),
                    target or "—",
                    _MET[r.get("redirect_cpu_target_met")],
                ]
            )
        )
        lines.append(_row(["", "ms/GET", *(_num(per_pull.get(name)) for name in shown), "", ""]))
    return lines


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(render(json.loads(Path(sys.argv[1]).read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
