"""Blob uploads: POST, PATCH, PUT, GET and DELETE under /v2/<name>/blobs/uploads/."""

from __future__ import annotations

import re

from starlette.responses import Response

from haven.auth import roles
from haven.errors import BlobUploadInvalid, DigestInvalid, SizeInvalid
from haven.oci.names import validate_name
from haven.web.context import Ctx
from haven.web.responses import respond

_CONTENT_RANGE = re.compile(r"^(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?$")


def _upload_headers(name: str, upload_id: str, size: int) -> dict[str, str]:
    return {
        "Location": f"/v2/{name}/blobs/uploads/{upload_id}",
        "Docker-Upload-UUID": upload_id,
        # The last byte received, inclusive; an empty upload reads 0-0 by convention.
        "Range": f"0-{max(size - 1, 0)}",
        "Content-Length": "0",
    }


def _blob_created(name: str, digest: str) -> Response:
    return respond(
        201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


def _content_range(ctx: Ctx) -> tuple[int, int] | None:
    value = ctx.header("content-range")
    if value is None:
        return None
    match = _CONTENT_RANGE.match(value.strip())
    if match is None:
        raise BlobUploadInvalid(f"malformed Content-Range {value[:100]!r}: expected start-end")
    return int(match.group(1)), int(match.group(2))


def _content_length(ctx: Ctx) -> int | None:
    value = ctx.header("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise SizeInvalid(f"malformed Content-Length {value[:100]!r}")
    return int(value)


async def start_upload(ctx: Ctx) -> Response:
    services, name = ctx.services, ctx.name
    mount = ctx.query("mount")
    if mount is not None:
        source = ctx.query("from")
        if source is not None:
            validate_name(source)
        # Mount only what the caller could read anyway; otherwise a plain upload
        # follows, and nothing tells whether the blob exists elsewhere.
        readable = await ctx.may(source, roles.READ)
        if readable and await services.blobs.mount(ctx.registry_id, name, mount, source):
            return _blob_created(name, mount)
    digest = ctx.query("digest")
    if digest is not None:
        await services.uploads.monolithic(ctx.registry_id, name, digest, ctx.request.stream())
        return _blob_created(name, digest)
    upload_id = await services.uploads.start(ctx.registry_id, name)
    return respond(202, headers=_upload_headers(name, upload_id, 0))


async def upload_status(ctx: Ctx) -> Response:
    upload_id = ctx.params["upload"]
    size = await ctx.services.uploads.status(ctx.registry_id, ctx.name, upload_id)
    return respond(204, headers=_upload_headers(ctx.name, upload_id, size))


async def patch_upload(ctx: Ctx) -> Response:
    upload_id = ctx.params["upload"]
    size = await ctx.services.uploads.append(
        ctx.registry_id,
        ctx.name,
        upload_id,
        ctx.request.stream(),
        _content_range(ctx),
        _content_length(ctx),
    )
    return respond(202, headers=_upload_headers(ctx.name, upload_id, size))


async def finish_upload(ctx: Ctx) -> Response:
    digest = ctx.query("digest")
    if digest is None:
        raise DigestInvalid("PUT of an upload needs ?digest=<digest> to finish it")
    await ctx.services.uploads.complete(
        ctx.registry_id,
        ctx.name,
        ctx.params["upload"],
        digest,
        ctx.request.stream(),
        _content_range(ctx),
        _content_length(ctx),
    )
    return _blob_created(ctx.name, digest)


async def cancel_upload(ctx: Ctx) -> Response:
    await ctx.services.uploads.cancel(ctx.registry_id, ctx.name, ctx.params["upload"])
    return respond(204)
