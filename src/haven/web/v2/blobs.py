"""GET, HEAD and DELETE /v2/<name>/blobs/<digest>."""

from __future__ import annotations

import os
import re

from starlette.responses import FileResponse, Response, StreamingResponse

from haven.errors import BlobUnknown
from haven.services.blobs import BlobBytes, BlobObject
from haven.web.context import Ctx
from haven.web.responses import API_VERSION, head_response, respond

_SINGLE_RANGE = re.compile(r"^bytes=(\d+-\d*|-\d+)$")
_FORWARD_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
OCTET_STREAM = "application/octet-stream"


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
    if isinstance(blob, BlobObject):
        return await _from_object_store(ctx, blob)
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


async def _from_object_store(ctx: Ctx, blob: BlobObject) -> Response:
    """A blob in an object store: a redirect to a short-lived signed URL, so its bytes do
    not pass through Haven, or (with redirects off) the bytes streamed, ranges included.

    The client sends its Range header again to the store, so only a request whose range
    every store reads alike is redirected: none, or `bytes=a-b` / `bytes=a-` starting
    inside the blob. Haven answers the others itself (suffix ranges, which Azure lacks;
    unsatisfiable ranges, which stores answer differently; malformed ones, ignored)."""
    headers = {
        API_VERSION[0]: API_VERSION[1],
        "Docker-Content-Digest": blob.digest,
        "ETag": f'"{blob.digest}"',
        "Accept-Ranges": "bytes",
    }
    if ctx.head:
        return head_response(200, blob.size, {**headers, "Content-Type": OCTET_STREAM})
    wanted = (ctx.header("range") or "").replace(" ", "")
    settings = ctx.services.settings
    if settings.storage_redirect and _store_reads_alike(wanted, blob.size):
        url = await ctx.services.blobs.download_url(blob.digest, settings.storage_url_seconds)
        if url is not None:
            return Response(status_code=307, headers={**headers, "Location": url})
    first, last = 0, blob.size - 1
    status = 200
    if _SINGLE_RANGE.match(wanted):  # anything else is ignored, as for files
        picked = _byte_range(wanted, blob.size)
        if picked is None:  # as for a file: the status and the size, no body
            headers["Content-Range"] = f"bytes */{blob.size}"
            return respond(416, headers=headers)
        (first, last), status = picked, 206
        headers["Content-Range"] = f"bytes {first}-{last}/{blob.size}"
    length = max(0, last - first + 1)
    headers["Content-Length"] = str(length)
    chunks = ctx.services.blobs.stream(blob.digest, first, length)
    return StreamingResponse(chunks, status_code=status, headers=headers, media_type=OCTET_STREAM)


def _store_reads_alike(wanted: str, size: int) -> bool:
    """No range, or a single `bytes=a-b` / `bytes=a-` with a inside the blob."""
    if not wanted:
        return True
    match = _FORWARD_RANGE.match(wanted)
    return match is not None and int(match[1]) < size and int(match[2] or size) >= int(match[1])


def _byte_range(value: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b`, `bytes=a-` or `bytes=-n` as (first, last) within `size`, or None when
    it selects nothing."""
    start, _, end = value.removeprefix("bytes=").partition("-")
    if not start:
        count = int(end)
        return (max(0, size - count), size - 1) if count > 0 and size > 0 else None
    first = int(start)
    last = min(int(end), size - 1) if end else size - 1
    return (first, last) if first <= last else None


async def delete_blob(ctx: Ctx) -> Response:
    await ctx.services.blobs.delete(ctx.registry_id, ctx.name, ctx.params["digest"])
    return respond(202, headers={"Content-Length": "0"})
