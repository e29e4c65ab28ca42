"""`haven purge`: delete tags and untagged manifests by filter and age, as `acr purge`."""

from __future__ import annotations

from typing import Any

import click

from haven.cli.command import HavenCommand, session
from haven.cli.progress import progress
from haven.cli.registry import registry_path


@click.command("purge", cls=HavenCommand)
@click.option("--registry", "-r", "registry", required=True, help="The registry to purge.")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    required=True,
    metavar="REPO_REGEX:TAG_REGEX",
    help="Repositories whose whole name matches, and their tags that match; repeatable.",
)
@click.option(
    "--ago",
    required=True,
    metavar="DURATION",
    help="Only what was last updated longer ago than this: days and Go units, e.g. 2d3h6m.",
)
@click.option("--untagged", is_flag=True, help="Also delete manifests left without tags.")
@click.option(
    "--untagged-only", is_flag=True, help="Only delete manifests without tags; keep all tags."
)
@click.option(
    "--keep",
    type=click.IntRange(0, 100_000),
    default=0,
    show_default=True,
    help="Keep this many of the most recently updated matching tags per repository.",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option(
    "--include-locked", is_flag=True, help="Unlock and delete locked tags and manifests too."
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Deletions in flight at once.",
)
def purge(
    registry: str,
    filters: tuple[str, ...],
    ago: str,
    untagged: bool,
    untagged_only: bool,
    keep: int,
    dry_run: bool,
    include_locked: bool,
    concurrency: int,
) -> Any:
    """Delete tags matching filters and older than a duration (and, with --untagged,
    manifests left without tags). Locked items are skipped unless --include-locked."""
    if untagged and untagged_only:
        raise click.UsageError("Give --untagged or --untagged-only, not both.")
    body = {
        "filters": list(filters),
        "ago": ago,
        "untagged": untagged,
        "untaggedOnly": untagged_only,
        "keep": keep,
        "dryRun": dry_run,
        "includeLocked": include_locked,
        "concurrency": concurrency,
    }
    with progress("Purging"):
        return session().post(f"{registry_path(registry)}/purge", body)
