"""GET /v2/<name>/tags/list and GET /v2/_catalog, with n/last paging and Link."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response

from haven.errors import PaginationNumberInvalid
from haven.services.listing import Page
from haven.web.context import Ctx
from haven.web.responses import json_response

UNLIMITED = 2**31 - 1


def _page_size(ctx: Ctx, default: int) -> int:
    value = ctx.query("n")
    if value is None or value == "":
        return default
    limit = ctx.services.settings.max_page_size
    if not value.isdigit() or int(value) > limit:
        raise PaginationNumberInvalid(
            f"n must be a whole number from 0 to {limit}, not {value[:50]!r}"
        )
    return int(value)


def _link(path: str, n: int, page: Page) -> dict[str, str]:
    if not page.more or not page.items:
        return {}
    last = quote(page.items[-1], safe="")
    return {"Link": f'<{path}?n={n}&last={last}>; rel="next"'}


async def list_tags(ctx: Ctx) -> Response:
    n = _page_size(ctx, UNLIMITED)
    page = await ctx.services.listing.tags(ctx.registry_id, ctx.name, ctx.query("last"), n)
    path = f"/v2/{ctx.name}/tags/list"
    return json_response({"name": ctx.name, "tags": page.items}, _link(path, n, page))


async def catalog(ctx: Ctx) -> Response:
    n = _page_size(ctx, ctx.services.settings.default_catalog_page)
    page = await ctx.services.listing.repositories(ctx.registry_id, ctx.query("last"), n)
    return json_response({"repositories": page.items}, _link("/v2/_catalog", n, page))
