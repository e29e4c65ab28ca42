"""An agent's scratch space: what a dead agent of this host left is removed at start."""

from __future__ import annotations

import os
from pathlib import Path

from haven.tasks.agent import _host, _remove_leftovers


def test_only_dead_agents_of_this_host_lose_their_scratch(tmp_path: Path) -> None:
    dead_pid = 4_194_304 + 7  # above Linux's largest pid: no such process
    mine = tmp_path / f"{_host()}_{os.getpid()}_aaaa1111"
    dead = tmp_path / f"{_host()}_{dead_pid}_bbbb2222"
    elsewhere = tmp_path / f"other-host_{dead_pid}_cccc3333"
    for directory in (mine, dead, elsewhere):
        (directory / "run-1").mkdir(parents=True)
    _remove_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, elsewhere.name])
    assert ":" not in mine.name
