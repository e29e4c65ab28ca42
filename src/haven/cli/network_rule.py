"""`haven network-rule add|remove|list`: a registry's IP rules, as `az acr network-rule`."""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from haven.cli.command import HavenGroup, session
from haven.cli.registry import name_option, registry_path
from haven.cli.tables import network_rules_table


def _ip_or_range(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as error:
        raise click.BadParameter(
            f"'{value}' is not an IP address or CIDR range (e.g. 203.0.113.7 or 203.0.113.0/24)"
        ) from error
    return value


ip_option = click.option(
    "--ip-address",
    required=True,
    callback=_ip_or_range,
    metavar="IP_OR_CIDR",
    help="An IPv4 address or CIDR range, e.g. 203.0.113.0/24.",
)


@click.group(cls=HavenGroup)
def network_rule() -> None:
    """Manage a registry's network rules."""


@network_rule.command("add", table=network_rules_table)
@name_option
@ip_option
def add(name: str, ip_address: str) -> Any:
    """Allow an IP address or range."""
    return session().post(f"{registry_path(name)}/networkRules", {"ipAddressOrRange": ip_address})


@network_rule.command("remove", table=network_rules_table)
@name_option
@ip_option
def remove(name: str, ip_address: str) -> Any:
    """Remove an IP rule."""
    return session().delete(f"{registry_path(name)}/networkRules", {"ipAddressOrRange": ip_address})


@network_rule.command("list", table=network_rules_table)
@name_option
def list_(name: str) -> Any:
    """List a registry's default action and IP rules."""
    return session().get(f"{registry_path(name)}/networkRules")
