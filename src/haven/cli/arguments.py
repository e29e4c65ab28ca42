"""Arguments several command groups share, spelled as az spells them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import click

# ACR's repository-scoped actions, as scope maps and tokens name them.
REPOSITORY_ACTIONS = (
    "content/read",
    "content/write",
    "content/delete",
    "metadata/read",
    "metadata/write",
)

registry_option = click.option(
    "--registry", "-r", required=True, metavar="REGISTRY", help="The registry's name."
)
yes_option = click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
years_option = click.option(
    "--years",
    type=click.IntRange(min=1),
    help="How many years the credential is valid [default: the server's].",
)

TRUE_FALSE = click.Choice(["true", "false"], case_sensitive=False)


def true_false(value: str | None) -> bool | None:
    """az's three-state flag value (`true`/`false`/absent) as a bool or None."""
    return None if value is None else value.lower() == "true"


def repository_actions(option: str, groups: Iterable[tuple[str, ...]]) -> list[str]:
    """`--repository REPO ACTION [ACTION …]` groups as `repositories/REPO/ACTION` actions.

    Raises BadParameter for a group without an action, an empty repository name or an
    action that is not one of REPOSITORY_ACTIONS. Duplicates are dropped, order kept.
    """
    actions: list[str] = []
    for words in groups:
        repository, *names = words
        if not repository.strip():
            raise click.BadParameter("the repository name is empty", param_hint=option)
        if not names:
            raise click.BadParameter(
                f"repository '{repository}' needs at least one action "
                f"({', '.join(REPOSITORY_ACTIONS)})",
                param_hint=option,
            )
        for name in names:
            if name not in REPOSITORY_ACTIONS:
                raise click.BadParameter(
                    f"'{name}' is not an action; allowed: {', '.join(REPOSITORY_ACTIONS)}",
                    param_hint=option,
                )
            action = f"repositories/{repository}/{name}"
            if action not in actions:
                actions.append(action)
    return actions


def drop_none(**fields: Any) -> dict[str, Any]:
    """The keyword arguments that are not None, as a JSON body."""
    return {key: value for key, value in fields.items() if value is not None}
