"""Arguments several command groups share, spelled as az spells them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import Any

import click

from haven.cli.config import ConfigStore
from haven.cli.errors import CliError

# ACR's repository-scoped actions, as scope maps and tokens name them.
REPOSITORY_ACTIONS = (
    "content/read",
    "content/write",
    "content/delete",
    "metadata/read",
    "metadata/write",
)

DEFAULT_REGISTRY_KEY = "acr"
REGISTRY_HELP = (
    "The registry's name. You can configure the default registry name using "
    "`haven configure --defaults acr=<registry name>`."
)


def configured_default(key: str) -> Callable[[], str | None]:
    """A click default read from `haven configure --defaults KEY=VALUE` when it is needed.

    An unreadable config file counts as no default here; the command then reports it
    properly when it loads the config to sign in.
    """

    def read() -> str | None:
        with contextlib.suppress(CliError):
            return ConfigStore().load().defaults.get(key) or None
        return None

    return read


def required_unless_configured(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A click callback: the option is required when no configured default filled it in."""
    if value is None or value == "":
        raise click.MissingParameter(ctx=ctx, param=param)
    return value


registry_name_option = click.option(
    "--name",
    "-n",
    default=configured_default(DEFAULT_REGISTRY_KEY),
    callback=required_unless_configured,
    metavar="REGISTRY",
    help=f"{REGISTRY_HELP} [required]",
)

registry_option = click.option(
    "--registry",
    "-r",
    default=configured_default(DEFAULT_REGISTRY_KEY),
    callback=required_unless_configured,
    metavar="REGISTRY",
    help=f"{REGISTRY_HELP} [required]",
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
