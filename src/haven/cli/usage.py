"""`haven show-usage -n REGISTRY`: storage used against the SKU's quota, and the counts of
webhooks, replications, IP rules, tokens and scope maps, as `az acr show-usage`."""

from __future__ import annotations

from typing import Any

import click

from haven.cli.arguments import registry_name_option
from haven.cli.command import HavenCommand, session
from haven.cli.registry import registry_path
from haven.cli.tables import usage_table


@click.command("show-usage", cls=HavenCommand, table=usage_table)
@registry_name_option
def show_usage(name: str) -> Any:
    """Get the storage usage and the counts against the limits of a registry's SKU."""
    return session().get(f"{registry_path(name)}/usages")
