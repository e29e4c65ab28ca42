"""Start and stop the two registries under test, each on a free loopback port and a fresh,
empty data directory, so that every run compares like with like and leaves nothing behind.

Both log at level "error" with no access log: the benchmark measures serving, not writing
log lines, and the same rule applies to both sides.
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
from dataclasses import dataclass
from pathlib import Path

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


def _spawn(
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
    proc = _spawn("reference", argv, workdir, dict(os.environ))
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


def start_haven(
    workdir: Path,
    workers: int,
    command: list[str],
    extra_env: dict[str, str] | None = None,
) -> Server:
    """`haven serve` with N workers on its default (SQLite) metadata store; `extra_env`
    adds or overrides `HAVEN_*` settings (e.g. garbage collection's intervals)."""
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
    credentials = Credentials("owner", secrets.token_urlsafe(18))
    env["HAVEN_BOOTSTRAP_PASSWORD"] = credentials.password
    # A stray HAVEN_DATABASE_URL would point the benchmark at someone's real database.
    env.pop("HAVEN_DATABASE_URL", None)
    env.update(extra_env or {})
    proc = _spawn("haven", argv, workdir, env)
    server = Server(
        "haven",
        proc,
        port,
        data_dir,
        workdir / "haven.log",
        f"haven serve --workers {workers} (SQLite metadata) via {shlex.join(command)}",
        credentials,
    )
    server.wait_ready()
    return server
