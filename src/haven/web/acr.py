"""ACR's repository API under `/acr/v1/`: repository, tag and manifest attributes,
their lock attributes, and deletion — what `az acr repository` and Microsoft's
`azure-containerregistry` SDK call — and, under `/acr/v1/_deleted/`, soft-deleted
content: what `az acr repository list-deleted` and `az acr manifest list-deleted`,
`list-deleted-tags` and `restore` call.

Authorised like the distribution API: reads need metadata/read, changes need
metadata/write, deletions content/delete, the catalog the catalog right; listing
soft-deleted content needs deleted/read and restoring it deleted/restore.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson
from starlette.responses import Response

from haven.auth import roles
from haven.errors import NameUnknown, PaginationNumberInvalid, ParameterInvalid
from haven.oci.digest import parse_digest
from haven.oci.names import validate_tag
from haven.store.locks import LOCK_NAMES
from haven.store.repositories import ManifestDetail, RepositoryDetail, TagDetail
from haven.store.soft_delete import DeletedManifest, DeletedTag
from haven.timestamps import iso_from_ms
from haven.web.context import Ctx
from haven.web.responses import json_response, respond
from haven.web.v2.routes import Endpoint

DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _registry(ctx: Ctx) -> str:
    return (ctx.header("host") or "localhost").lower()


def _page(ctx: Ctx) -> int:
    value = ctx.query("n")
    if value is None or value == "":
        return DEFAULT_PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise PaginationNumberInvalid(f"n must be a whole number from 1 to {MAX_PAGE}")
    return int(value)


def _orderby(ctx: Ctx) -> str | None:
    value = ctx.query("orderby")
    if value in (None, "", "none"):
        return None
    if value not in ("timedesc", "timeasc"):
        raise ParameterInvalid("orderby must be timedesc or timeasc")
    return value


def _link(path: str, last: str, n: int, orderby: str | None, **extra: str | None) -> dict[str, str]:
    query = f"last={quote(last, safe='')}&n={n}" + (f"&orderby={orderby}" if orderby else "")
    query += "".join(f"&{k}={quote(v, safe='')}" for k, v in extra.items() if v is not None)
    return {"Link": f'<{path}?{query}>; rel="next"'}


def _changes(ctx_body: bytes) -> dict[str, bool]:
    try:
        body = orjson.loads(ctx_body or b"{}")
    except orjson.JSONDecodeError:
        raise ParameterInvalid("the body must be a JSON object of changeable attributes") from None
    if not isinstance(body, dict):
        raise ParameterInvalid("the body must be a JSON object of changeable attributes")
    changes = {}
    for key, value in body.items():
        if key in LOCK_NAMES:
            if not isinstance(value, bool):
                raise ParameterInvalid(f"{key} must be true or false")
            changes[key] = value
    return changes


async def _body(ctx: Ctx) -> bytes:
    data = bytearray()
    async for chunk in ctx.request.stream():
        data += chunk
        if len(data) > 64 * 1024:
            raise ParameterInvalid("the body is too large")
    return bytes(data)


async def _repository(ctx: Ctx) -> RepositoryDetail:
    found = await ctx.services.repositories.repository(ctx.registry_id, ctx.name)
    if found is None:
        raise NameUnknown(f"repository {ctx.name} is not known to this registry")
    return found


def _repository_json(ctx: Ctx, r: RepositoryDetail) -> dict[str, Any]:
    return {
        "registry": _registry(ctx),
        "imageName": r.name,
        "createdTime": iso_from_ms(r.created_at),
        "lastUpdateTime": iso_from_ms(r.updated_at),
        "manifestCount": r.manifest_count,
        "tagCount": r.tag_count,
        "changeableAttributes": r.attributes,
    }


def _tag_json(t: TagDetail) -> dict[str, Any]:
    return {
        "name": t.name,
        "digest": t.digest,
        "createdTime": iso_from_ms(t.created_at),
        "lastUpdateTime": iso_from_ms(t.updated_at),
        "signed": False,
        "changeableAttributes": t.attributes,
    }


def _manifest_json(m: ManifestDetail) -> dict[str, Any]:
    out: dict[str, Any] = {
        "digest": m.digest,
        "imageSize": m.size,
        "createdTime": iso_from_ms(m.created_at),
        "lastUpdateTime": iso_from_ms(m.updated_at),
        "mediaType": m.media_type,
        "tags": m.tags,
        "changeableAttributes": m.attributes,
    }
    if m.config_media_type:
        out["configMediaType"] = m.config_media_type
    if m.architecture:
        out["architecture"] = m.architecture
    if m.os:
        out["os"] = m.os
    return out


def _deleted_manifest_json(m: DeletedManifest) -> dict[str, Any]:
    out: dict[str, Any] = {
        "digest": m.digest,
        "imageSize": m.size,
        "createdTime": iso_from_ms(m.created_at),
        "lastUpdateTime": iso_from_ms(m.updated_at),
        "mediaType": m.media_type,
        "deletedAt": iso_from_ms(m.deleted_at),
        "expiresAfter": iso_from_ms(m.expires_at),
        "tags": m.tags,
    }
    for key, value in (
        ("configMediaType", m.config_media_type),
        ("architecture", m.architecture),
        ("os", m.os),
    ):
        if value:
            out[key] = value
    return out


def _deleted_tag_json(t: DeletedTag) -> dict[str, Any]:
    return {
        "tag": t.name,
        "digest": t.digest,
        "createdTime": iso_from_ms(t.created_at),
        "deletedAt": iso_from_ms(t.deleted_at),
        "expiresAfter": iso_from_ms(t.expires_at),
    }


def _true(ctx: Ctx, name: str) -> bool:
    value = ctx.query(name)
    if value is None or value.lower() in ("", "false"):
        return False
    if value.lower() == "true":
        return True
    raise ParameterInvalid(f"{name} must be true or false")


# Handlers ---------------------------------------------------------------------------


async def catalog(ctx: Ctx) -> Response:
    n = _page(ctx)
    page = await ctx.services.listing.repositories(ctx.registry_id, ctx.query("last"), n)
    headers = _link("/acr/v1/_catalog", page.items[-1], n, None) if page.more else None
    return json_response({"repositories": page.items}, headers)


async def get_repository(ctx: Ctx) -> Response:
    return json_response(_repository_json(ctx, await _repository(ctx)))


async def patch_repository(ctx: Ctx) -> Response:
    changes = _changes(await _body(ctx))
    await _repository(ctx)
    updated = await ctx.services.repositories.set_repository_attributes(
        ctx.registry_id, ctx.name, changes
    )
    if updated is None:
        raise NameUnknown(f"repository {ctx.name} is not known to this registry")
    return json_response(_repository_json(ctx, updated))


async def delete_repository(ctx: Ctx) -> Response:
    deleted = await ctx.services.repositories.delete_repository(ctx.registry_id, ctx.name)
    if deleted is None:
        raise NameUnknown(f"repository {ctx.name} is not known to this registry")
    body = {"manifestsDeleted": deleted[0], "tagsDeleted": deleted[1]}
    return respond(202, orjson.dumps(body), media_type="application/json")


async def list_tags(ctx: Ctx) -> Response:
    repository = await _repository(ctx)
    n, orderby = _page(ctx), _orderby(ctx)
    digest = ctx.query("digest")
    if digest is not None:
        parse_digest(digest)
    found = await ctx.services.repositories.tags(
        repository.id, ctx.query("last"), n + 1, orderby, digest
    )
    tags = found[:n]
    headers = (
        _link(f"/acr/v1/{ctx.name}/_tags", tags[-1].name, n, orderby) if len(found) > n else None
    )
    body = {"registry": _registry(ctx), "imageName": ctx.name, "tags": [_tag_json(t) for t in tags]}
    return json_response(body, headers)


async def _tag(ctx: Ctx) -> tuple[RepositoryDetail, TagDetail]:
    repository = await _repository(ctx)
    name = validate_tag(ctx.params["tag"])
    found = await ctx.services.repositories.tag(repository.id, name)
    if found is None:
        raise NameUnknown(f"tag {ctx.name}:{name} is not known to this registry")
    return repository, found


async def get_tag(ctx: Ctx) -> Response:
    _, tag = await _tag(ctx)
    return json_response({"registry": _registry(ctx), "imageName": ctx.name, "tag": _tag_json(tag)})


async def patch_tag(ctx: Ctx) -> Response:
    changes = _changes(await _body(ctx))
    repository, tag = await _tag(ctx)
    updated = await ctx.services.repositories.set_tag_attributes(repository.id, tag.name, changes)
    assert updated is not None
    return json_response(
        {"registry": _registry(ctx), "imageName": ctx.name, "tag": _tag_json(updated)}
    )


async def delete_tag(ctx: Ctx) -> Response:
    await ctx.services.manifests.delete(ctx.registry_id, ctx.name, ctx.params["tag"])
    return respond(202)


async def list_manifests(ctx: Ctx) -> Response:
    repository = await _repository(ctx)
    n, orderby = _page(ctx), _orderby(ctx)
    found = await ctx.services.repositories.manifests(
        repository.id, ctx.query("last"), n + 1, orderby
    )
    manifests = found[:n]
    headers = (
        _link(f"/acr/v1/{ctx.name}/_manifests", manifests[-1].digest, n, orderby)
        if len(found) > n
        else None
    )
    body = {
        "registry": _registry(ctx),
        "imageName": ctx.name,
        "manifests": [_manifest_json(m) for m in manifests],
    }
    return json_response(body, headers)


async def _manifest(ctx: Ctx) -> tuple[RepositoryDetail, ManifestDetail]:
    repository = await _repository(ctx)
    digest = str(parse_digest(ctx.params["digest"]))
    found = await ctx.services.repositories.manifest(repository.id, digest)
    if found is None:
        raise NameUnknown(f"manifest {ctx.name}@{digest} is not known to this registry")
    return repository, found


async def get_manifest(ctx: Ctx) -> Response:
    _, manifest = await _manifest(ctx)
    body = {"registry": _registry(ctx), "imageName": ctx.name, "manifest": _manifest_json(manifest)}
    return json_response(body)


async def patch_manifest(ctx: Ctx) -> Response:
    changes = _changes(await _body(ctx))
    repository, manifest = await _manifest(ctx)
    updated = await ctx.services.repositories.set_manifest_attributes(
        repository.id, manifest.digest, changes
    )
    assert updated is not None
    body = {"registry": _registry(ctx), "imageName": ctx.name, "manifest": _manifest_json(updated)}
    return json_response(body)


async def delete_manifest(ctx: Ctx) -> Response:
    await ctx.services.manifests.delete(ctx.registry_id, ctx.name, ctx.params["digest"])
    return respond(202)


async def deleted_catalog(ctx: Ctx) -> Response:
    """The repositories holding soft-deleted manifests or tags (deleted ones included)."""
    n = _page(ctx)
    found = await ctx.services.repositories.deleted_repositories(
        ctx.registry_id, ctx.query("last"), n + 1
    )
    names = found[:n]
    headers = _link("/acr/v1/_deleted/_catalog", names[-1], n, None) if len(found) > n else None
    return json_response({"repositories": names}, headers)


async def list_deleted_manifests(ctx: Ctx) -> Response:
    n = _page(ctx)
    found = await ctx.services.repositories.deleted_manifests(
        ctx.registry_id, ctx.name, ctx.query("last"), n + 1
    )
    manifests = found[:n]
    headers = (
        _link(f"/acr/v1/_deleted/{ctx.name}/_manifests", manifests[-1].digest, n, None)
        if len(found) > n
        else None
    )
    body = {
        "registry": _registry(ctx),
        "imageName": ctx.name,
        "manifests": [_deleted_manifest_json(m) for m in manifests],
    }
    return json_response(body, headers)


async def list_deleted_tags(ctx: Ctx) -> Response:
    """Soft-deleted tags (`?tag=` for one tag's), each with the manifest it named; a tag
    deleted several times is listed once per manifest, its latest deletion last. Pages
    continue after `last=<tag>@<digest>`."""
    n = _page(ctx)
    tag = ctx.query("tag")
    if tag is not None:
        validate_tag(tag)
    last = ctx.query("last")
    after = None
    if last:
        name, _, digest = last.partition("@")
        after = (name, digest)
    found = await ctx.services.repositories.deleted_tags(
        ctx.registry_id, ctx.name, tag, after, n + 1
    )
    tags = found[:n]
    headers = (
        _link(
            f"/acr/v1/_deleted/{ctx.name}/_tags",
            f"{tags[-1].name}@{tags[-1].digest}",
            n,
            None,
            tag=tag,
        )
        if len(found) > n
        else None
    )
    body = {
        "registry": _registry(ctx),
        "imageName": ctx.name,
        "tags": [_deleted_tag_json(t) for t in tags],
    }
    return json_response(body, headers)


async def restore_manifest(ctx: Ctx) -> Response:
    """Restore a soft-deleted manifest and point `{"tag"}` at it (`?force=true` moves a
    tag that points elsewhere now)."""
    digest = str(parse_digest(ctx.params["digest"]))
    force = _true(ctx, "force")
    raw = await _body(ctx)
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise ParameterInvalid('the body must be a JSON object: {"tag": "<tag>"}') from None
    if not isinstance(body, dict):
        raise ParameterInvalid('the body must be a JSON object: {"tag": "<tag>"}')
    tag = body.get("tag")
    if tag is not None and not isinstance(tag, str):
        raise ParameterInvalid("tag must be a string")
    await ctx.services.manifests.restore(ctx.registry_id, ctx.name, digest, tag, force)
    return json_response(
        {"registry": _registry(ctx), "imageName": ctx.name, "digest": digest, "tag": tag}
    )


_NAME = r"(?P<name>.+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, Endpoint]]] = [
    # Soft-deleted content first: `_deleted/...` is no repository name (it fails the name
    # rules), so the routes below would refuse it.
    (
        re.compile(r"^/acr/v1/_deleted/_catalog$"),
        {"GET": Endpoint(deleted_catalog, roles.DELETED_READ)},
    ),
    (
        re.compile(rf"^/acr/v1/_deleted/{_NAME}/_manifests/(?P<digest>[^/]+)$"),
        {"POST": Endpoint(restore_manifest, roles.DELETED_RESTORE)},
    ),
    (
        re.compile(rf"^/acr/v1/_deleted/{_NAME}/_manifests$"),
        {"GET": Endpoint(list_deleted_manifests, roles.DELETED_READ)},
    ),
    (
        re.compile(rf"^/acr/v1/_deleted/{_NAME}/_tags$"),
        {"GET": Endpoint(list_deleted_tags, roles.DELETED_READ)},
    ),
    (re.compile(r"^/acr/v1/_catalog$"), {"GET": Endpoint(catalog, roles.CATALOG)}),
    (
        re.compile(rf"^/acr/v1/{_NAME}/_tags/(?P<tag>[^/]+)$"),
        {
            "GET": Endpoint(get_tag, roles.META_READ),
            "PATCH": Endpoint(patch_tag, roles.META_WRITE),
            "DELETE": Endpoint(delete_tag, roles.DELETE),
        },
    ),
    (re.compile(rf"^/acr/v1/{_NAME}/_tags$"), {"GET": Endpoint(list_tags, roles.META_READ)}),
    (
        re.compile(rf"^/acr/v1/{_NAME}/_manifests/(?P<digest>[^/]+)$"),
        {
            "GET": Endpoint(get_manifest, roles.META_READ),
            "PATCH": Endpoint(patch_manifest, roles.META_WRITE),
            "DELETE": Endpoint(delete_manifest, roles.DELETE),
        },
    ),
    (
        re.compile(rf"^/acr/v1/{_NAME}/_manifests$"),
        {"GET": Endpoint(list_manifests, roles.META_READ)},
    ),
    (
        re.compile(rf"^/acr/v1/{_NAME}$"),
        {
            "GET": Endpoint(get_repository, roles.META_READ),
            "PATCH": Endpoint(patch_repository, roles.META_WRITE),
            "DELETE": Endpoint(delete_repository, roles.DELETE),
        },
    ),
]


def match(path: str) -> tuple[dict[str, Endpoint], dict[str, str]] | None:
    for pattern, methods in ROUTES:
        found = pattern.match(path)
        if found is not None:
            return methods, found.groupdict()
    return None
