"""GET /v2/<name>/referrers/<digest>: the manifests whose subject is <digest>."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from haven.oci.manifest import OCI_INDEX
from haven.web.context import Ctx
from haven.web.responses import respond


async def list_referrers(ctx: Ctx) -> Response:
    artifact_type = ctx.query("artifactType")
    found = await ctx.services.manifests.referrers(
        ctx.registry_id, ctx.name, ctx.params["digest"], artifact_type
    )
    descriptors: list[dict[str, Any]] = []
    for referrer in found:
        descriptor: dict[str, Any] = {
            "mediaType": referrer.media_type,
            "digest": referrer.digest,
            "size": referrer.size,
        }
        if referrer.artifact_type:
            descriptor["artifactType"] = referrer.artifact_type
        if referrer.annotations:
            descriptor["annotations"] = referrer.annotations
        descriptors.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type is not None else None
    return respond(200, orjson.dumps(index), headers, OCI_INDEX)
