"""The management API describes itself at /api/openapi.json, every endpoint included."""

from __future__ import annotations

import re

import httpx

from haven.web import api


async def test_the_openapi_document_is_public_and_lists_every_management_endpoint(
    anonymous: httpx.AsyncClient,
):
    resp = await anonymous.get("/api/openapi.json")
    assert resp.status_code == 200
    document = resp.json()
    assert document["openapi"].startswith("3.")
    described = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    for method, pattern, handler, _ in api.ROUTES:
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern.pattern.strip("^$"))
        assert (method, path) in described, f"{method} {path} ({handler.__name__})"
        operation = document["paths"][path][method.lower()]
        assert operation["summary"] and not operation["summary"].startswith("_")
    assert len(described) == len(api.ROUTES)


async def test_the_described_endpoints_answer(client: httpx.AsyncClient):
    document = (await client.get("/api/openapi.json")).json()
    for path, operations in document["paths"].items():
        if "get" in operations and "{" not in path:
            assert (await client.get(path)).status_code == 200, path
