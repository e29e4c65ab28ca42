"""`haven role assignment …`: grant ACR's built-in roles at `/`, a registry or a repository."""

from __future__ import annotations

from typing import Any

import click

from haven.cli.arguments import drop_none
from haven.cli.client import segment
from haven.cli.command import WORDS, HavenGroup, session
from haven.cli.errors import ResourceNotFoundError
from haven.cli.tables import role_assignment_table

SCOPE_HELP = "'/' (the whole deployment), REGISTRY, or REGISTRY/repo/path."


@click.group(cls=HavenGroup)
def role() -> None:
    """Manage role assignments."""


@role.group("assignment")
def assignment() -> None:
    """Grant and revoke roles."""


@assignment.command("create", table=role_assignment_table)
@click.option("--role", required=True, help="Role name, e.g. AcrPull, AcrPush, Reader, Owner.")
@click.option("--assignee", required=True, metavar="ID|NAME", help="The identity to grant it to.")
@click.option("--scope", required=True, help=f"Where the role applies: {SCOPE_HELP}")
def create(role: str, assignee: str, scope: str) -> Any:
    """Grant a role to an identity at a scope."""
    return session().post(
        "/api/roleAssignments", {"role": role, "assignee": assignee, "scope": scope}
    )


def _list(assignee: str | None, scope: str | None, role: str | None) -> Any:
    return session().get(
        "/api/roleAssignments", drop_none(assignee=assignee, scope=scope, role=role)
    )


@assignment.command("list", table=role_assignment_table)
@click.option("--assignee", metavar="ID|NAME", help="Only this identity's assignments.")
@click.option("--scope", help=f"Only assignments at this scope: {SCOPE_HELP}")
@click.option("--role", help="Only assignments of this role.")
def list_(assignee: str | None, scope: str | None, role: str | None) -> Any:
    """List role assignments."""
    return _list(assignee, scope, role)


@assignment.command("delete", words=("--ids",))
@click.option("--ids", type=WORDS, metavar="ID [ID ...]", help="Ids of the assignments to delete.")
@click.option("--assignee", metavar="ID|NAME", help="Delete this identity's assignments.")
@click.option("--role", help="Only assignments of this role (with --assignee).")
@click.option("--scope", help=f"Only assignments at this scope (with --assignee): {SCOPE_HELP}")
def delete(
    ids: tuple[str, ...] | None, assignee: str | None, role: str | None, scope: str | None
) -> Any:
    """Delete role assignments by id, or those of an assignee (filtered by role and scope)."""
    # `--ids "$(haven role assignment list --query [].id -o tsv)"` passes one word of lines.
    ids = tuple(part for word in ids or () for part in word.split()) or None
    if ids and (assignee or role or scope):
        raise click.UsageError("--ids cannot be combined with --assignee, --role or --scope.")
    if not ids and not assignee:
        raise click.UsageError("Give --ids, or --assignee (with --role and --scope to narrow).")
    client = session()
    if not ids:
        matches = _list(assignee, scope, role)
        ids = tuple(item["id"] for item in matches or [] if isinstance(item, dict))
        if not ids:
            raise ResourceNotFoundError("No matched assignments were found to delete.")
    for assignment_id in ids:
        client.delete(f"/api/roleAssignments/{segment(assignment_id)}")
    return None
