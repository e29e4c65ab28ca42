"""Response helpers for the distribution API: the version header and error bodies."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
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
