"""Every `haven` command, assembled into one click group.

Every command talks to a Haven server over HTTP (never to its database): the management
API under `/api/`, and each registry's data plane (`/acr/v1/`, `/v2/`) for repositories,
tags and manifests. So the CLI works the same against a local or a remote deployment.
See docs/cli.md for how each `az acr` command maps to `haven`.
"""

from __future__ import annotations

import click

from haven import __version__
from haven.cli.account import account
from haven.cli.ad import ad
from haven.cli.command import HavenGroup
from haven.cli.completion import completion
from haven.cli.configure import configure
from haven.cli.credential import credential
from haven.cli.deploy import deploy
from haven.cli.gc import gc
from haven.cli.health import check_health
from haven.cli.identity import identity
from haven.cli.login import login
from haven.cli.manifest import manifest
from haven.cli.network_rule import network_rule
from haven.cli.policies import config
from haven.cli.purge import purge
from haven.cli.registry import registry
from haven.cli.repository import repository
from haven.cli.role import role
from haven.cli.scope_map import scope_map
from haven.cli.serve import serve
from haven.cli.task import run, task
from haven.cli.tokens import token
from haven.cli.usage import show_usage


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
cli.add_command(repository)
cli.add_command(manifest)
cli.add_command(show_usage)
cli.add_command(check_health)
cli.add_command(deploy)
cli.add_command(configure)
cli.add_command(completion)
cli.add_command(gc)
cli.add_command(purge)
cli.add_command(config)
cli.add_command(task)
cli.add_command(run)
# `az acr create|show|list|update|delete` act on registries: so do `haven create` etc.,
# so that every `az acr` recipe runs with `haven` in its place.
for _name in ("create", "show", "list", "update", "delete"):
    cli.add_command(registry.commands[_name], _name)
