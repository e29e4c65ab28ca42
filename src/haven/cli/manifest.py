"""`haven manifest …`: artifact manifests, as `az acr manifest`.

As in az, `--registry/-r` is the registry and `--name/-n` the repository
(`list-metadata`) or the artifact: `repo:tag` or `repo@digest`. `show` and
`list-referrers` read the OCI distribution API (`/v2/`), `list-metadata` ACR's metadata API
(`/acr/v1/`); see `haven.cli.dataplane`.
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
