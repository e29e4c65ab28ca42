"""Helpers for the end-to-end suite: a real `haven serve` process and the real OCI clients.

Nothing here talks to Haven in-process: the server is a subprocess started the way an
operator starts it, and the clients are the distribution's own skopeo, podman, buildah and
umoci binaries, each given a private state directory so that tests never share (or leak
into the machine's) image stores, credentials or registry configuration.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REQUIRED_TOOLS = ("skopeo", "podman", "buildah", "umoci")
SYSTEM_POLICY = Path("/etc/containers/policy.json")
INSTALL_HINT = (
    "the end-to-end suite drives the real OCI clients; install them with "
    "`sudo scripts/install-e2e-deps.sh` (Debian 12: skopeo podman buildah umoci uidmap, and "
    "for the authentication tests docker.io containerd openssl curl)"
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

# Every manifest type a client may be handed back (sent as Accept on raw GETs).
MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

SERVER_START_TIMEOUT = 60.0
TOOL_TIMEOUT = 240.0


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def with_params(url: str, **params: str) -> httpx.URL:
    """`url` with `params` added to its query. (httpx's `params=` replaces the query, which
    would drop the state a registry may keep in an upload Location.)"""
    return httpx.URL(url).copy_merge_params(params)


def missing_prerequisites() -> list[str]:
    """What the machine lacks for this suite, as human-readable items (empty: all there)."""
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if not SYSTEM_POLICY.is_file():
        # podman `manifest push` has no flag for another policy file.
        missing.append(f"{SYSTEM_POLICY} (the containers signature policy)")
    return missing


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_repository(label: str) -> str:
    """A repository name unique to one test, valid by the distribution spec's grammar."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40].strip("-") or "repo"
    return f"e2e/{slug}-{uuid.uuid4().hex[:10]}"


# The deployment owner every server of the suite is started with; the tools sign in as it.
OWNER = ("owner", "e2e-owner-password")


def _server_environment() -> dict[str, str]:
    """The caller's environment without HAVEN_* settings: the flags alone configure Haven,
    except the owner's bootstrap password."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HAVEN_")}
    env["HAVEN_BOOTSTRAP_PASSWORD"] = OWNER[1]
    return env


def _clean_environment() -> dict[str, str]:
    """The caller's environment without anything that would redirect Haven or the tools."""
    dropped_prefixes = ("HAVEN_", "CONTAINERS_", "BUILDAH_", "XDG_")
    dropped = {
        "HOME",
        "TMPDIR",
        "REGISTRY_AUTH_FILE",
        "DOCKER_CONFIG",
        "STORAGE_DRIVER",
        "STORAGE_OPTS",
    }
    return {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith(dropped_prefixes)
    }


# --------------------------------------------------------------------------- the server


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for a server that serves HTTPS: the CA that signed it, its certificate
    (chain) and its private key."""

    ca_cert: Path
    cert: Path
    key: Path


class HavenServer:
    """One `haven serve` process group on 127.0.0.1, with its log in a file."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        port: int | None = None,
        workers: int = 2,
        database_url: str | None = None,
        tls: TlsFiles | None = None,
        settings: Mapping[str, str] | None = None,
    ):
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = port or free_port()
        self.workers = workers
        self.database_url = database_url
        # HAVEN_* variables for settings that have no `haven serve` flag (GC timings, say).
        self.settings = dict(settings or {})
        # With TLS files: `--tls-cert/--tls-key`, https:// URLs, and readiness checked
        # against the test CA (so a certificate the CA did not sign fails the start).
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """host:port, as it appears in image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.address}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx's `verify=` for this server: trust the test CA alone when serving TLS."""
        return ssl.create_default_context(cafile=self.tls.ca_cert) if self.tls else True

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "haven",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--workers",
            str(self.workers),
            *(["--database-url", self.database_url] if self.database_url else []),
            *(
                ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
                if self.tls
                else []
            ),
        ]

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command()
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} starting: {' '.join(command)}\n".encode())
            log.flush()
            # Its own session, so that the parent and every worker form one process group
            # that stop() and kill() can signal together.
            self.process = subprocess.Popen(
                command,
                cwd=self.data_dir.parent,
                env=_server_environment() | self.settings,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"`haven serve` exited with code {self.process.returncode} before it was "
                    f"ready on {self.address}\n--- server log ---\n{self.log_tail()}",
                    pytrace=False,
                )
            try:
                response = httpx.get(f"{self.url}/v2/", timeout=2.0, auth=OWNER, verify=self.verify)
            except httpx.TransportError as error:
                last_error = repr(error)
            else:
                if response.status_code == 200:
                    return
                last_error = f"GET /v2/ answered {response.status_code}: {response.text[:300]}"
            time.sleep(0.1)
        self.kill()
        pytest.fail(
            f"`haven serve` was not ready on {self.address} within {SERVER_START_TIMEOUT:.0f}s "
            f"(GET /v2/ must answer 200; last: {last_error})\n--- server log ---\n"
            f"{self.log_tail()}",
            pytrace=False,
        )

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def _wait_group_gone(self, timeout: float) -> None:
        """Wait until no process of the group is left (workers included)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs anywhere."""
        if self.process is None:
            return
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._wait_group_gone(timeout=10)

    def stop(self) -> None:
        """SIGTERM the group, then SIGKILL whatever is left after a grace period."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=15)
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._wait_group_gone(timeout=10)

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, limit: int = 20_000) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def log_tail(self, limit: int = 6_000) -> str:
        return self.log_since(max(0, self.log_size() - limit), limit)


# --------------------------------------------------------------------------- the clients


class ToolFailure(AssertionError):
    """A client command exited non-zero; the message carries its full output."""


@dataclass(frozen=True)
class ToolResult:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def _describe(argv: Sequence[str], returncode: int, stdout: str, stderr: str) -> str:
    def clip(text: str) -> str:
        return text if len(text) <= 6000 else "...\n" + text[-6000:]

    return (
        f"command failed (exit {returncode}): {' '.join(argv)}\n"
        f"--- stdout ---\n{clip(stdout)}\n--- stderr ---\n{clip(stderr)}"
    )


def run_tool(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    check: bool = True,
    timeout: float = TOOL_TIMEOUT,
    input: bytes | None = None,
) -> ToolResult:
    """Run one client command to completion (argv[0] looked up on PATH).

    Fails the test when the tool is not installed; raises ToolFailure, carrying the full
    output, when it exits non-zero (with `check`) or runs past `timeout`.
    """
    executable = shutil.which(argv[0])
    if executable is None:
        pytest.fail(f"`{argv[0]}` is not installed: {INSTALL_HINT}", pytrace=False)
    try:
        completed = subprocess.run(
            [executable, *argv[1:]],
            env=dict(env),
            cwd=cwd,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        out = (expired.stdout or b"").decode(errors="replace")
        err = (expired.stderr or b"").decode(errors="replace")
        raise ToolFailure(
            f"timed out after {timeout:.0f}s\n" + _describe(argv, -1, out, err)
        ) from None
    result = ToolResult(
        argv=list(argv),
        returncode=completed.returncode,
        stdout=completed.stdout.decode(errors="replace"),
        stderr=completed.stderr.decode(errors="replace"),
    )
    if check and result.returncode != 0:
        raise ToolFailure(_describe(result.argv, result.returncode, result.stdout, result.stderr))
    return result


class Tools:
    """skopeo, podman, buildah and umoci with private state under one directory.

    Each instance has its own image store (vfs driver, own --root/--runroot), HOME, TMPDIR,
    XDG_RUNTIME_DIR, credentials file (REGISTRY_AUTH_FILE) and registries.conf
    (CONTAINERS_REGISTRIES_CONF) that marks the registry under test as plain-HTTP, for the
    code paths where a tool has no --tls-verify flag. Commands that change the machine's
    own state (/var/lib/containers/storage, ~/.docker, /etc/containers/registries.conf)
    are therefore never touched.
    """

    def __init__(self, workdir: Path, registry: str):
        self.workdir = workdir
        self.registry = registry
        # podman refuses a runroot longer than 50 characters, and pytest's tmp_path is
        # longer than that: the run-time state lives in a short directory of its own.
        self.run_dir = Path(tempfile.mkdtemp(prefix="haven-e2e-", dir="/tmp"))
        self.home = workdir / "home"
        self.tmp = workdir / "tmp"
        self.runtime_dir = self.run_dir / "xdg"
        self.storage_root = workdir / "storage"
        self.storage_runroot = self.run_dir / "storage"
        self.podman_tmp = self.run_dir / "libpod"
        self.auth_file = workdir / "auth.json"
        self.registries_conf = workdir / "registries.conf"
        self.storage_conf = workdir / "storage.conf"
        for directory in (
            self.home,
            self.tmp,
            self.storage_root,
            self.storage_runroot,
            self.podman_tmp,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Every tool reads REGISTRY_AUTH_FILE: sign them all in as the owner, under each
        # name the suite uses for the registry.
        owner = base64.b64encode(f"{OWNER[0]}:{OWNER[1]}".encode()).decode()
        port = registry.rpartition(":")[2]
        hosts = {registry, f"127.0.0.1:{port}", f"localhost:{port}"}
        self.auth_file.write_text(
            json.dumps({"auths": {host: {"auth": owner} for host in sorted(hosts)}}) + "\n"
        )
        self.registries_conf.write_text(
            "unqualified-search-registries = []\n"
            'short-name-mode = "disabled"\n\n'
            "[[registry]]\n"
            f'location = "{registry}"\n'
            "insecure = true\n"
        )
        self.storage_conf.write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'graphroot = "{self.storage_root}"\n'
            f'runroot = "{self.storage_runroot}"\n'
        )
        self.env = _clean_environment() | {
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "REGISTRY_AUTH_FILE": str(self.auth_file),
            "DOCKER_CONFIG": str(self.home / ".docker"),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
        }

    def close(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)

    # ---- references

    def ref(self, repository: str, tag_or_digest: str) -> str:
        """A `docker://` transport reference into the registry under test."""
        separator = "@" if tag_or_digest.startswith("sha256:") else ":"
        return f"docker://{self.registry}/{repository}{separator}{tag_or_digest}"

    def name(self, repository: str, tag: str) -> str:
        """The same reference without transport, as podman expects for pull/push sources."""
        return f"{self.registry}/{repository}:{tag}"

    # ---- running

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = TOOL_TIMEOUT
    ) -> ToolResult:
        return run_tool(argv, env=self.env, cwd=self.workdir, check=check, timeout=timeout)

    def skopeo(self, *args: str, check: bool = True) -> ToolResult:
        return self.run(["skopeo", *args], check=check)

    def podman(self, *args: str, check: bool = True) -> ToolResult:
        return self.run(
            [
                "podman",
                "--root",
                str(self.storage_root),
                "--runroot",
                str(self.storage_runroot),
                "--storage-driver",
                "vfs",
                "--tmpdir",
                str(self.podman_tmp),
                "--events-backend",
                "file",
                "--cgroup-manager",
                "cgroupfs",
                *args,
            ],
            check=check,
        )

    def buildah(self, *args: str, check: bool = True) -> ToolResult:
        return self.run(
            [
                "buildah",
                "--root",
                str(self.storage_root),
                "--runroot",
                str(self.storage_runroot),
                "--storage-driver",
                "vfs",
                *args,
            ],
            check=check,
        )

    def umoci(self, *args: str, check: bool = True) -> ToolResult:
        return self.run(["umoci", *args], check=check)

    # ---- registry shortcuts through skopeo

    def inspect_raw(self, repository: str, tag_or_digest: str) -> bytes:
        result = self.skopeo(
            "inspect", "--raw", "--tls-verify=false", self.ref(repository, tag_or_digest)
        )
        return result.stdout.encode()

    def push_layout(self, image: LayoutImage, repository: str, tag: str, *extra: str) -> ToolResult:
        return self.skopeo(
            "copy",
            "--dest-tls-verify=false",
            *extra,
            f"oci:{image.layout}:{image.tag}",
            self.ref(repository, tag),
        )

    def pull_to_layout(self, repository: str, tag: str, layout: Path, *extra: str) -> LayoutImage:
        layout.parent.mkdir(parents=True, exist_ok=True)
        self.skopeo(
            "copy",
            "--src-tls-verify=false",
            *extra,
            self.ref(repository, tag),
            f"oci:{layout}:{tag}",
        )
        return read_layout_image(layout, tag)


# --------------------------------------------------------------------------- OCI layouts


@dataclass(frozen=True)
class LayoutImage:
    """One tagged image manifest inside an OCI image layout directory."""

    layout: Path
    tag: str
    manifest_digest: str
    manifest: dict[str, Any]

    def blob_path(self, digest: str) -> Path:
        algorithm, _, encoded = digest.partition(":")
        return self.layout / "blobs" / algorithm / encoded

    def blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    @property
    def manifest_bytes(self) -> bytes:
        return self.blob(self.manifest_digest)

    @property
    def config_digest(self) -> str:
        return str(self.manifest["config"]["digest"])

    @property
    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.blob(self.config_digest))
        return loaded

    @property
    def layer_digests(self) -> list[str]:
        return [str(layer["digest"]) for layer in self.manifest["layers"]]

    def closure(self) -> dict[str, bytes]:
        """Every blob the image consists of, by digest: manifest, config and layers."""
        digests = [self.manifest_digest, self.config_digest, *self.layer_digests]
        return {digest: self.blob(digest) for digest in digests}

    def layer_files(self) -> dict[str, bytes]:
        """Regular files of all layers, later layers winning (whiteouts are not used here)."""
        files: dict[str, bytes] = {}
        for digest in self.layer_digests:
            files.update(tar_gzip_files(self.blob(digest)))
        return files


def read_layout_image(layout: Path, tag: str) -> LayoutImage:
    index = json.loads((layout / "index.json").read_text())
    for descriptor in index.get("manifests", []):
        if descriptor.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            digest = str(descriptor["digest"])
            blob = layout / "blobs" / digest.replace(":", "/", 1)
            return LayoutImage(layout, tag, digest, json.loads(blob.read_bytes()))
    raise AssertionError(f"no manifest tagged {tag!r} in {layout}/index.json: {index}")


def tar_gzip_files(blob: bytes) -> dict[str, bytes]:
    """The regular files in a gzip-compressed tar layer, by normalised path."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as archive:
        for member in archive.getmembers():
            if member.isfile():
                extracted = archive.extractfile(member)
                assert extracted is not None
                files[member.name.lstrip("./").lstrip("/")] = extracted.read()
    return files


def assert_blobs_byte_identical(expected: Mapping[str, bytes], actual: Mapping[str, bytes]) -> None:
    """Same digests, same bytes, and every blob's bytes hash to its digest."""
    assert sorted(actual) == sorted(expected), "the two images consist of different blobs"
    for digest, data in expected.items():
        assert sha256_digest(data) == digest, f"source blob {digest} does not match its digest"
        assert actual[digest] == data, f"blob {digest} differs after the round trip"


def build_image(
    tools: Tools,
    layout: Path,
    tag: str,
    layers: Sequence[Mapping[str, bytes]],
    *,
    architecture: str = "amd64",
    os_name: str = "linux",
    cmd: str = "/bin/app",
    labels: Mapping[str, str] | None = None,
) -> LayoutImage:
    """Build an image with umoci, no daemon: one real tar+gzip layer per mapping of files.

    Each layer is made the way umoci documents it: unpack the image into a runtime bundle,
    change files in its rootfs, and repack the bundle, which diffs the tree into a new layer.
    """
    rootless = ["--rootless"] if os.geteuid() != 0 else []
    if not (layout / "oci-layout").exists():
        tools.umoci("init", "--layout", str(layout))
    image = f"{layout}:{tag}"
    tools.umoci("new", "--image", image)
    for number, files in enumerate(layers):
        bundle = tools.tmp / f"bundle-{tag}-{number}-{uuid.uuid4().hex[:8]}"
        tools.umoci("unpack", *rootless, "--image", image, str(bundle))
        for relative, content in files.items():
            target = bundle / "rootfs" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        tools.umoci("repack", "--image", image, str(bundle))
        shutil.rmtree(bundle)
    config_args = [
        "config",
        "--image",
        image,
        "--architecture",
        architecture,
        "--os",
        os_name,
        "--config.cmd",
        cmd,
        "--config.env",
        "HAVEN_E2E=1",
    ]
    for key, value in (labels or {}).items():
        config_args += ["--config.label", f"{key}={value}"]
    tools.umoci(*config_args)
    tools.umoci("gc", "--layout", str(layout))
    built = read_layout_image(layout, tag)
    assert len(built.layer_digests) == len(layers)
    assert all(layer["mediaType"] == OCI_LAYER_GZIP for layer in built.manifest["layers"])
    return built


def random_files(prefix: str, sizes: Sequence[int]) -> dict[str, bytes]:
    """Files of random (so incompressible and unique) content: `prefix/file-N.bin`."""
    return {f"{prefix}/file-{n}.bin": os.urandom(size) for n, size in enumerate(sizes)}


def repeated_block_stream(block: bytes, total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        chunk = block[: total - sent]
        sent += len(chunk)
        yield chunk
