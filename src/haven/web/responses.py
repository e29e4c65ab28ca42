"""Response helpers for the distribution API: the version header and error bodies."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from haven.errors import RegistryError

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")


def respond(
    status: int,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    media_type: str | None = None,
) -> Response:
    all_headers = {API_VERSION[0]: API_VERSION[1]}
    if headers:
        all_headers.update(headers)
    return Response(body, status_code=status, headers=all_headers, media_type=media_type)


def json_response(value: object, headers: Mapping[str, str] | None = None) -> Response:
    return respond(200, orjson.dumps(value), headers, "application/json")


def head_response(status: int, length: int, headers: Mapping[str, str]) -> Response:
    """A HEAD answer: the entity's headers and Content-Length, no body."""
    response = respond(status, b"", headers)
    response.headers["content-length"] = str(length)
    return response


def error_response(error: RegistryError, head: bool = False) -> Response:
    if head:
        return respond(error.status, b"", error.headers)
    return respond(error.status, orjson.dumps(error.body()), error.headers, "application/json")


DRAIN_LIMIT = 64 * 1024 * 1024


async def drain(request: Request, response: Response) -> Response:
    """Read what is left of a refused request's body before answering.

    A client still sending its body when the answer comes and the connection closes
    sees a reset, not the 401 or 403 it should act on. Up to DRAIN_LIMIT is read and
    dropped; past that the connection is closed after the answer.
    """
    if request.method in ("GET", "HEAD", "OPTIONS") or not _has_body(request):
        return response
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > DRAIN_LIMIT:
                response.headers["Connection"] = "close"
                break
    except (RuntimeError, ClientDisconnect):  # already read, or the client went away
        pass
    return response


def _has_body(request: Request) -> bool:
    headers = request.headers
    length = headers.get("content-length")
    return (length is not None and length != "0") or "chunked" in headers.get(
        "transfer-encoding", ""
    ).lower()
