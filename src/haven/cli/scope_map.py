"""`haven scope-map …`: named sets of repository actions, as `az acr scope-map`."""

from __future__ import annotations

from typing import Any

import click

from haven.cli.arguments import (
    REPOSITORY_ACTIONS,
    drop_none,
    registry_option,
    repository_actions,
    yes_option,
)
from haven.cli.client import segment
from haven.cli.command import WORDS, HavenGroup, confirm, session
from haven.cli.registry import registry_path
from haven.cli.tables import scope_map_table

ACTIONS_HELP = f"Actions: {', '.join(REPOSITORY_ACTIONS)}. Repeatable."

name_option = click.option(
    "--name", "-n", required=True, metavar="SCOPE_MAP", help="The scope map's name."
)


def scope_maps_path(registry: str, name: str | None = None) -> str:
    path = f"{registry_path(registry)}/scopeMaps"
    return f"{path}/{segment(name)}" if name is not None else path


@click.group(cls=HavenGroup)
def scope_map() -> None:
    """Manage scope maps: the repository actions a token may perform."""


@scope_map.command("create", words=("--repository",), table=scope_map_table)
@name_option
@registry_option
@click.option("--description", help="What the scope map is for.")
@click.option(
    "--repository",
    "repositories",
    type=WORDS,
    multiple=True,
    required=True,
    metavar="REPO ACTION [ACTION ...]",
    help=f"A repository and the actions allowed on it. {ACTIONS_HELP}",
)
def create(
    name: str, registry: str, description: str | None, repositories: tuple[tuple[str, ...], ...]
) -> Any:
    """Create a scope map."""
    actions = repository_actions("--repository", repositories)
    return session().post(
        scope_maps_path(registry),
        drop_none(name=name, description=description, actions=actions),
    )


@scope_map.command(
    "update", words=("--add-repository", "--remove-repository"), table=scope_map_table
)
@name_option
@registry_option
@click.option("--description", help="A new description.")
@click.option(
    "--add-repository",
    "added",
    type=WORDS,
    multiple=True,
    metavar="REPO ACTION [ACTION ...]",
    help=f"Actions to allow on a repository. {ACTIONS_HELP}",
)
@click.option(
    "--remove-repository",
    "removed",
    type=WORDS,
    multiple=True,
    metavar="REPO ACTION [ACTION ...]",
    help=f"Actions to stop allowing on a repository. {ACTIONS_HELP}",
)
def update(
    name: str,
    registry: str,
    description: str | None,
    added: tuple[tuple[str, ...], ...],
    removed: tuple[tuple[str, ...], ...],
) -> Any:
    """Add or remove actions, or change the description."""
    add_actions = repository_actions("--add-repository", added)
    remove_actions = repository_actions("--remove-repository", removed)
    if not (add_actions or remove_actions or description is not None):
        raise click.UsageError(
            "Nothing to update: give --add-repository, --remove-repository or --description."
        )
    body = drop_none(
        addActions=add_actions or None,
        removeActions=remove_actions or None,
        description=description,
    )
    return session().patch(scope_maps_path(registry, name), body)


@scope_map.command("show", table=scope_map_table)
@name_option
@registry_option
def show(name: str, registry: str) -> Any:
    """Show a scope map."""
    return session().get(scope_maps_path(registry, name))


@scope_map.command("list", table=scope_map_table)
@registry_option
def list_(registry: str) -> Any:
    """List a registry's scope maps."""
    return session().get(scope_maps_path(registry))


@scope_map.command("delete")
@name_option
@registry_option
@yes_option
def delete(name: str, registry: str, yes: bool) -> Any:
    """Delete a scope map."""
    confirm(
        f"Deleting the scope map '{name}' will remove its actions from its tokens. Are you sure?",
        yes,
    )
    return session().delete(scope_maps_path(registry, name))
