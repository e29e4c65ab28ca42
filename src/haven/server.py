"""`haven serve`: prepare the data directory and database, then run the workers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

from haven.config import Settings


def prepare(settings: Settings) -> str | None:
    """Everything that must happen once, before any worker takes a request: the data
    directory, the schema, the secret key, a signing key and the deployment owner.

    Returns the owner's password when it was generated now (to be shown once).
    """
    from haven.auth.secrets import SecretBox, load_or_create_key
    from haven.services.bootstrap import ensure_owner, ensure_signing_key
    from haven.store.access import AccessStore
    from haven.store.db import Database
    from haven.store.migrate import nodes_in_turn, upgrade

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    box = SecretBox(load_or_create_key(settings.secret_key, settings.data_dir / "secret.key"))
    with nodes_in_turn(settings.effective_database_url):
        upgrade(settings)
        db = Database(settings.effective_database_url, threads=1)
        try:
            store = AccessStore(db)
            ensure_signing_key(store, box)
            return ensure_owner(store, settings.bootstrap_password)
        finally:
            db.close()


def prepare_in_child(settings: Settings) -> str | None:
    """`prepare` in a short-lived child process: the migration and hashing libraries then
    never load into this process, whose memory every worker starts from."""
    env = os.environ | settings.to_environment()
    if settings.bootstrap_password:
        env["HAVEN_BOOTSTRAP_PASSWORD"] = settings.bootstrap_password
    done = subprocess.run(
        [sys.executable, "-m", "haven.server"], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"preparing the data directory and database failed ({done.returncode})")
    generated: str | None = json.loads(done.stdout.strip().splitlines()[-1])["generated"]
    return generated


def serve(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces, SSLProtocols

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    generated = prepare_in_child(settings)
    os.environ.update(settings.to_environment())
    where = f"{settings.host}:{settings.port}"
    scheme = "https" if settings.tls_cert else "http"
    print(
        f"Haven is serving {scheme}://{where} (data: {settings.data_dir}, "
        f"{settings.workers} worker(s))",
        flush=True,
    )
    if generated is not None:
        print(
            "\nCreated the deployment owner. Its password is shown this once:\n"
            f"  user: owner\n  password: {generated}\n"
            f"Sign the CLI in:  haven account login --server {scheme}://{where} "
            f"-u owner -p '{generated}'\n"
            f"Or push directly: podman login {where} -u owner\n",
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
        ssl_cert=settings.tls_cert,
        ssl_key=settings.tls_key,
        ssl_protocol_min=SSLProtocols.tls12,
    ).serve()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    print(json.dumps({"generated": prepare(Settings())}))
