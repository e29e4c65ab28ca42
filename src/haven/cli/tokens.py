"""`haven token …`: repository-scoped tokens, as `az acr token`."""

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
from haven.cli.command import WORDS, HavenGroup, confirm, session, warn
from haven.cli.registry import registry_path
from haven.cli.tables import token_credentials_table, token_table

STATUSES = ("enabled", "disabled")

name_option = click.option(
    "--name", "-n", required=True, metavar="TOKEN", help="The token's name (its username)."
)
expiration_option = click.option(
    "--expiration-in-days",
    type=click.IntRange(min=1),
    help="Days until the generated passwords expire [default: never].",
)


def tokens_path(registry: str, name: str | None = None) -> str:
    path = f"{registry_path(registry)}/tokens"
    return f"{path}/{segment(name)}" if name is not None else path


def _has_password_values(answer: Any) -> bool:
    credentials = answer.get("credentials", answer) if isinstance(answer, dict) else None
    passwords = credentials.get("passwords") if isinstance(credentials, dict) else None
    return any(isinstance(p, dict) and p.get("value") for p in passwords or [])


@click.group(cls=HavenGroup)
def token() -> None:
    """Manage repository-scoped tokens."""


@token.command("create", words=("--repository",), table=token_table)
@name_option
@registry_option
@click.option("--scope-map", help="The scope map that says what the token may do.")
@click.option(
    "--repository",
    "repositories",
    type=WORDS,
    multiple=True,
    metavar="REPO ACTION [ACTION ...]",
    help="Instead of --scope-map: a repository and its allowed actions "
    f"({', '.join(REPOSITORY_ACTIONS)}). Repeatable.",
)
@click.option(
    "--status",
    type=click.Choice(STATUSES, case_sensitive=False),
    help="Whether the token can be used [default: enabled].",
)
@click.option("--no-passwords", is_flag=True, help="Create the token without generating passwords.")
@expiration_option
def create(
    name: str,
    registry: str,
    scope_map: str | None,
    repositories: tuple[tuple[str, ...], ...],
    status: str | None,
    no_passwords: bool,
    expiration_in_days: int | None,
) -> Any:
    """Create a token from a scope map or from repository actions."""
    if bool(scope_map) == bool(repositories):
        raise click.UsageError("Give exactly one of --scope-map and --repository.")
    if no_passwords and expiration_in_days is not None:
        raise click.UsageError("--expiration-in-days needs passwords; drop --no-passwords.")
    body = drop_none(
        name=name,
        scopeMap=scope_map,
        actions=repository_actions("--repository", repositories) if repositories else None,
        status=status.lower() if status else None,
        generatePasswords=not no_passwords,
        expirationInDays=expiration_in_days,
    )
    created = session().post(tokens_path(registry), body)
    if _has_password_values(created):
        warn(
            "Please store the generated passwords safely; they are not shown again. Use them "
            f"with: docker login <login server> -u {name} -p <password>"
        )
    return created


@token.command("update", table=token_table)
@name_option
@registry_option
@click.option("--scope-map", help="Another scope map for the token.")
@click.option(
    "--status", type=click.Choice(STATUSES, case_sensitive=False), help="Enable or disable it."
)
def update(name: str, registry: str, scope_map: str | None, status: str | None) -> Any:
    """Change a token's scope map or status."""
    body = drop_none(scopeMap=scope_map, status=status.lower() if status else None)
    if not body:
        raise click.UsageError("Nothing to update: give --scope-map or --status.")
    return session().patch(tokens_path(registry, name), body)


@token.command("show", table=token_table)
@name_option
@registry_option
def show(name: str, registry: str) -> Any:
    """Show a token."""
    return session().get(tokens_path(registry, name))


@token.command("list", table=token_table)
@registry_option
def list_(registry: str) -> Any:
    """List a registry's tokens."""
    return session().get(tokens_path(registry))


@token.command("delete")
@name_option
@registry_option
@yes_option
def delete(name: str, registry: str, yes: bool) -> Any:
    """Delete a token."""
    confirm(f"Deleting the token '{name}' removes its access at once. Are you sure?", yes)
    return session().delete(tokens_path(registry, name))


@token.group("credential")
def credential() -> None:
    """Manage a token's passwords."""


@credential.command("generate", table=token_credentials_table)
@name_option
@registry_option
@click.option("--password1", is_flag=True, help="Generate password1 only.")
@click.option("--password2", is_flag=True, help="Generate password2 only.")
@expiration_option
def generate(
    name: str, registry: str, password1: bool, password2: bool, expiration_in_days: int | None
) -> Any:
    """Generate a token's passwords (both unless --password1 or --password2)."""
    which = "password1" if password1 and not password2 else None
    if password2 and not password1:
        which = "password2"
    body: dict[str, Any] = {"name": which}
    if expiration_in_days is not None:
        body["expirationInDays"] = expiration_in_days
    answer = session().post(f"{tokens_path(registry, name)}/credentials", body)
    warn("Please store the generated passwords safely; they are not shown again.")
    return answer
