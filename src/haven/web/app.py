"""The ASGI application: one factory builds the stores, the services and the router."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from haven.config import Settings
from haven.errors import RegistryError, Unsupported
from haven.oci.names import validate_name
from haven.services.blobs import BlobService
from haven.services.listing import ListingService
from haven.services.manifests import ManifestService
from haven.services.registries import RegistryResolver
from haven.services.uploads import UploadService
from haven.store.content import FilesystemBlobStore
from haven.store.db import Database
from haven.store.metadata import MetadataStore
from haven.web.context import Ctx
from haven.web.responses import error_response
from haven.web.v2.routes import match

log = logging.getLogger("haven")


class NotFound(RegistryError):
    code, status, default_message = "NOT_FOUND", 404, "no such endpoint"


@dataclass(slots=True)
class Services:
    settings: Settings
    registries: RegistryResolver
    blobs: BlobService
    uploads: UploadService
    manifests: ManifestService
    listing: ListingService


class HavenApp:
    """The whole HTTP surface of one Haven process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.effective_database_url, settings.db_threads)
        self.metadata = MetadataStore(self.db)
        self.content = FilesystemBlobStore(settings.data_dir)
        self.io_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="haven-io")
        self.services: Services | None = None

    async def startup(self) -> None:
        loop = asyncio.get_running_loop()
        registry_id = await loop.run_in_executor(
            None, self.metadata.ensure_registry_sync, self.settings.default_registry, []
        )
        registries = RegistryResolver(self.metadata, registry_id)
        await registries.refresh()
        self.services = Services(
            settings=self.settings,
            registries=registries,
            blobs=BlobService(self.metadata, self.content),
            uploads=UploadService(self.metadata, self.content, self.io_pool),
            manifests=ManifestService(self.metadata, self.io_pool),
            listing=ListingService(self.metadata),
        )

    async def shutdown(self) -> None:
        self.io_pool.shutdown(wait=False, cancel_futures=True)
        self.db.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith("/v2"):
            response = await self._v2(scope, receive, path)
        elif path in ("/healthz", "/readyz"):
            response = PlainTextResponse("ok")
        else:
            response = PlainTextResponse("not found", status_code=404)
        await response(scope, receive, send)

    async def _v2(self, scope: Scope, receive: Receive, path: str) -> Response:
        services = self.services
        assert services is not None, "startup() has not run"
        method: str = scope["method"]
        head = method == "HEAD"
        try:
            found = match(path)
            if found is None:
                raise NotFound(f"no distribution API endpoint at {path[:200]}")
            methods, params = found
            handler = methods.get("GET" if head else method)
            if handler is None:
                raise Unsupported(
                    f"{method} is not allowed here; allowed: {', '.join(sorted(methods))}"
                )
            if "name" in params:
                validate_name(params["name"])
            request = Request(scope, receive)
            registry_id = await services.registries.resolve(request.headers.get("host"))
            return await handler(Ctx(request, services, registry_id, params))
        except RegistryError as error:
            return error_response(error, head)
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception:
            log.exception("unhandled error on %s %s", method, path)
            return error_response(RegistryError("internal error; see the server log"), head)


def create_app(settings: Settings | None = None) -> HavenApp:
    return HavenApp(settings or Settings())
