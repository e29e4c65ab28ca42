"""`haven manifest …`: artifact manifests, as `az acr manifest`.

As in az, `--registry/-r` is the registry and `--name/-n` the repository
(`list-metadata`, `list-deleted`) or the artifact: `repo:tag` or `repo@digest`. `show` and
`list-referrers` read the OCI distribution API (`/v2/`), `list-metadata` ACR's metadata API
(`/acr/v1/`), and `list-deleted`, `list-deleted-tags` and `restore` its soft-deleted
content (`/acr/v1/_deleted/`); see `haven.cli.dataplane`.
"""

from __future__ import annotations

from typing import Any

import click

from haven.cli.arguments import registry_option, yes_option
from haven.cli.client import HavenClient
from haven.cli.command import HavenGroup, confirm, session
from haven.cli.dataplane import (
    MANIFEST_ACCEPT,
    ImageReference,
    RegistryClient,
    parse_image,
    reference_segment,
    repository_path,
    repository_scope,
)
from haven.cli.errors import ServerError
from haven.cli.repository import ORDERBY, orderby_option, top_option
from haven.cli.tables import referrers_table

artifact_option = click.option(
    "--name",
    "-n",
    required=True,
    metavar="ARTIFACT",
    help="The artifact: 'repository:tag' or 'repository@digest'.",
)


def _artifact(value: str) -> ImageReference:
    return parse_image(value, "'--name' / '-n'")


def dataplane(registry: str) -> RegistryClient:
    return RegistryClient(session(), registry)


@click.group(cls=HavenGroup)
def manifest() -> None:
    """Manage artifact manifests."""


@manifest.command("list-metadata")
@registry_option
@click.option("--name", "-n", required=True, metavar="REPOSITORY", help="The repository.")
@top_option
@orderby_option
def list_metadata(registry: str, name: str, top: int | None, orderby: str | None) -> Any:
    """List the metadata (attributes) of the manifests in a repository."""
    params = {"orderby": ORDERBY[orderby]} if orderby else None
    return dataplane(registry).paged(
        f"/acr/v1/{repository_path(name)}/_manifests",
        "manifests",
        [repository_scope(name, "metadata_read")],
        params=params,
        top=top,
    )


@manifest.command("show")
@registry_option
@artifact_option
@click.option("--raw", is_flag=True, help="Print the manifest's bytes exactly as stored.")
def show(registry: str, name: str, raw: bool) -> Any:
    """Get a manifest (image manifest, index, or artifact manifest)."""
    artifact = _artifact(name)
    response = dataplane(registry).request(
        "GET",
        f"/v2/{repository_path(artifact.repository)}/manifests/{reference_segment(artifact.reference)}",
        [repository_scope(artifact.repository, "pull")],
        headers={"Accept": MANIFEST_ACCEPT},
    )
    if raw and response.is_success:
        click.echo(response.content, nl=False)
        return None
    return HavenClient.result(response)


@manifest.command("list-referrers", table=referrers_table)
@registry_option
@artifact_option
@click.option("--artifact-type", metavar="TYPE", help="Only the referrers of this artifact type.")
def list_referrers(registry: str, name: str, artifact_type: str | None) -> Any:
    """List the artifacts (signatures, SBOMs, …) whose subject is this manifest."""
    artifact = _artifact(name)
    client = dataplane(registry)
    digest = client.manifest_digest(artifact)
    return client.call(
        "GET",
        f"/v2/{repository_path(artifact.repository)}/referrers/{reference_segment(digest)}",
        [repository_scope(artifact.repository, "pull")],
        params={"artifactType": artifact_type} if artifact_type else None,
    )


@manifest.command("delete")
@registry_option
@artifact_option
@yes_option
def delete(registry: str, name: str, yes: bool) -> Any:
    """Delete a manifest, and with it every tag that points to it."""
    artifact = _artifact(name)
    client = dataplane(registry)
    digest = client.manifest_digest(artifact)
    confirm(
        f"This operation will delete the manifest '{artifact.repository}@{digest}' and all "
        "the tags that point to it.\nAre you sure you want to continue?",
        yes,
    )
    actions = ("delete",) if artifact.digest is not None else ("pull", "delete")
    client.call(
        "DELETE",
        f"/v2/{repository_path(artifact.repository)}/manifests/{reference_segment(digest)}",
        [repository_scope(artifact.repository, *actions)],
    )
    return None


def _deleted_path(repository: str, what: str) -> str:
    return f"/acr/v1/_deleted/{repository_path(repository)}/_{what}"


def _repository_and_tag(value: str, option: str, tag_required: bool) -> tuple[str, str | None]:
    """`repo:tag`, or (unless `tag_required`) `repo` alone: no tag is implied here."""
    if "@" in value:
        raise click.BadParameter(
            f"'{value}' names a digest; give 'repository:tag'", param_hint=option
        )
    head, _, last = value.strip().rpartition("/")
    name, colon, tag = last.partition(":")
    repository = f"{head}/{name}" if head else name
    if not repository or repository.startswith("/") or (colon and not tag):
        raise click.BadParameter(f"'{value}' is not 'repository:tag'", param_hint=option)
    if tag_required and not colon:
        raise click.BadParameter(
            f"'{value}' names no tag: give 'repository:tag'", param_hint=option
        )
    return repository, tag if colon else None


@manifest.command("list-deleted")
@registry_option
@click.option("--name", "-n", required=True, metavar="REPOSITORY", help="The repository.")
def list_deleted(registry: str, name: str) -> Any:
    """List the soft-deleted manifests of a repository, with when each was deleted and
    when it will be purged (`expiresAfter`), and the deleted tags that named it."""
    scope = repository_scope(name, "deleted_read")
    return dataplane(registry).paged(_deleted_path(name, "manifests"), "manifests", [scope])


@manifest.command("list-deleted-tags")
@registry_option
@click.option(
    "--name",
    "-n",
    required=True,
    metavar="REPOSITORY[:TAG]",
    help="The repository, or 'repository:tag' for one tag's deletions.",
)
def list_deleted_tags(registry: str, name: str) -> Any:
    """List the soft-deleted tags of a repository, each with the manifest it named; a tag
    deleted several times is listed once per manifest, its latest deletion last."""
    repository, tag = _repository_and_tag(name, "'--name' / '-n'", tag_required=False)
    return dataplane(registry).paged(
        _deleted_path(repository, "tags"),
        "tags",
        [repository_scope(repository, "deleted_read")],
        params={"tag": tag} if tag else None,
    )


@manifest.command("restore")
@registry_option
@click.option(
    "--name",
    "-n",
    required=True,
    metavar="REPOSITORY:TAG",
    help="The soft-deleted tag to restore, with the manifest it named.",
)
@click.option(
    "--digest",
    "-d",
    metavar="DIGEST",
    help="Which soft-deleted manifest to restore when several were tagged with the tag "
    "[default: the most recently deleted].",
)
@click.option(
    "--force", "-f", is_flag=True, help="Move the tag if it points at another manifest now."
)
@yes_option
def restore(registry: str, name: str, digest: str | None, force: bool, yes: bool) -> Any:
    """Restore a soft-deleted manifest and its tag. Without --force, a tag that points at
    another manifest now is left alone and the restore refused."""
    repository, tag = _repository_and_tag(name, "'--name' / '-n'", tag_required=True)
    client = dataplane(registry)
    scopes = [repository_scope(repository, "deleted_read", "deleted_restore")]
    if digest is not None:
        digest = parse_image(f"{repository}@{digest}", "'--digest' / '-d'").digest
    else:
        entries = client.paged(
            _deleted_path(repository, "tags"), "tags", scopes, params={"tag": str(tag)}
        )
        found = [e for e in entries if isinstance(e, dict) and e.get("tag") == tag]
        if not found:
            raise ServerError(f"No soft-deleted manifest was tagged '{repository}:{tag}'.", 404)
        digest = str(found[-1].get("digest"))  # the registry lists the latest deletion last
        if len({str(e.get("digest")) for e in found}) > 1:
            confirm(
                f"Several soft-deleted manifests were tagged '{repository}:{tag}'. This "
                f"operation will restore the most recently deleted, '{digest}' (choose "
                "another with --digest).\nAre you sure you want to continue?",
                yes,
            )
    return client.call(
        "POST",
        f"{_deleted_path(repository, 'manifests')}/{reference_segment(str(digest))}",
        scopes,
        params={"force": "true"} if force else None,
        json={"tag": tag},
    )
