"""`haven ad sp …`: service principals in the shape `az ad sp` prints them.

A service principal is a Haven identity of kind servicePrincipal; its appId is the
identity's id, its password a secret of that identity.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import click

from haven.cli.arguments import drop_none, years_option
from haven.cli.client import segment
from haven.cli.command import WORDS, HavenGroup, session, warn
from haven.cli.errors import CliError, ServerError
from haven.cli.tables import service_principal_table

SERVICE_PRINCIPAL = "servicePrincipal"
CREDENTIALS_WARNING = (
    "The output includes credentials that you must protect. Be sure that you do not include "
    "these credentials in your code or check the credentials into your source control."
)


def as_service_principal(identity: dict[str, Any]) -> dict[str, Any]:
    """A Haven identity as `az ad sp list` shows a service principal."""
    return {
        "appId": identity.get("id"),
        "id": identity.get("id"),
        "displayName": identity.get("name"),
        "createdDateTime": identity.get("createdAt"),
        "passwordCredentials": [
            {
                "keyId": credential.get("id"),
                "displayName": credential.get("name"),
                "endDateTime": credential.get("expiresAt"),
            }
            for credential in identity.get("credentials") or []
            if isinstance(credential, dict)
        ],
        "servicePrincipalType": "Application",
    }


def _service_principal(identity: str) -> dict[str, Any]:
    """The identity `identity` (id or name), which must be a service principal."""
    found = session().get(f"/api/identities/{segment(identity)}")
    if not isinstance(found, dict) or found.get("kind") != SERVICE_PRINCIPAL:
        raise ServerError(f"Service principal '{identity}' doesn't exist.", 404)
    return found


@click.group(cls=HavenGroup)
def ad() -> None:
    """Manage service principals (as `az ad`)."""


@ad.group("sp")
def sp() -> None:
    """Manage service principals."""


@sp.command("create-for-rbac", words=("--scopes",), table=service_principal_table)
@click.option(
    "--name",
    "-n",
    help="Display name of the service principal [default: haven-cli-<date-time>].",
)
@click.option("--role", help="Role to assign at --scopes, e.g. AcrPush.")
@click.option(
    "--scopes",
    type=WORDS,
    metavar="SCOPE [SCOPE ...]",
    help="Where the role applies: '/', REGISTRY or REGISTRY/repo/path; several allowed.",
)
@years_option
def create_for_rbac(
    name: str | None, role: str | None, scopes: tuple[str, ...] | None, years: int | None
) -> Any:
    """Create a service principal, and grant it --role at --scopes."""
    if (role is None) != (scopes is None):
        raise click.UsageError("--role and --scopes must be given together.")
    client = session()
    display_name = name or time.strftime("haven-cli-%Y-%m-%d-%H-%M-%S", time.gmtime())
    created = client.post(
        "/api/identities", drop_none(name=display_name, kind=SERVICE_PRINCIPAL, years=years)
    )
    if not isinstance(created, dict) or not isinstance(created.get("id"), str):
        raise CliError("The server answered the creation without the new identity's id.")
    for scope in scopes or ():
        try:
            client.post(
                "/api/roleAssignments", {"role": role, "assignee": created["id"], "scope": scope}
            )
        except CliError as error:
            # Without its role the new principal is useless, and its secret is about to be
            # lost with this error: remove it rather than leave an orphan behind.
            with contextlib.suppress(CliError):
                client.delete(f"/api/identities/{segment(created['id'])}")
            raise CliError(
                f"Cannot assign role '{role}' at scope '{scope}': {error.message} "
                f"(service principal '{display_name}' was not kept)",
                error.exit_code,
            ) from error
    warn(CREDENTIALS_WARNING)
    return {
        "appId": created["id"],
        "displayName": created.get("name", display_name),
        "password": created.get("password"),
        "tenant": None,
    }


@sp.command("list", table=service_principal_table)
@click.option("--display-name", help="Only the service principal with this name.")
def list_(display_name: str | None) -> Any:
    """List service principals."""
    identities = session().get("/api/identities")
    return [
        as_service_principal(identity)
        for identity in identities or []
        if isinstance(identity, dict)
        and identity.get("kind") == SERVICE_PRINCIPAL
        and (display_name is None or identity.get("name") == display_name)
    ]


sp_id_option = click.option(
    "--id", "identity", required=True, metavar="APPID|NAME", help="The service principal's appId."
)


@sp.command("show", table=service_principal_table)
@sp_id_option
def show(identity: str) -> Any:
    """Show a service principal."""
    return as_service_principal(_service_principal(identity))


@sp.command("delete")
@sp_id_option
def delete(identity: str) -> Any:
    """Delete a service principal and its role assignments."""
    found = _service_principal(identity)
    return session().delete(f"/api/identities/{segment(found['id'])}")


@sp.group("credential")
def credential() -> None:
    """Manage a service principal's secrets."""


@credential.command("reset")
@sp_id_option
@click.option("--append", is_flag=True, help="Add a secret instead of replacing the others.")
@years_option
@click.option("--display-name", help="A name for the new secret.")
def reset(identity: str, append: bool, years: int | None, display_name: str | None) -> Any:
    """Generate a new secret for a service principal (shown this once)."""
    found = _service_principal(identity)
    answer = session().post(
        f"/api/identities/{segment(found['id'])}/credentials",
        drop_none(append=append, years=years, displayName=display_name),
    )
    warn(CREDENTIALS_WARNING)
    return {
        "appId": found["id"],
        "password": answer.get("password") if isinstance(answer, dict) else None,
        "tenant": None,
    }
