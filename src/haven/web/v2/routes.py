"""The distribution API's URL table: for each route and method, the handler and the
action the caller must hold.

Repository names contain slashes, so each route is a regular expression whose `name`
group is greedy and whose last segment is not; names are validated once, before any
handler runs (a traversal such as `../` or `%2e%2e` fails the name rules).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from starlette.responses import Response

from haven.auth import roles
from haven.web.context import Ctx
from haven.web.responses import json_response
from haven.web.v2 import blobs, listing, manifests, referrers, uploads

Handler = Callable[[Ctx], Awaitable[Response]]

# The action of the version check: any caller the registry recognises.
SIGNED_IN = "signed-in"


class Endpoint(NamedTuple):
    handler: Handler
    action: str


async def base(ctx: Ctx) -> Response:
    return json_response({})


ROUTES: list[tuple[re.Pattern[str], dict[str, Endpoint]]] = [
    (re.compile(r"^/v2/?$"), {"GET": Endpoint(base, SIGNED_IN)}),
    (re.compile(r"^/v2/_catalog$"), {"GET": Endpoint(listing.catalog, roles.CATALOG)}),
    (
        re.compile(r"^/v2/(?P<name>.+)/tags/list$"),
        {"GET": Endpoint(listing.list_tags, roles.META_READ)},
    ),
    (
        re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$"),
        {
            "GET": Endpoint(manifests.get_manifest, roles.READ),
            "PUT": Endpoint(manifests.put_manifest, roles.WRITE),
            "DELETE": Endpoint(manifests.delete_manifest, roles.DELETE),
        },
    ),
    (
        re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$"),
        {"POST": Endpoint(uploads.start_upload, roles.WRITE)},
    ),
    (
        re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)$"),
        {
            "GET": Endpoint(uploads.upload_status, roles.WRITE),
            "PATCH": Endpoint(uploads.patch_upload, roles.WRITE),
            "PUT": Endpoint(uploads.finish_upload, roles.WRITE),
            "DELETE": Endpoint(uploads.cancel_upload, roles.WRITE),
        },
    ),
    (
        re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$"),
        {
            "GET": Endpoint(blobs.get_blob, roles.READ),
            "DELETE": Endpoint(blobs.delete_blob, roles.DELETE),
        },
    ),
    (
        re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$"),
        {"GET": Endpoint(referrers.list_referrers, roles.META_READ)},
    ),
]


def match(path: str) -> tuple[dict[str, Endpoint], dict[str, str]] | None:
    for pattern, methods in ROUTES:
        found = pattern.match(path)
        if found is not None:
            return methods, found.groupdict()
    return None
