"""`haven repository …`: a registry's repositories, tags and manifests, as `az acr repository`.

Every command goes to the registry's data plane (ACR's metadata API `/acr/v1/`, and
`DELETE /v2/<repo>/manifests/<digest>` to delete an image) with a token for just the
scope it needs; see `haven.cli.dataplane`.

`--image` (`-t`) takes `repo:tag`, `repo@digest`, or `repo` alone, which means
`repo:latest`. Deleting an image by tag deletes the manifest the tag points to, and with it
every tag that points to that manifest; `untag` removes one tag only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from haven.cli.arguments import TRUE_FALSE, drop_none, registry_name_option, true_false, yes_option
from haven.cli.command import HavenGroup, confirm, session
from haven.cli.dataplane import (
    CATALOG_SCOPE,
    DELETED_CATALOG_SCOPE,
    ImageReference,
    RegistryClient,
    parse_image,
    reference_segment,
    repository_path,
    repository_scope,
)
from haven.cli.errors import CliError

F = TypeVar("F", bound=Callable[..., Any])
ORDERBY = {"time_asc": "timeasc", "time_desc": "timedesc"}
CONTINUE = "Are you sure you want to continue?"

top_option = click.option(
    "--top", type=click.IntRange(min=1), help="Limit the number of items in the results."
)
orderby_option = click.option(
    "--orderby",
    type=click.Choice(sorted(ORDERBY)),
    help="Order the items in the results [default: as the registry lists them].",
)
detail_option = click.option(
    "--detail", is_flag=True, help="Show detailed information (all of each item's attributes)."
)
repository_option = click.option(
    "--repository", metavar="REPOSITORY", help="The name of the repository."
)
image_option = click.option(
    "--image",
    "-t",
    metavar="IMAGE",
    help="An image: 'repository:tag' or 'repository@digest' ('repository' alone means "
    "'repository:latest').",
)


def dataplane(name: str) -> RegistryClient:
    return RegistryClient(session(), name)


def _image(value: str) -> ImageReference:
    return parse_image(value, "'--image' / '-t'")


def _target(repository: str | None, image: str | None) -> str | ImageReference:
    """The repository or image a command acts on: exactly one of the two options."""
    if (repository is None) == (image is None):
        raise click.UsageError("Usage error: --image IMAGE | --repository REPOSITORY")
    return _image(image) if image is not None else str(repository)


def metadata_path(target: str | ImageReference) -> str:
    """The `/acr/v1/` path of a repository, a tag or a manifest."""
    if isinstance(target, str):
        return f"/acr/v1/{repository_path(target)}"
    base = f"/acr/v1/{repository_path(target.repository)}"
    if target.digest is not None:
        return f"{base}/_manifests/{reference_segment(target.digest)}"
    return f"{base}/_tags/{reference_segment(str(target.tag))}"


def _repository(target: str | ImageReference) -> str:
    return target if isinstance(target, str) else target.repository


def _unwrap(answer: Any, target: str | ImageReference) -> Any:
    """A tag's or manifest's attributes, out of `{"registry", "imageName", "tag"|"manifest"}`."""
    if isinstance(target, str) or not isinstance(answer, dict):
        return answer
    key = "manifest" if target.digest is not None else "tag"
    return answer.get(key, answer)


@click.group(cls=HavenGroup)
def repository() -> None:
    """Manage repositories (image names) of a registry."""


@repository.command("list")
@registry_name_option
@top_option
def list_(name: str, top: int | None) -> Any:
    """List the repositories of a registry."""
    return dataplane(name).paged("/acr/v1/_catalog", "repositories", [CATALOG_SCOPE], top=top)


@repository.command("list-deleted")
@registry_name_option
@top_option
def list_deleted(name: str, top: int | None) -> Any:
    """List the repositories holding soft-deleted manifests or tags (deleted repositories
    among them)."""
    return dataplane(name).paged(
        "/acr/v1/_deleted/_catalog", "repositories", [DELETED_CATALOG_SCOPE], top=top
    )


@repository.command("show")
@registry_name_option
@repository_option
@image_option
def show(name: str, repository: str | None, image: str | None) -> Any:
    """Get the attributes of a repository, or of an image (by tag or digest)."""
    target = _target(repository, image)
    scope = repository_scope(_repository(target), "metadata_read")
    return _unwrap(dataplane(name).call("GET", metadata_path(target), [scope]), target)


def _listing(
    name: str, repository: str, key: str, top: int | None, orderby: str | None
) -> list[Any]:
    path = f"/acr/v1/{repository_path(repository)}/_{key}"
    params = {"orderby": ORDERBY[orderby]} if orderby else None
    scope = repository_scope(repository, "metadata_read")
    return dataplane(name).paged(path, key, [scope], params=params, top=top)


@repository.command("show-tags")
@registry_name_option
@click.option("--repository", required=True, metavar="REPOSITORY", help="The repository.")
@top_option
@orderby_option
@detail_option
def show_tags(
    name: str, repository: str, top: int | None, orderby: str | None, detail: bool
) -> Any:
    """Show the tags of a repository: their names, or with --detail their attributes."""
    tags = _listing(name, repository, "tags", top, orderby)
    if detail:
        return tags
    return [tag.get("name") for tag in tags if isinstance(tag, dict)]


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What `show-manifests` prints without --detail: digest, tags (a list, [] when
    untagged, so that `[?tags[0]==null]` selects untagged manifests) and timestamp."""
    tags = manifest.get("tags")
    return {
        "digest": manifest.get("digest"),
        "tags": list(tags) if isinstance(tags, list) else [],
        "timestamp": manifest.get("lastUpdateTime"),
    }


@repository.command("show-manifests")
@registry_name_option
@click.option("--repository", required=True, metavar="REPOSITORY", help="The repository.")
@top_option
@orderby_option
@detail_option
def show_manifests(
    name: str, repository: str, top: int | None, orderby: str | None, detail: bool
) -> Any:
    """Show the manifests of a repository: digest, tags and timestamp of each."""
    manifests = _listing(name, repository, "manifests", top, orderby)
    if detail:
        return manifests
    return [manifest_summary(m) for m in manifests if isinstance(m, dict)]


def image_confirmation(image: ImageReference, digest: str, tags: list[str]) -> str:
    """az's question before an image is deleted, naming every tag that goes with it."""
    message = f"This operation will delete the manifest '{digest}'"
    if tags:
        images = ", ".join(f"'{image.repository}:{tag}'" for tag in tags)
        message += f" and all the following images: {images}"
    return f"{message}.\n{CONTINUE}"


def _manifest_tags(client: RegistryClient, repository: str, digest: str, scopes: list[str]) -> Any:
    answer = client.call("GET", metadata_path(ImageReference(repository, digest=digest)), scopes)
    manifest = answer.get("manifest") if isinstance(answer, dict) else None
    tags = manifest.get("tags") if isinstance(manifest, dict) else None
    return [str(tag) for tag in tags] if isinstance(tags, list) else []


def delete_image(client: RegistryClient, image: ImageReference, yes: bool) -> None:
    """Delete the manifest `image` names (and so every tag of it), after asking.

    Reading metadata (the tag's digest, the manifest's tags for the question) needs
    metadata_read; `-t repo@digest --yes` needs the delete action only.
    """
    reads = image.digest is None or not yes
    actions = ("metadata_read", "delete") if reads else ("delete",)
    scopes = [repository_scope(image.repository, *actions)]
    digest = image.digest
    if digest is None:
        answer = client.call("GET", metadata_path(image), scopes)
        tag = answer.get("tag") if isinstance(answer, dict) else None
        digest = tag.get("digest") if isinstance(tag, dict) else None
        if not isinstance(digest, str) or not digest:
            raise CliError(f"The registry did not give the digest of '{image}'.")
    if not yes:
        tags = _manifest_tags(client, image.repository, digest, scopes)
        confirm(image_confirmation(image, digest, tags), yes)
    path = f"/v2/{repository_path(image.repository)}/manifests/{reference_segment(digest)}"
    client.call("DELETE", path, scopes)


@repository.command("delete")
@registry_name_option
@repository_option
@image_option
@yes_option
def delete(name: str, repository: str | None, image: str | None, yes: bool) -> Any:
    """Delete a repository, or an image (a manifest, with every tag that points to it)."""
    target = _target(repository, image)
    client = dataplane(name)
    if isinstance(target, ImageReference):
        delete_image(client, target, yes)
        return None
    confirm(
        f"This operation will delete the repository '{target}' and all the images in it.\n"
        f"{CONTINUE}",
        yes,
    )
    client.call("DELETE", metadata_path(target), [repository_scope(target, "delete")])
    return None


@repository.command("untag")
@registry_name_option
@click.option(
    "--image", "-t", required=True, metavar="IMAGE", help="The image to untag: 'repository:tag'."
)
def untag(name: str, image: str) -> Any:
    """Remove a tag; the manifest it pointed to stays (see `delete` to remove that)."""
    target = _image(image)
    if target.digest is not None:
        raise click.UsageError("Usage error: --image must be 'repository:tag' to untag.")
    scope = repository_scope(target.repository, "delete")
    dataplane(name).call("DELETE", metadata_path(target), [scope])
    return None


def _attribute_option(name: str, what: str) -> Callable[[F], F]:
    return click.option(
        f"--{name}-enabled",
        type=TRUE_FALSE,
        help=f"Whether the repository or image may be {what}.",
    )


@repository.command("update")
@registry_name_option
@repository_option
@image_option
@_attribute_option("delete", "deleted")
@_attribute_option("list", "listed")
@_attribute_option("read", "read (pulled)")
@_attribute_option("write", "written (pushed to, overwritten)")
def update(
    name: str,
    repository: str | None,
    image: str | None,
    delete_enabled: str | None,
    list_enabled: str | None,
    read_enabled: str | None,
    write_enabled: str | None,
) -> Any:
    """Lock or unlock a repository or an image: its delete, list, read and write attributes."""
    target = _target(repository, image)
    body = drop_none(
        deleteEnabled=true_false(delete_enabled),
        listEnabled=true_false(list_enabled),
        readEnabled=true_false(read_enabled),
        writeEnabled=true_false(write_enabled),
    )
    if not body:
        raise click.UsageError(
            "Nothing to update: give --delete-enabled, --list-enabled, --read-enabled "
            "or --write-enabled."
        )
    scope = repository_scope(_repository(target), "metadata_write")
    answer = dataplane(name).call("PATCH", metadata_path(target), [scope], json=body)
    return _unwrap(answer, target)
