"""`--debug`: every HTTP request and response written to stderr, secrets blanked out.

The Authorization header is always redacted, and so are the values of password and token
fields in form and JSON bodies: debug output ends up pasted into issues.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode

import httpx

REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
SECRET_FIELDS = frozenset(
    {
        "password",
        "refresh_token",
        "access_token",
        "token",
        "accesstoken",
        "refreshtoken",
        "value",
        "client_secret",
    }
)
_MAX_BODY = 8192


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED
            if key.lower() in SECRET_FIELDS and isinstance(value[key], str)
            else _redact_json(value[key])
            for key in value
        }
    if isinstance(value, list):
        return [_redact_json(item) for item in value]
    return value


def redact_body(body: bytes, content_type: str) -> str:
    """`body` as text for the log, with secret fields replaced by a marker."""
    if not body:
        return ""
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.dumps(_redact_json(json.loads(text)))
        except ValueError:
            return text[:_MAX_BODY]
    if "x-www-form-urlencoded" in content_type:
        pairs = parse_qsl(text, keep_blank_values=True)
        return urlencode([(k, REDACTED if k.lower() in SECRET_FIELDS else v) for k, v in pairs])
    return text[:_MAX_BODY] + (" …" if len(text) > _MAX_BODY else "")


def _headers(headers: httpx.Headers) -> list[str]:
    return [
        f"    {name}: {REDACTED if name.lower() in SECRET_HEADERS else value}"
        for name, value in headers.multi_items()
    ]


class HttpLog:
    """httpx event hooks that print each exchange to `stream` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def _write(self, lines: list[str]) -> None:
        stream = self.stream or sys.stderr
        for line in lines:
            stream.write(f"DEBUG: {line}\n")
        stream.flush()

    def request(self, request: httpx.Request) -> None:
        body = redact_body(request.read(), request.headers.get("content-type", ""))
        self._write(
            [
                f"Request: {request.method} {request.url}",
                "Request headers:",
                *_headers(request.headers),
                f"Request body: {body}" if body else "Request body: (empty)",
            ]
        )

    def response(self, response: httpx.Response) -> None:
        body = redact_body(response.read(), response.headers.get("content-type", ""))
        self._write(
            [
                f"Response status: {response.status_code} {response.reason_phrase}",
                "Response headers:",
                *_headers(response.headers),
                f"Response body: {body}" if body else "Response body: (empty)",
            ]
        )

    def hooks(self) -> dict[str, list[Any]]:
        return {"request": [self.request], "response": [self.response]}
