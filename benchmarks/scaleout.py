"""Haven in scale-out mode: stateless `haven serve` nodes sharing one PostgreSQL database and
one Azure Blob container (Azurite), and, with two nodes or more, Debian's nginx in front of
them balancing requests round robin.

Every deployment is built from nothing and removed afterwards: a database of its own on the
machine's PostgreSQL (created, then dropped), an Azurite process with its data in the run's
temporary directory (started with `tests/object_stores.py`, the code the test suite
uses), and nginx as a foreground process with its prefix, pid file, temporary paths and logs
in that directory too.

The nodes share what a deployment must share for any node to serve any request: the
database URL, the storage URL, `HAVEN_SECRET_KEY` (it seals the token-signing key kept in
the database, so a token issued by one node verifies on the other), the owner's bootstrap
password (only the first node to start creates the owner), and behind nginx `HAVEN_DOMAIN`
with nginx's port and `HAVEN_TRUSTED_PROXIES`; every other setting keeps its default on
every node. Each node keeps its own data directory, which Haven uses for per-node state
only (its change counters and node identity); nodes start one after the other so that only
the first runs the migrations.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import secrets
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet

from benchmarks.auth import Credentials
from benchmarks.procinfo import (
    find_descendant,
    pids_cpu_seconds,
    tree_cpu_seconds,
    trees_cpu_seconds,
)
from benchmarks.servers import (
    SERVER_CPU_SECONDS,
    CpuParts,
    Server,
    ServerError,
    free_port,
    spawn,
    start_haven,
)

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
NGINX = "/usr/sbin/nginx"
CONTAINER = "registry"
# Requests on one kept-alive connection, client side and upstream side. nginx closes a
# connection after 1,000 by default, which would cut the load generator's connections
# (each makes thousands in a round) and count as errors.
KEEPALIVE_REQUESTS = 10_000_000


def database_name() -> str:
    """A fresh database name; lower case, so it needs no quoting rules beyond the usual."""
    return f"haven_bench_{secrets.token_hex(6)}"


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` (any database of the server) with its database replaced by `name`."""
    base, _, _ = admin_url.partition("?")
    server, _, _ = base.rpartition("/")
    return f"{server}/{name}"


def fernet_key() -> str:
    """A key in the format `HAVEN_SECRET_KEY` takes, made as Haven makes its own."""
    return Fernet.generate_key().decode()


def nginx_config(prefix: Path, port: int, upstreams: list[int], user: str | None) -> str:
    """nginx as the deployment's load balancer: round robin over `upstreams`, HTTP/1.1 with
    kept-alive connections to them, bodies streamed both ways (no buffering to disk), no
    access log, everything it writes under `prefix`.

    `user` (with its group) is what worker processes run as when nginx starts as root:
    the benchmark's own user, so that they may use the run's private directory."""
    servers = "".join(f"        server 127.0.0.1:{p};\n" for p in upstreams)
    temp = "".join(
        f"    {kind}_temp_path {prefix / (kind + '_temp')};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        (f"user {user};\n" if user else "")
        + "worker_processes 1;\n"
        + "daemon off;\n"
        + f"pid {prefix / 'nginx.pid'};\n"
        + f"error_log {prefix / 'error.log'} error;\n"
        + "events {\n    worker_connections 4096;\n}\n"
        + "http {\n"
        + "    access_log off;\n"
        + temp
        + "    upstream haven {\n"
        + servers
        + "        keepalive 128;\n"
        + f"        keepalive_requests {KEEPALIVE_REQUESTS};\n"
        + "    }\n"
        + "    server {\n"
        + f"        listen 127.0.0.1:{port};\n"
        + f"        keepalive_requests {KEEPALIVE_REQUESTS};\n"
        + "        client_max_body_size 0;\n"
        + "        location / {\n"
        + "            proxy_pass http://haven;\n"
        + "            proxy_http_version 1.1;\n"
        + '            proxy_set_header Connection "";\n'
        + "            proxy_set_header Host $http_host;\n"
        + "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        + "            proxy_set_header X-Forwarded-Proto $scheme;\n"
        + "            proxy_request_buffering off;\n"
        + "            proxy_buffering off;\n"
        + "            proxy_read_timeout 600s;\n"
        + "            proxy_send_timeout 600s;\n"
        + "        }\n"
        + "    }\n"
        + "}\n"
    )


def _worker_user() -> str | None:
    """`user name group` for nginx's workers: this process's own, when it is root."""
    if os.geteuid() != 0:
        return None  # nginx ignores `user` unless it starts as root
    return f"{pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name}"


def _nginx_version() -> str:
    try:
        done = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stderr.strip().rpartition("/")[2] or "?"


def _azurite_version() -> str:
    with contextlib.suppress(ImportError, OSError, ValueError, KeyError):
        from tests.object_stores import AZURITE

        package = AZURITE.resolve().parents[3] / "package.json"  # .../azurite/dist/src/blob
        return str(json.loads(package.read_text())["version"])
    return "?"


class ScaleOut:
    """One scale-out deployment: its nodes, the load balancer in front of two or more, and
    the Azurite process and database it was given. Satisfies `servers.Deployment`."""

    def __init__(self, name: str, workdir: Path, admin_url: str) -> None:
        self.name = name
        self.description = ""
        self.credentials: Credentials | None = None
        self.workdir = workdir
        self.nodes: list[Server] = []
        self.balancer: Server | None = None
        self._admin_url = admin_url
        self._admin: psycopg.Connection[Any] | None = None
        self._database: str | None = None
        self._azurite: contextlib.ExitStack | None = None
        self._azurite_pid: int | None = None
        self._stopped = False

    # -- Deployment ----------------------------------------------------------------------

    @property
    def front(self) -> Server:
        """The process clients talk to: the load balancer, or the only node."""
        if self.balancer is not None:
            return self.balancer
        return self.nodes[0]

    @property
    def host(self) -> str:
        return self.front.host

    @property
    def port(self) -> int:
        return self.front.port

    @property
    def base_url(self) -> str:
        return self.front.base_url

    def cpu(self) -> CpuParts:
        roots = {node.name: node.pid for node in self.nodes}
        if self.balancer is not None:
            roots["nginx"] = self.balancer.pid
        if self._azurite_pid is not None:
            roots["azurite"] = self._azurite_pid
        cpu = trees_cpu_seconds(roots)
        registry = {node.name: cpu.pop(node.name) for node in self.nodes}
        cpu["postgres"] = pids_cpu_seconds(self._backends())
        return CpuParts(registry, cpu)

    def registry_pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def stop(self) -> None:
        """Stop everything that was started, in reverse, and drop the database. The CPU
        of the parts that `Server.stop` does not see (Azurite, the database's backends)
        is added to the run's account first."""
        if self._stopped:
            return
        self._stopped = True
        if self._admin is not None and self._database is not None:
            with contextlib.suppress(psycopg.Error):
                SERVER_CPU_SECONDS.append(pids_cpu_seconds(self._backends()))
        if self.balancer is not None:
            self.balancer.stop()
        for node in reversed(self.nodes):
            node.stop()
        if self._azurite is not None:
            if self._azurite_pid is not None:
                SERVER_CPU_SECONDS.append(tree_cpu_seconds(self._azurite_pid))
            self._azurite.close()
        if self._admin is not None:
            if self._database is not None:
                with contextlib.suppress(psycopg.Error):
                    self._admin.execute(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
            self._admin.close()

    # -- parts -------------------------------------------------------------------------

    def start(self, nodes: int, workers: int, command: list[str]) -> None:
        """Azurite, the database, the nodes one by one, then nginx if there are two or
        more. The caller stops the deployment if this raises."""
        storage = self._start_azurite()
        database = self._create_database()
        self.credentials = Credentials("owner", secrets.token_urlsafe(18))
        shared = {
            "HAVEN_DATABASE_URL": database,
            "HAVEN_STORAGE": storage,
            "HAVEN_SECRET_KEY": fernet_key(),
        }
        front_port = free_port() if nodes > 1 else None
        if front_port is not None:
            # Behind the balancer, login servers carry the port clients use, not each
            # node's own, and the balancer's forwarded headers are believed.
            shared["HAVEN_DOMAIN"] = f"localhost:{front_port}"
            shared["HAVEN_TRUSTED_PROXIES"] = "127.0.0.1"
        for n in range(1, nodes + 1):
            node = "haven" if nodes == 1 else f"haven-{n}"
            self.nodes.append(
                start_haven(
                    self.workdir / node,
                    workers,
                    command,
                    shared,
                    name=node,
                    credentials=self.credentials,
                    description=f"haven serve --workers {workers}",
                )
            )
        front, versions = "direct", f"PostgreSQL {self._server_version()}, Azurite "
        versions += _azurite_version()
        if front_port is not None:
            self._start_balancer(front_port)
            front = "behind nginx (round robin, kept-alive upstream connections)"
            versions += f", nginx {_nginx_version()}"
        self.description = (
            f"{nodes} x haven serve --workers {workers} {front}; PostgreSQL metadata, "
            f"Azure Blob content on Azurite, blob GETs redirected ({versions})"
        )

    def _server_version(self) -> str:
        assert self._admin is not None
        row = self._admin.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "?"

    def _backends(self) -> list[int]:
        """PostgreSQL server processes serving this deployment's database now."""
        if self._admin is None or self._database is None:
            return []
        rows = self._admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self._database,)
        ).fetchall()
        return [int(row[0]) for row in rows]

    def _start_azurite(self) -> str:
        """Azurite on a free port; returns the `HAVEN_STORAGE` URL of a container there."""
        try:
            from tests.object_stores import ServerUnavailable, azurite
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ServerError(
                f"scale-out mode needs tests/object_stores.py and its imports ({exc}); run "
                "the benchmark with the repository's .venv/bin/python from the repository root"
            ) from exc
        location = self.workdir / "azurite"
        stack = contextlib.ExitStack()
        try:
            running = stack.enter_context(azurite(location))
        except ServerUnavailable as exc:
            raise ServerError(f"{self.name}: {exc}") from exc
        self._azurite = stack
        self._azurite_pid = find_descendant(os.getpid(), str(location))
        return running.url(CONTAINER)

    def _create_database(self) -> str:
        try:
            self._admin = psycopg.connect(self._admin_url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise ServerError(
                f"{self.name}: cannot reach PostgreSQL at {self._admin_url} ({exc}); scale-out "
                "mode needs the machine's PostgreSQL (trust authentication for user postgres) "
                "or --postgres-url"
            ) from exc
        name = database_name()
        self._admin.execute(f'CREATE DATABASE "{name}"')
        self._database = name
        return database_url(self._admin_url, name)

    def _start_balancer(self, port: int) -> Server:
        if not Path(NGINX).exists():
            raise ServerError(f"{NGINX} not found: apt-get install -y nginx")
        prefix = self.workdir / "nginx"
        prefix.mkdir(parents=True)
        config = prefix / "nginx.conf"
        config.write_text(
            nginx_config(prefix, port, [node.port for node in self.nodes], _worker_user())
        )
        argv = [NGINX, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")]
        proc = spawn("nginx", argv, prefix, dict(os.environ))
        balancer = Server(
            "nginx",
            proc,
            port,
            prefix,
            prefix / "nginx.log",
            "nginx",
            self.credentials,
        )
        self.balancer = balancer
        balancer.wait_ready()
        return balancer


def start_scaleout(
    workdir: Path,
    name: str,
    nodes: int,
    workers: int,
    command: list[str],
    admin_url: str | None = None,
) -> ScaleOut:
    """Start a deployment of `nodes` Haven nodes with `workers` workers each (and nginx in
    front when there are two or more). `admin_url` is a database of the PostgreSQL server
    to connect to while creating the deployment's own (default $HAVEN_BENCH_POSTGRES_URL,
    else DEFAULT_POSTGRES_URL). On failure everything started so far is stopped."""
    if nodes < 1:
        raise ValueError("a deployment has at least one node")
    admin_url = admin_url or os.environ.get("HAVEN_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    workdir.mkdir(parents=True, exist_ok=True)
    deployment = ScaleOut(name, workdir, admin_url)
    try:
        deployment.start(nodes, workers, command)
    except BaseException:
        deployment.stop()
        raise
    return deployment
