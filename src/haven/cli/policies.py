"""`haven config retention|soft-delete show|update`: a registry's policies, as
`az acr config`."""

from __future__ import annotations

from typing import Any

import click

from haven.cli.command import HavenGroup, session
from haven.cli.registry import registry_path

registry_option = click.option(
    "--registry", "-r", "registry", required=True, help="The registry whose policy this is."
)


@click.group("config", cls=HavenGroup)
def config() -> None:
    """Configure policies of a registry."""


@config.group("retention", cls=HavenGroup)
def retention() -> None:
    """The retention policy for untagged manifests."""


@retention.command("show")
@registry_option
def show(registry: str) -> Any:
    """Show the retention policy."""
    return session().get(f"{registry_path(registry)}/retention")


@retention.command("update")
@registry_option
@click.option(
    "--status",
    type=click.Choice(["enabled", "disabled"], case_sensitive=False),
    required=True,
    help="Enable or disable the policy.",
)
@click.option(
    "--days",
    type=click.IntRange(0, 365),
    default=None,
    help="Days an untagged manifest is kept before deletion (0-365; default 7).",
)
@click.option(
    "--type",
    "policy_type",
    type=click.Choice(["UntaggedManifests"]),
    default="UntaggedManifests",
    help="What the policy applies to (untagged manifests, OCI ones included).",
)
def update(registry: str, status: str, days: int | None, policy_type: str) -> Any:
    """Enable the retention policy for untagged manifests, change its days, or disable it.
    It applies to manifests that become untagged after it is enabled; a manifest with
    deleteEnabled false is kept."""
    body: dict[str, Any] = {"status": status.lower()}
    if days is not None:
        body["days"] = days
    return session().patch(f"{registry_path(registry)}/retention", body)


@config.group("soft-delete", cls=HavenGroup)
def soft_delete() -> None:
    """The soft-delete policy: deleted manifests and tags kept for a number of days."""


@soft_delete.command("show")
@registry_option
def show_soft_delete(registry: str) -> Any:
    """Show the soft-delete policy."""
    return session().get(f"{registry_path(registry)}/softDelete")


@soft_delete.command("update")
@registry_option
@click.option(
    "--status",
    type=click.Choice(["enabled", "disabled"], case_sensitive=False),
    help="Enable or disable the policy.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 90),
    help="Days a soft-deleted manifest or tag is kept before it is purged (1-90; default 7).",
)
def update_soft_delete(registry: str, status: str | None, days: int | None) -> Any:
    """Enable or disable soft delete, or change its days. While it is enabled, deleted
    manifests and tags are kept (and count in the registry's usage) until their days
    pass; list them with `haven manifest list-deleted` and bring them back with `haven
    manifest restore`. Refused while the retention policy is enabled."""
    if status is None and days is None:
        raise click.UsageError("Nothing to update: give --status, --days or both.")
    body: dict[str, Any] = {}
    if status is not None:
        body["status"] = status.lower()
    if days is not None:
        body["retentionDays"] = days
    return session().patch(f"{registry_path(registry)}/softDelete", body)
