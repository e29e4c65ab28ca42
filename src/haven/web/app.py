"""The ASGI application: one factory builds the stores, the services and the router."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from haven.auth.jwts import KeyRing
from haven.auth.secrets import SecretBox, load_or_create_key
from haven.config import Settings
from haven.epoch import ChangeCounter
from haven.errors import Denied, RegistryError, Unsupported
from haven.oci.names import validate_name
from haven.services.access import AccessService, Caller
from haven.services.blobs import BlobService
from haven.services.bootstrap import ensure_owner, ensure_signing_key
from haven.services.gc import GarbageCollector
from haven.services.listing import ListingService
from haven.services.management import SYSTEM_SCOPE_MAPS, ManagementService
from haven.services.manifest_cache import ManifestCache
from haven.services.manifests import ManifestService
from haven.services.purge import PurgeService
from haven.services.registries import RegistryResolver
from haven.services.tasks import TaskService
from haven.services.uploads import UploadService
from haven.store.access import AccessStore
from haven.store.change_feed import ChangeFeed, node_id
from haven.store.db import Database
from haven.store.metadata import MetadataStore
from haven.store.repositories import RepositoryStore
from haven.store.stores import open_store
from haven.tasks.agent import TaskAgent
from haven.tasks.runner import ImageExporter, TaskRunner
from haven.web import acr, api
from haven.web.auth import FailedLogins, authenticate, challenge, client_address, require
from haven.web.context import Ctx
from haven.web.oauth2 import TokenEndpoints
from haven.web.ratelimit import RateLimiter
from haven.web.responses import drain, error_response
from haven.web.v2 import routes as v2_routes
from haven.web.v2.routes import SIGNED_IN, Endpoint

log = logging.getLogger("haven")
READY_TIMEOUT = 5.0


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
    access: AccessService
    failures: FailedLogins
    tokens: TokenEndpoints
    management: ManagementService
    limits: RateLimiter
    repositories: RepositoryStore
    gc: GarbageCollector
    tasks: TaskService


class HavenApp:
    """The whole HTTP surface of one Haven process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.content_changes = ChangeCounter(settings.data_dir / "content.epoch")
        self.db = Database(
            settings.effective_database_url, settings.db_threads, self.content_changes
        )
        self.metadata = MetadataStore(self.db)
        self.content = open_store(settings)
        self.access_store = AccessStore(self.db)
        self.io_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="haven-io")
        self.services: Services | None = None
        self._background: list[asyncio.Task[None]] = []
        self._feed: ChangeFeed | None = None

    async def startup(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir / "secret.key"))

        def prepare() -> int:
            ensure_signing_key(self.access_store, box)
            ensure_owner(self.access_store, settings.bootstrap_password)
            name = settings.default_registry
            registry_id = self.metadata.ensure_registry_sync(name, [settings.login_server(name)])
            self.access_store.ensure_system_maps_sync(registry_id, SYSTEM_SCOPE_MAPS)
            return registry_id

        registry_id = await loop.run_in_executor(None, prepare)
        changes = ChangeCounter(settings.data_dir / "access.epoch")
        if self.db.postgres:
            counters = {"content": self.content_changes, "access": changes}
            self._feed = ChangeFeed(self.db.url, node_id(settings.data_dir), counters)
            self._feed.start()
        registries = RegistryResolver(self.metadata, registry_id, changes)
        await registries.refresh()
        access = AccessService(self.access_store, KeyRing(box), box, changes)
        failures = FailedLogins()
        repositories = RepositoryStore(self.db)
        collector = GarbageCollector(
            self.db,
            self.metadata,
            self.content,
            link_grace_seconds=settings.gc_link_grace_seconds,
            review_delay_seconds=settings.gc_review_delay_seconds,
        )
        blobs = BlobService(self.metadata, self.content)
        manifests = ManifestService(
            self.metadata, self.content, self.io_pool, ManifestCache(self.content_changes)
        )
        purger = PurgeService(self.db, self.metadata, repositories)
        management = ManagementService(self.access_store, access, settings, collector, purger)
        self.services = Services(
            settings=settings,
            registries=registries,
            blobs=blobs,
            uploads=UploadService(self.metadata, self.content, self.io_pool),
            manifests=manifests,
            listing=ListingService(self.metadata),
            access=access,
            failures=failures,
            tokens=TokenEndpoints(access, failures, registries.resolve),
            management=management,
            repositories=repositories,
            gc=collector,
            tasks=TaskService(self.db, management, settings),
            limits=RateLimiter(
                settings.rate_limit_anonymous,
                settings.rate_limit_principal,
                settings.rate_limit_registry,
                settings.workers,
            ),
        )
        if settings.gc_interval_seconds > 0:
            passes = collector.run_forever(settings.gc_interval_seconds)
            self._background.append(asyncio.create_task(passes))
        if settings.task_concurrency > 0:
            runner = TaskRunner(
                ImageExporter(manifests, blobs),
                purger,
                settings.task_buildah if settings.task_containers else None,
            )
            agent = TaskAgent(
                self.db,
                runner,
                settings.data_dir / "tasks",
                settings.login_server,
                settings.task_concurrency,
            )
            self._background.append(asyncio.create_task(agent.run_forever()))

    async def shutdown(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._feed is not None:
            await asyncio.to_thread(self._feed.stop)
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
            response = await self._data_plane(scope, receive, path, v2_routes.match)
        elif path.startswith("/acr/v1/"):
            response = await self._data_plane(scope, receive, path, acr.match)
        elif path.startswith("/oauth2/"):
            response = await self._oauth2(scope, receive, path)
        elif path.startswith("/api/"):
            response = await self._api(scope, receive)
        elif path == "/healthz":
            response = PlainTextResponse("ok")
        elif path == "/readyz":
            response = await self._ready()
        else:
            response = PlainTextResponse("not found", status_code=404)
        await response(scope, receive, send)

    async def _ready(self) -> Response:
        """Whether this node can serve: its database answers and its store takes writes.
        `/healthz` only says the process is up (a liveness probe)."""
        problems = []
        try:
            await asyncio.wait_for(self.db.read(lambda c: c.value("SELECT 1")), READY_TIMEOUT)
        except Exception as exc:
            problems.append(f"database: {type(exc).__name__}: {exc}"[:300])
        try:
            loop = asyncio.get_running_loop()
            check = loop.run_in_executor(self.io_pool, self.content.check_sync)
            await asyncio.wait_for(check, READY_TIMEOUT)
        except Exception as exc:
            problems.append(f"storage: {type(exc).__name__}: {exc}"[:300])
        if problems:
            return PlainTextResponse("\n".join(problems) + "\n", status_code=503)
        return PlainTextResponse("ok")

    async def _api(self, scope: Scope, receive: Receive) -> Response:
        services = self.services
        assert services is not None, "startup() has not run"
        try:
            request = Request(scope, receive)
            response = await api.handle(
                services.management,
                services.tasks,
                services.repositories,
                services.access,
                services.failures,
                request,
            )
            return await drain(request, response) if response.status_code >= 400 else response
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            return api.error(500, "InternalError", "internal error; see the server log")

    async def _oauth2(self, scope: Scope, receive: Receive, path: str) -> Response:
        services = self.services
        assert services is not None, "startup() has not run"
        request = Request(scope, receive)
        method = request.method
        try:
            service = request.query_params.get("service") if method == "GET" else None
            registry_id = await services.registries.resolve(service or request.headers.get("host"))
            address = client_address(request, services.settings.trusted_proxies)
            if not await services.access.address_allowed(registry_id, address):
                raise Denied(
                    f"client address {address} is not allowed by the registry's network rules"
                )
            if path == "/oauth2/token" and method == "GET":
                return await services.tokens.get_token(request, registry_id, address)
            if path == "/oauth2/token" and method == "POST":
                return await services.tokens.post_token(request, registry_id, address)
            if path == "/oauth2/exchange" and method == "POST":
                return await services.tokens.exchange(request, registry_id)
            return PlainTextResponse("not found", status_code=404)
        except RegistryError as error:
            return error_response(error)
        except Exception:
            log.exception("unhandled error on %s %s", method, path)
            return error_response(RegistryError("internal error; see the server log"))

    async def _data_plane(
        self,
        scope: Scope,
        receive: Receive,
        path: str,
        match: Callable[[str], tuple[dict[str, Endpoint], dict[str, str]] | None],
    ) -> Response:
        """The distribution API and ACR's repository API: route, validate the name,
        check network rules, authenticate, apply rate limits, authorise, handle."""
        services = self.services
        assert services is not None, "startup() has not run"
        method: str = scope["method"]
        head = method == "HEAD"
        request = Request(scope, receive)
        try:
            found = match(path)
            if found is None:
                raise NotFound(f"no registry API endpoint at {path[:200]}")
            methods, params = found
            endpoint = methods.get("GET" if head else method)
            if endpoint is None:
                raise Unsupported(
                    f"{method} is not allowed here; allowed: {', '.join(sorted(methods))}"
                )
            name = params.get("name")
            if name is not None:
                validate_name(name)
            registry_id = await services.registries.resolve(request.headers.get("host"))
            trusted = services.settings.trusted_proxies
            address = client_address(request, trusted)
            access = services.access
            # A client repeats the same request shape (credentials, repository, action)
            # many times; once admitted, it is admitted again by one lookup until access
            # changes or its credentials lapse.
            shape = (
                registry_id,
                request.headers.get("authorization"),
                address,
                name,
                endpoint.action,
            )
            caller = access.admitted(shape)
            if caller is None:
                generation = await access.generation()
                caller = await self._admit(request, registry_id, address, name, endpoint.action)
                access.admit(generation, shape, caller)
            else:
                services.limits.check(
                    registry_id, None if caller.anonymous else caller.principal.key, address
                )
            return await endpoint.handler(Ctx(request, services, registry_id, params, caller))
        except RegistryError as error:
            return await drain(request, error_response(error, head))
        except ClientDisconnect:
            return Response(status_code=400)
        except Exception:
            log.exception("unhandled error on %s %s", method, path)
            return error_response(RegistryError("internal error; see the server log"), head)

    async def _admit(
        self,
        request: Request,
        registry_id: int,
        address: str | None,
        repository: str | None,
        action: str,
    ) -> Caller:
        """The caller, if the registry's network rules, the rate limits and the caller's
        rights allow `action` on `repository`; raises the refusal otherwise."""
        services = self.services
        assert services is not None, "startup() has not run"
        access, trusted = services.access, services.settings.trusted_proxies
        if not await access.address_allowed(registry_id, address):
            raise Denied(f"client address {address} is not allowed by the registry's network rules")
        caller = await authenticate(
            access, services.failures, request, registry_id, address, trusted
        )
        # Refusals count against the limits too: a flood of anonymous probes is limited.
        services.limits.check(
            registry_id, None if caller.anonymous else caller.principal.key, address
        )
        if action == SIGNED_IN:
            # Any valid token will do, an anonymous one too (anonymous pull).
            if caller.anonymous and caller.token_grants is None:
                raise challenge(request, trusted, None, None, "authentication required")
        else:
            await require(access, caller, request, trusted, registry_id, repository, action)
        return caller


def create_app(settings: Settings | None = None) -> HavenApp:
    return HavenApp(settings or Settings())
