"""The distribution API's URL table.

Repository names contain slashes, so each route is a regular expression whose `name`
group is greedy and whose last segment is not; names are validated once, here, before
any handler runs (a traversal such as `../` or `%2e%2e` fails the name rules).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from starlette.responses import Response

from haven.web.context import Ctx
from haven.web.v2 import blobs, listing, manifests, referrers, uploads

Handler = Callable[[Ctx], Awaitable[Response]]


async def base(ctx: Ctx) -> Response:
    from haven.web.responses import json_response

    return json_response({})


ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"^/v2/?$"), {"GET": base}),
    (re.compile(r"^/v2/_catalog$"), {"GET": listing.catalog}),
    (re.compile(r"^/v2/(?P<name>.+)/tags/list$"), {"GET": listing.list_tags}),
    (
        re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$"),
        {
            "GET": manifests.get_manifest,
            "PUT": manifests.put_manifest,
            "DELETE": manifests.delete_manifest,
        },
    ),
    (re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$"), {"POST": uploads.start_upload}),
    (
        re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)$"),
        {
            "GET": uploads.upload_status,
            "PATCH": uploads.patch_upload,
            "PUT": uploads.finish_upload,
            "DELETE": uploads.cancel_upload,
        },
    ),
    (
        re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$"),
        {"GET": blobs.get_blob, "DELETE": blobs.delete_blob},
    ),
    (
        re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$"),
        {"GET": referrers.list_referrers},
    ),
]


def match(path: str) -> tuple[dict[str, Handler], dict[str, str]] | None:
    for pattern, methods in ROUTES:
        found = pattern.match(path)
        if found is not None:
            return methods, found.groupdict()
    return None
