"""GET, HEAD and DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

import os
import re

from starlette.responses import FileResponse, Response

from haven.errors import BlobUnknown
from haven.services.blobs import BlobBytes
from haven.web.context import Ctx
from haven.web.responses import API_VERSION, head_response, respond

_SINGLE_RANGE = re.compile(r"^bytes=(\d+-\d*|-\d+)$")


def _drop_unusable_range(ctx: Ctx) -> None:
    """Keep a Range header only when it is one byte range.

    A range in another unit must be ignored (RFC 9110 14.2) and a list of ranges may be;
    either way the client then gets the whole blob with 200, which every client handles.
    """
    value = ctx.header("range")
    if value is not None and not _SINGLE_RANGE.match(value.replace(" ", "")):
        scope = ctx.request.scope
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"range"]


async def get_blob(ctx: Ctx) -> Response:
    blob = await ctx.services.blobs.get(ctx.registry_id, ctx.name, ctx.params["digest"])
    if isinstance(blob, BlobBytes):
        headers = {"Docker-Content-Digest": blob.digest, "Content-Type": blob.media_type}
        if ctx.head:
            return head_response(200, len(blob.data), headers)
        return respond(200, blob.data, headers, blob.media_type)
    try:
        # A stat of a file just named by the metadata: no I/O worth a thread hop.
        stat = os.stat(blob.path)
    except FileNotFoundError:
        raise BlobUnknown(f"blob {blob.digest} is missing from storage") from None
    _drop_unusable_range(ctx)
    headers = {
        API_VERSION[0]: API_VERSION[1],
        "Docker-Content-Digest": blob.digest,
        "ETag": f'"{blob.digest}"',
        "Cache-Control": "max-age=31536000",
    }
    return FileResponse(
        blob.path,
        headers=headers,
        media_type="application/octet-stream",
        stat_result=stat,
    )


async def delete_blob(ctx: Ctx) -> Response:
    await ctx.services.blobs.delete(ctx.registry_id, ctx.name, ctx.params["digest"])
    return respond(202, headers={"Content-Length": "0"})
