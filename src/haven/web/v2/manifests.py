"""GET, HEAD, PUT and DELETE /v2/<name>/manifests/<reference>."""

from __future__ import annotations

from starlette.responses import Response

from haven.errors import PayloadTooLarge, SizeInvalid
from haven.web.context import Ctx
from haven.web.responses import head_response, respond


async def get_manifest(ctx: Ctx) -> Response:
    manifest = await ctx.services.manifests.get(ctx.registry_id, ctx.name, ctx.params["reference"])
    headers = {
        "Docker-Content-Digest": manifest.digest,
        "ETag": f'"{manifest.digest}"',
        "Content-Type": manifest.media_type,
    }
    if ctx.head:
        return head_response(200, len(manifest.payload), headers)
    return respond(200, manifest.payload, headers, manifest.media_type)


async def _read_body(ctx: Ctx, limit: int) -> bytes:
    declared = ctx.header("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise SizeInvalid(f"malformed Content-Length {declared[:100]!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(f"manifest of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    async for chunk in ctx.request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"manifest exceeds the {limit}-byte limit")
    return bytes(body)


async def put_manifest(ctx: Ctx) -> Response:
    body = await _read_body(ctx, ctx.services.settings.max_manifest_bytes)
    pushed = await ctx.services.manifests.put(
        ctx.registry_id,
        ctx.name,
        ctx.params["reference"],
        ctx.header("content-type"),
        body,
    )
    headers = {
        "Location": f"/v2/{ctx.name}/manifests/{pushed.digest}",
        "Docker-Content-Digest": pushed.digest,
        "Content-Length": "0",
    }
    if pushed.subject is not None:
        headers["OCI-Subject"] = pushed.subject
    return respond(201, headers=headers)


async def delete_manifest(ctx: Ctx) -> Response:
    await ctx.services.manifests.delete(ctx.registry_id, ctx.name, ctx.params["reference"])
    return respond(202, headers={"Content-Length": "0"})
