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


def render(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    present = {name: name in doc["registries"] for name in ("haven", "reference")}
    lines = [
        f"- date: {m['date']}; profile {doc['profile']['name']}, {doc['rounds']} rounds, "
        f"{doc['elapsed_s']:.0f} s",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
        f"disk {m['disk']}, kernel {m['kernel']}",
        f"- CPU used outside the benchmark and its servers during the run: "
        f"{m.get('other_processes_cpu_s', '?')} s ({m.get('other_processes_cpu_pct', '?')}% "
        "of the machine)",
        f"- Haven: {doc['registries'].get('haven', 'not run')}; "
        f"auth {doc.get('haven_auth') or '—'}; revision {m.get('haven_revision', 'unknown')}",
        f"- reference: {doc['registries'].get('reference', 'not run')} ({m['reference_version']})",
        f"- client: Python {m['python']}, aiohttp {m['aiohttp']}, uvloop",
        "",
        "| scenario | unit | Haven | reference | Haven/ref | target | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in doc["results"]:
        ratio = r["ratio_haven_over_reference"]
        met = {True: "yes", False: "**no**", None: "—"}[r["target_met"]]
        lines.append(
            f"| {r['scenario']} | {r['unit']} | {_side(r['haven'], present['haven'])} | "
            f"{_side(r['reference'], present['reference'])} | "
            f"{'—' if ratio is None else f'{ratio:.2f}x'} | {r['target'] or '—'} | {met} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(render(json.loads(Path(sys.argv[1]).read_text())), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
