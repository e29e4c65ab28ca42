"""`haven gc run`: reclaim blobs nothing references any more, while the registry serves."""

from __future__ import annotations

from typing import Any

import click

from haven.cli.command import HavenGroup, session
from haven.cli.progress import progress


@click.group(cls=HavenGroup)
def gc() -> None:
    """Garbage collection of unreferenced blobs (deployment owners)."""


@gc.command("run")
@click.option(
    "--name",
    "-n",
    "name",
    default=None,
    help="Only sweep this registry's unreferenced uploads (blobs are shared by all).",
)
@click.option("--dry-run", is_flag=True, help="Report what would be reclaimed; change nothing.")
@click.option(
    "--full",
    is_flag=True,
    help="Also review every unlinked blob and every stored file without a record.",
)
def run(name: str | None, dry_run: bool, full: bool) -> Any:
    """Run a garbage collection pass now and report what it freed."""
    body: dict[str, Any] = {"dryRun": dry_run, "full": full}
    if name is not None:
        body["registry"] = name
    with progress("Collecting garbage"):
        return session().post("/api/gc", body)
