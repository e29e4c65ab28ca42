"""`haven registry …`: registries, as `az acr create|show|list|update|delete`."""

from __future__ import annotations

from typing import Any

import click

from haven.cli.arguments import (
    TRUE_FALSE,
    drop_none,
    registry_name_option,
    true_false,
    yes_option,
)
from haven.cli.client import segment
from haven.cli.command import HavenGroup, confirm, session
from haven.cli.tables import registry_table

SKUS = ("Basic", "Standard", "Premium")
GIB = 1024**3

name_option = registry_name_option


def registry_path(name: str) -> str:
    return f"/api/registries/{segment(name)}"


@click.group(cls=HavenGroup)
def registry() -> None:
    """Manage registries."""


@registry.command("create", table=registry_table)
@name_option
@click.option(
    "--sku",
    type=click.Choice(SKUS, case_sensitive=False),
    default="Basic",
    show_default=True,
    help="The registry's tier.",
)
def create(name: str, sku: str) -> Any:
    """Create a registry."""
    return session().post("/api/registries", {"name": name, "sku": sku})


@registry.command("show", table=registry_table)
@name_option
def show(name: str) -> Any:
    """Show a registry."""
    return session().get(registry_path(name))


@registry.command("list", table=registry_table)
def list_() -> Any:
    """List registries."""
    return session().get("/api/registries")


@registry.command("update", table=registry_table)
@name_option
@click.option("--sku", type=click.Choice(SKUS, case_sensitive=False), help="The registry's tier.")
@click.option(
    "--admin-enabled",
    type=TRUE_FALSE,
    is_flag=False,
    flag_value="true",
    help="Enable the admin user (username = registry name); alone it means true.",
)
@click.option(
    "--anonymous-pull-enabled",
    type=TRUE_FALSE,
    is_flag=False,
    flag_value="true",
    help="Allow pulls without credentials; alone it means true (as az acr update).",
)
@click.option(
    "--default-action",
    type=click.Choice(["Allow", "Deny"], case_sensitive=False),
    help="What network rules do with addresses no IP rule matches.",
)
@click.option(
    "--storage-quota-gib",
    type=click.FloatRange(0, 1024**2),
    help="Override the storage quota the SKU includes (deployment owners only).",
)
@click.option(
    "--reset-storage-quota",
    is_flag=True,
    help="Drop the storage quota override: the SKU's included storage applies again.",
)
def update(
    name: str,
    sku: str | None,
    admin_enabled: str | None,
    anonymous_pull_enabled: str | None,
    default_action: str | None,
    storage_quota_gib: float | None,
    reset_storage_quota: bool,
) -> Any:
    """Update a registry's tier, admin user, anonymous pull, default network action or
    storage quota."""
    if storage_quota_gib is not None and reset_storage_quota:
        raise click.UsageError("Give --storage-quota-gib or --reset-storage-quota, not both.")
    body = drop_none(
        sku=sku,
        adminUserEnabled=true_false(admin_enabled),
        anonymousPullEnabled=true_false(anonymous_pull_enabled),
        networkRuleSet={"defaultAction": default_action} if default_action else None,
        storageQuotaBytes=None if storage_quota_gib is None else round(storage_quota_gib * GIB),
    )
    if reset_storage_quota:
        body["storageQuotaBytes"] = None
    if not body:
        raise click.UsageError(
            "Nothing to update: give --sku, --admin-enabled, --anonymous-pull-enabled, "
            "--default-action, --storage-quota-gib or --reset-storage-quota."
        )
    return session().patch(registry_path(name), body)


@registry.command("check-usage")
@name_option
def check_usage(name: str) -> Any:
    """Recount a registry's storage usage from its manifests and report any drift from
    the figure kept as pushes and deletes happen (0 when all is well)."""
    return session().get(f"{registry_path(name)}/usages/check")


@registry.command("delete")
@name_option
@yes_option
def delete(name: str, yes: bool) -> Any:
    """Delete a registry and everything in it."""
    confirm("Are you sure you want to perform this operation?", yes)
    return session().delete(registry_path(name))
