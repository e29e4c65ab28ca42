"""`haven serve`: prepare the data directory and database, then run the workers."""

from __future__ import annotations

import logging
import os

from haven.config import Settings


def prepare(settings: Settings) -> None:
    """Everything that must happen once, before any worker takes a request."""
    from haven.store.db import Database
    from haven.store.metadata import MetadataStore
    from haven.store.migrate import upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings)
    db = Database(settings.effective_database_url, threads=1)
    try:
        MetadataStore(db).ensure_registry_sync(settings.default_registry, [])
    finally:
        db.close()


def serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    prepare(settings)
    os.environ.update(settings.to_environment())
    where = f"{settings.host}:{settings.port}"
    print(
        f"Haven is serving http://{where} (data: {settings.data_dir}, "
        f"{settings.workers} worker(s)); try: podman push --tls-verify=false IMAGE {where}/NAME",
        flush=True,
    )
    Granian(
        "haven.web.app:create_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        log_access=False,
        log_level=settings.log_level.lower(),  # type: ignore[arg-type]
        backlog=2048,
    ).serve()
