"""`haven credential show|renew`: a registry's admin user, as `az acr credential`."""

from __future__ import annotations

from typing import Any

import click

from haven.cli.command import HavenGroup, session
from haven.cli.registry import name_option, registry_path
from haven.cli.tables import registry_credentials_table


@click.group(cls=HavenGroup)
def credential() -> None:
    """Manage a registry's admin user credentials."""


@credential.command("show", table=registry_credentials_table)
@name_option
def show(name: str) -> Any:
    """Show the admin user's name and its two passwords."""
    return session().get(f"{registry_path(name)}/credentials")


@credential.command("renew", table=registry_credentials_table)
@name_option
@click.option(
    "--password-name",
    required=True,
    type=click.Choice(["password", "password2"]),
    help="Which of the two admin passwords to regenerate.",
)
def renew(name: str, password_name: str) -> Any:
    """Regenerate one of the admin user's passwords."""
    return session().post(
        f"{registry_path(name)}/credentials/renew", {"passwordName": password_name}
    )
