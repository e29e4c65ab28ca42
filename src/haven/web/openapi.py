"""The management API's OpenAPI document, built from the route table itself, so that
every endpoint is described and none is described that does not exist."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from haven import __version__
from haven.web import api

_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_ERROR = {
    "description": 'Refused: `{"error": {"code", "message"}}`',
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _template(pattern: str) -> tuple[str, list[str]]:
    """`^/api/registries/(?P<registry>[^/]+)$` → `/api/registries/{registry}`."""
    raw = pattern.removeprefix("^").removesuffix("$")
    return _GROUP.sub(lambda m: "{" + m.group(1) + "}", raw), _GROUP.findall(raw)


@cache
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, pattern, handler, status in api.ROUTES:
        path, names = _template(pattern.pattern)
        operation: dict[str, Any] = {
            "operationId": handler.__name__,
            "summary": (handler.__doc__ or handler.__name__).strip(),
            "parameters": [
                {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                for n in names
            ],
            "responses": {
                str(status): {"description": "No content"}
                if status == 204
                else {
                    "description": "OK",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "400": _ERROR,
                "401": _ERROR,
                "403": _ERROR,
                "404": _ERROR,
            },
        }
        if method in ("POST", "PATCH"):
            operation["requestBody"] = {
                "required": False,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Haven management API",
            "version": __version__,
            "description": "Registries, identities, roles, tokens and settings of a Haven "
            "deployment. Authenticate with a bearer token from POST /oauth2/token "
            "(service=management) or HTTP Basic identity credentials.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                            "required": ["code", "message"],
                        }
                    },
                }
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "basic": {"type": "http", "scheme": "basic"},
            },
        },
        "security": [{"bearer": []}, {"basic": []}],
    }
