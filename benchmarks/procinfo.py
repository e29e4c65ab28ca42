"""Memory and CPU of a server's whole process tree, read from /proc.

Haven serves from several worker processes under one parent, so any figure taken from the
parent alone would flatter it; every number here sums the parent and all its descendants.
"""

from __future__ import annotations

import os
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    """Parent pid -> its live children's pids, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may itself contain spaces or parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _tree(root: int, children: dict[int, list[int]]) -> list[int]:
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant, found by scanning /proc for parent links."""
    return _tree(root, _children())


def command_line(pid: int) -> str:
    """The process's arguments joined by spaces; empty if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def find_descendant(root: int, needle: str) -> int | None:
    """The first process under `root` whose command line contains `needle`."""
    for pid in process_tree(root):
        if pid != root and needle in command_line(pid):
            return pid
    return None


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_peak_rss_bytes(root: int) -> int:
    """Sum of VmHWM (each process's peak resident set) over the tree.

    Peaks of different processes need not coincide, so this is an upper bound on the tree's
    true peak; `tree_rss_bytes` sampled during the run gives the matching lower bound.
    """
    return sum(_status_kib(pid, "VmHWM") for pid in process_tree(root)) * 1024


def reset_tree_peak_rss(root: int) -> bool:
    """Reset every process's VmHWM to its current RSS (`clear_refs` value 5), so a peak read
    later belongs to what happened in between, not to start-up. False if not permitted."""
    ok = True
    for pid in process_tree(root):
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


def tree_rss_bytes(root: int) -> int:
    """Current resident set of the whole tree."""
    return sum(_status_kib(pid, "VmRSS") for pid in process_tree(root)) * 1024


def tree_pss_bytes(root: int) -> int:
    """Current proportional set size of the tree: shared pages (the interpreter, libraries)
    counted once across processes instead of once per worker, as RSS does."""
    total = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total * 1024


def pids_cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time consumed so far by these processes (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLK_TCK


def tree_cpu_seconds(root: int) -> float:
    """User plus system CPU time consumed so far by the live processes of the tree."""
    return pids_cpu_seconds(process_tree(root))


def trees_cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """`tree_cpu_seconds` of several trees, named, from a single scan of /proc: a
    deployment of several processes is read at (almost) one instant."""
    children = _children()
    return {name: pids_cpu_seconds(_tree(root, children)) for name, root in roots.items()}


def tree_breakdown(root: int) -> list[dict[str, object]]:
    """Per process of the tree: pid, command line, VmHWM and VmRSS in KiB (for the JSON)."""
    rows: list[dict[str, object]] = []
    for pid in process_tree(root):
        cmd = command_line(pid) or "?"
        rows.append(
            {
                "pid": pid,
                "cmd": cmd[:120],
                "hwm_kib": _status_kib(pid, "VmHWM"),
                "rss_kib": _status_kib(pid, "VmRSS"),
            }
        )
    return rows
