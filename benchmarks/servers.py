"""Start and stop the registries under test, each on a free loopback port and a fresh,
empty data directory, so that every run compares like with like and leaves nothing behind.

All log at level "error" with no access log: the benchmark measures serving, not writing
log lines, and the same rule applies to every side. (Haven in scale-out mode, several
processes on shared services, is started by `benchmarks.scaleout`.)
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from benchmarks.auth import Credentials
from benchmarks.procinfo import tree_cpu_seconds

# CPU time of every server stopped so far, for the run's "who else used the CPU" check.
SERVER_CPU_SECONDS: list[float] = []

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_BINARY = "/usr/bin/docker-registry"
READY_TIMEOUT_S = 60.0


class ServerError(RuntimeError):
    """A registry would not start; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class CpuParts:
    """CPU seconds a deployment has used so far, by part.

    `registry` holds the registry's own processes (Haven's nodes, or docker-registry);
    `support` what it runs on when that is started for it too (load balancer, object
    store, database), so that no CPU of the deployment passes for "other work"."""

    registry: dict[str, float]
    support: dict[str, float] = field(default_factory=dict)

    def total(self) -> float:
        return sum(self.registry.values()) + sum(self.support.values())

    def by_part(self) -> dict[str, float]:
        return {**self.registry, **self.support}


class Deployment(Protocol):
    """A registry under test as the scenarios see it, however many processes it runs."""

    name: str
    description: str
    credentials: Credentials | None

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def base_url(self) -> str: ...

    def cpu(self) -> CpuParts:
        """CPU used so far by every process of the deployment."""
        ...

    def registry_pids(self) -> list[int]:
        """Roots of the registry's own process trees (for memory figures)."""
        ...

    def stop(self) -> None: ...


@dataclass
class Server:
    """One running registry process (and, for Haven, its workers)."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    description: str
    credentials: Credentials | None = None  # None: an open registry

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> CpuParts:
        return CpuParts({self.name: tree_cpu_seconds(self.pid)})

    def registry_pids(self) -> list[int]:
        return [self.pid]

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll `GET /v2/` (with credentials, if any) until it answers 200; a process that
        dies first is an error."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready:\n"
                    f"{self.log_tail()}"
                )
            try:
                request = urllib.request.Request(self.base_url + "/v2/")
                if self.credentials is not None:
                    request.add_header("Authorization", self.credentials.basic)
                with urllib.request.urlopen(request, timeout=2) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    self.stop()
                    raise ServerError(
                        f"{self.name} answers GET /v2/ with 401 to the benchmark's "
                        "credentials (or requires some it was not given)"
                    ) from exc
                last = f"HTTP {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"{self.name} not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """End the process group this server was started in: the parent and its workers.

        The tree's CPU time is read first and added to `SERVER_CPU_SECONDS`: workers that
        outlive a signalled parent are reaped by init, so rusage would never see them."""
        if self.proc.poll() is not None:
            return
        SERVER_CPU_SECONDS.append(tree_cpu_seconds(self.proc.pid))
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass


def spawn(
    name: str, argv: list[str], workdir: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it from here
    try:
        return subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() can end the workers too
        )
    finally:
        log.close()


def reference_config(data_dir: Path, port: int) -> str:
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: error\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {data_dir}\n"
        "  delete:\n"
        "    enabled: true\n"
        "http:\n"
        f"  addr: 127.0.0.1:{port}\n"
    )


def start_reference(workdir: Path) -> Server:
    """Debian's docker-registry (distribution 2.8) with a generated config file."""
    if not Path(REFERENCE_BINARY).exists():
        raise ServerError(f"{REFERENCE_BINARY} not found: apt-get install docker-registry")
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir()
    port = free_port()
    config = workdir / "config.yml"
    config.write_text(reference_config(data_dir, port))
    argv = [REFERENCE_BINARY, "serve", str(config)]
    proc = spawn("reference", argv, workdir, dict(os.environ))
    server = Server(
        "reference",
        proc,
        port,
        data_dir,
        workdir / "reference.log",
        "docker-registry (distribution 2.8, filesystem storage)",
    )
    server.wait_ready()
    return server


def haven_command(override: str | None) -> list[str]:
    """How to run Haven: an explicit command, else the repo's venv, else this interpreter."""
    if override:
        return shlex.split(override)
    venv_haven = REPO_ROOT / ".venv" / "bin" / "haven"
    if venv_haven.exists():
        return [str(venv_haven)]
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    if venv_python.exists():
        return [str(venv_python), "-m", "haven"]
    if importlib.util.find_spec("haven") is not None:
        return [sys.executable, "-m", "haven"]
    raise ServerError("cannot find Haven: create .venv (pip install -e .) or pass --haven-cmd")


# Settings that would point a benchmark's Haven at someone's real database, object store or
# keys if they leaked in from the environment; a run sets the ones it means explicitly.
_DEPLOYMENT_VARIABLES = ("HAVEN_DATABASE_URL", "HAVEN_STORAGE", "HAVEN_SECRET_KEY")


def start_haven(
    workdir: Path,
    workers: int,
    command: list[str],
    extra_env: dict[str, str] | None = None,
    *,
    name: str = "haven",
    credentials: Credentials | None = None,
    description: str | None = None,
) -> Server:
    """`haven serve` with N workers, by default on its embedded stores (SQLite metadata,
    blobs in the data directory); `extra_env` adds or overrides `HAVEN_*` settings
    (garbage collection's intervals, or a shared database and object store).

    `credentials` is the owner's password to bootstrap with (random if None): nodes of one
    deployment must agree on it, since only the first to start creates the owner."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    data_dir.mkdir()
    port = free_port()
    argv = [
        *command,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--workers",
        str(workers),
    ]
    env = dict(os.environ)
    env["HAVEN_LOG_LEVEL"] = "error"
    # Haven authenticates every request; its first start creates user `owner` with this.
    credentials = credentials or Credentials("owner", secrets.token_urlsafe(18))
    env["HAVEN_BOOTSTRAP_PASSWORD"] = credentials.password
    for variable in _DEPLOYMENT_VARIABLES:
        env.pop(variable, None)
    env.update(extra_env or {})
    proc = spawn("haven", argv, workdir, env)
    server = Server(
        name,
        proc,
        port,
        data_dir,
        workdir / "haven.log",
        description
        or f"haven serve --workers {workers} (SQLite metadata) via {shlex.join(command)}",
        credentials,
    )
    server.wait_ready()
    return server
