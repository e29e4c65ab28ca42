"""The `haven` command line: `haven serve`, and access management shaped like `az acr`.

Every management command talks to a Haven server over HTTP (never to its database), so
the CLI works the same against a local or a remote deployment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import click

from haven import __version__
from haven.cli.account import account
from haven.cli.ad import ad
from haven.cli.command import HavenGroup, run
from haven.cli.credential import credential
from haven.cli.identity import identity
from haven.cli.login import login
from haven.cli.network_rule import network_rule
from haven.cli.registry import registry
from haven.cli.role import role
from haven.cli.scope_map import scope_map
from haven.cli.serve import serve
from haven.cli.tokens import token


@click.group(cls=HavenGroup)
@click.version_option(__version__, prog_name="haven")
def cli() -> None:
    """Haven: a self-hosted container registry."""


cli.add_command(serve)
cli.add_command(account)
cli.add_command(identity)
cli.add_command(ad)
cli.add_command(role)
cli.add_command(registry)
cli.add_command(credential)
cli.add_command(network_rule, "network-rule")
cli.add_command(scope_map, "scope-map")
cli.add_command(token)
cli.add_command(login)
# `az acr create|show|list|update|delete` act on registries: so do `haven create` etc.,
# so that every `az acr` recipe runs with `haven` in its place.
for _name in ("create", "show", "list", "update", "delete"):
    cli.add_command(registry.commands[_name], _name)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The `haven` console script."""
    run(cli, argv)


__all__ = ["cli", "main"]
