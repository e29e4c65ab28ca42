"""Helpers for the authentication suite: a test PKI, dockerd and containerd daemons private
to the test session, and the clients that sign in to an HTTPS `haven serve`.

Every client is made to trust the test CA its own way, and only that way: skopeo and
podman through `--cert-dir`, docker through `/etc/docker/certs.d/<host:port>/ca.crt`,
ctr through `--tlscacert` (with a `--hosts-dir` that declares the registry HTTPS: ctr
1.6 otherwise speaks plain HTTP to loopback hosts), the ORAS SDK through `tls_verify=`
the CA file, httpx through an SSL context on it, curl `--cacert`, openssl `-CAfile`.
Nothing here turns TLS verification off.

dockerd treats every registry in 127.0.0.0/8 as insecure: it skips certificate
verification for it. Tests reach loopback addresses only, so docker's part is sign-in,
push and pull over HTTPS; the other clients prove certificate trust.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import oras.client
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from e2e_support import (
    INSTALL_HINT,
    TlsFiles,
    ToolResult,
    Tools,
    run_tool,
)

DAEMON_START_TIMEOUT = 60.0
DOCKER_CERTS_D = Path("/etc/docker/certs.d")
# The well-known user name whose password is a Haven refresh token (`haven login`).
REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
# The architecture of this machine as image configs name it: docker and ctr pull the
# image matching the host's platform.
HOST_ARCHITECTURE = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}.get(platform.machine().lower(), platform.machine().lower())


def daemon_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without settings that would redirect the daemons, the
    docker CLI, the haven CLI or the TLS trust of any of them."""
    dropped_prefixes = ("HAVEN_", "DOCKER_", "CONTAINERD_", "CONTAINERS_", "XDG_")
    dropped = {"HOME", "TMPDIR", "REGISTRY_AUTH_FILE", "SSL_CERT_FILE", "SSL_CERT_DIR"}
    dropped |= {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY"}
    dropped |= {"http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith(dropped_prefixes)
    }
    return env | extra


def short_directory(prefix: str) -> Path:
    """A new directory with a short path under /tmp: unix sockets allow 107 bytes."""
    return Path(tempfile.mkdtemp(prefix=f"haven-e2e-{prefix}-", dir="/tmp"))


# --------------------------------------------------------------------------- the PKI


@dataclass(frozen=True)
class Pki:
    """The session's CA and the server certificate it signed."""

    files: TlsFiles
    # A directory holding the CA certificate alone, as `ca.crt`: what skopeo's and
    # podman's --cert-dir take (every *.crt in it is trusted as a CA).
    cert_dir: Path
    ip_addresses: tuple[str, ...]
    dns_names: tuple[str, ...]

    @property
    def ca_cert(self) -> Path:
        return self.files.ca_cert


def make_test_pki(directory: Path, ip_addresses: Sequence[str], dns_names: Sequence[str]) -> Pki:
    """A fresh CA (EC P-256) and a server certificate for these names, valid two days."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Haven e2e"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Haven e2e test CA"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_dir = directory / "trust"
    server_dir = directory / "server"
    cert_dir.mkdir(parents=True)
    server_dir.mkdir(parents=True)
    ca_path = cert_dir / "ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path = server_dir / "server.crt"
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path = server_dir / "server.key"
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Pki(
        files=TlsFiles(ca_cert=ca_path, cert=cert_path, key=key_path),
        cert_dir=cert_dir,
        ip_addresses=tuple(ip_addresses),
        dns_names=tuple(dns_names),
    )


def ca_context(ca_file: Path) -> ssl.SSLContext:
    """An SSL context that trusts `ca_file` alone (httpx's `verify=`)."""
    return ssl.create_default_context(cafile=str(ca_file))


# --------------------------------------------------------------------------- daemons


def remove_state(directory: Path) -> None:
    """Delete a daemon's state directory, first unmounting anything the daemon left
    mounted below it (dockerd bind-mounts its data root, and does not undo that when it
    fails to start)."""
    prefix = f"{directory}/"
    with contextlib.suppress(OSError):
        mounts = Path("/proc/self/mounts").read_text().splitlines()
        points = [line.split()[1] for line in mounts if len(line.split()) > 1]
        for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
            subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    shutil.rmtree(directory, ignore_errors=True)


class Daemon:
    """A daemon started for the test session with its state in a private directory; its
    output goes to a log file that every failure to start quotes."""

    name = "daemon"

    def __init__(self, state: Path, log_path: Path):
        self.state = state
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def not_ready(self) -> str | None:
        """None when the daemon answers, else what it answered (or why it could not)."""
        raise NotImplementedError

    def log_tail(self, limit: int = 8_000) -> str:
        try:
            text = self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def start(self) -> None:
        command = self.command()
        executable = shutil.which(command[0])
        if executable is None:
            pytest.fail(f"`{command[0]}` is not installed: {INSTALL_HINT}", pytrace=False)
        with self.log_path.open("ab") as log:
            log.write(f"=== starting: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [executable, *command[1:]],
                cwd=self.state,
                env=daemon_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + DAEMON_START_TIMEOUT
        reason: str | None = "not started"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                returncode = self.process.returncode
                self.stop()  # whatever it started before it gave up
                pytest.fail(
                    f"{self.name} exited with code {returncode} before it was "
                    f"ready; it cannot run on this machine as started:\n  {' '.join(command)}\n"
                    f"--- {self.name} log ---\n{self.log_tail()}",
                    pytrace=False,
                )
            reason = self.not_ready()
            if reason is None:
                return
            time.sleep(0.2)
        self.stop()
        pytest.fail(
            f"{self.name} was not ready within {DAEMON_START_TIMEOUT:.0f}s (last: {reason})\n"
            f"  {' '.join(command)}\n--- {self.name} log ---\n{self.log_tail()}",
            pytrace=False,
        )

    def stop(self) -> None:
        """SIGTERM the daemon's process group (its own children too), then SIGKILL."""
        if self.process is None:
            return
        group = self.process.pid
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None


class DockerDaemon(Daemon):
    """dockerd with its own data root, exec root, socket and (empty) configuration.

    No container is ever run: no bridge, no iptables, the vfs storage driver.
    """

    name = "dockerd"

    def __init__(self, state: Path, log_path: Path):
        super().__init__(state, log_path)
        self.socket = state / "docker.sock"
        self.config_file = state / "daemon.json"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def command(self) -> list[str]:
        if shutil.which("dockerd"):
            self.config_file.write_text(json.dumps(self._configuration()) + "\n")
        return [
            "dockerd",
            "--config-file",
            str(self.config_file),
            "--storage-driver",
            "vfs",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--userland-proxy=false",
            "--data-root",
            str(self.state / "data"),
            "--exec-root",
            str(self.state / "exec"),
            "--pidfile",
            str(self.state / "docker.pid"),
            "-H",
            self.host,
        ]

    def _configuration(self) -> dict[str, str]:
        """dockerd before 23 writes a trust key to /etc/docker/key.json unless its
        configuration keeps it elsewhere (the setting went away with the key in 23)."""
        version = subprocess.run(
            ["dockerd", "--version"], capture_output=True, text=True, check=False
        ).stdout
        found = re.search(r"version (\d+)\.", version)
        if found and int(found[1]) < 23:
            return {"deprecated-key-path": str(self.state / "key.json")}
        return {}

    def not_ready(self) -> str | None:
        if not self.socket.exists():
            return f"no socket at {self.socket} yet"
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket))) as client:
                response = client.get("http://docker/_ping", timeout=2.0)
        except httpx.TransportError as error:
            return repr(error)
        return None if response.status_code == 200 else f"_ping: {response.status_code}"


class ContainerdDaemon(Daemon):
    """containerd with its own root, state, socket and configuration (no CRI plugin)."""

    name = "containerd"

    def __init__(self, state: Path, log_path: Path):
        super().__init__(state, log_path)
        self.socket = state / "containerd.sock"
        self.config_file = state / "config.toml"
        self.config_file.write_text(
            "version = 2\n"
            f'root = "{state / "root"}"\n'
            f'state = "{state / "state"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n\n'
            "[grpc]\n"
            f'  address = "{self.socket}"\n\n'
            "[ttrpc]\n"
            f'  address = "{self.socket}.ttrpc"\n\n'
            "[debug]\n"
            '  address = ""\n\n'
            "[metrics]\n"
            '  address = ""\n\n'
            '[plugins."io.containerd.internal.v1.opt"]\n'
            f'  path = "{state / "opt"}"\n'
        )

    def command(self) -> list[str]:
        return ["containerd", "--config", str(self.config_file)]

    def not_ready(self) -> str | None:
        if not self.socket.exists():
            return f"no socket at {self.socket} yet"
        result = run_tool(
            ["ctr", "--address", str(self.socket), "version"],
            env=daemon_environment(),
            cwd=self.state,
            check=False,
            timeout=10,
        )
        return None if result.returncode == 0 else result.stderr.strip()


# --------------------------------------------------------------------------- clients


class DockerClient:
    """The docker CLI on the session's dockerd, with a private DOCKER_CONFIG (so its
    credentials are its own) and the CA trust it adds in /etc/docker/certs.d removed at
    close(), along with every image it left in the daemon."""

    def __init__(self, daemon: DockerDaemon, workdir: Path):
        self.daemon = daemon
        self.workdir = workdir
        self.config_dir = workdir / "docker-config"
        self.config_dir.mkdir(parents=True)
        (self.config_dir / "config.json").write_text('{"auths": {}}\n')
        home = workdir / "home"
        home.mkdir()
        self.env = daemon_environment(
            HOME=str(home), DOCKER_HOST=daemon.host, DOCKER_CONFIG=str(self.config_dir)
        )
        self._trusted: list[Path] = []
        self._created_parents: list[Path] = []

    def run(self, *args: str, check: bool = True, input: bytes | None = None) -> ToolResult:
        return run_tool(["docker", *args], env=self.env, cwd=self.workdir, check=check, input=input)

    def config(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads((self.config_dir / "config.json").read_text())
        return loaded

    def trust(self, registry: str, ca_file: Path) -> None:
        """Make dockerd trust `ca_file` for `registry` (host:port) through certs.d."""
        directory = DOCKER_CERTS_D / registry
        assert not directory.exists(), f"{directory} exists already; it is not this test's"
        # Parents this creates (deepest first) are removed again at close() if left empty.
        self._created_parents += [p for p in directory.parents if not p.exists()]
        directory.mkdir(parents=True)
        self._trusted.append(directory)
        shutil.copyfile(ca_file, directory / "ca.crt")

    def load(self, archive: Path) -> str:
        """`docker load` a docker-archive; the image's ID (its config digest)."""
        loaded = self.run("load", "--input", str(archive))
        name = loaded.stdout.strip().rpartition("Loaded image: ")[2].strip()
        assert name, f"docker load printed no image name: {loaded.stdout!r}"
        return self.image_id(name)

    def image_id(self, reference: str) -> str:
        return self.run("image", "inspect", "--format", "{{.Id}}", reference).stdout.strip()

    def close(self) -> None:
        self.run("image", "prune", "--all", "--force", check=False)
        for directory in self._trusted:
            shutil.rmtree(directory, ignore_errors=True)
        for parent in self._created_parents:
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty


class Ctr:
    """ctr on the session's containerd, in a namespace of its own."""

    def __init__(self, daemon: ContainerdDaemon, workdir: Path, namespace: str):
        self.daemon = daemon
        self.workdir = workdir
        self.namespace = namespace
        self.env = daemon_environment(HOME=str(workdir))

    def run(self, *args: str, check: bool = True) -> ToolResult:
        return run_tool(
            ["ctr", "--address", str(self.daemon.socket), "--namespace", self.namespace, *args],
            env=self.env,
            cwd=self.workdir,
            check=check,
        )

    def https_hosts_dir(self, registry: str) -> Path:
        """A --hosts-dir that declares `registry` (host:port) an HTTPS registry.

        ctr (containerd 1.6) speaks plain HTTP to a loopback host unless a hosts.toml names
        its https:// endpoint; none names a CA here, so --tlscacert alone decides the trust.
        """
        hosts_dir = self.workdir / "hosts.d"
        (hosts_dir / registry).mkdir(parents=True, exist_ok=True)
        (hosts_dir / registry / "hosts.toml").write_text(
            f'server = "https://{registry}"\n\n'
            f'[host."https://{registry}"]\n'
            '  capabilities = ["pull", "resolve", "push"]\n'
        )
        return hosts_dir

    def image_digest(self, reference: str) -> str:
        """The manifest digest containerd recorded for an image reference."""
        listed = self.run("images", "list").stdout.splitlines()
        for line in listed[1:]:
            fields = line.split()
            if fields and fields[0] == reference:
                return fields[2]
        raise AssertionError(f"{reference} is not in `ctr images list`:\n" + "\n".join(listed))


class HavenCli:
    """The `haven` command line with a configuration directory of its own."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.config_dir = workdir / "haven-config"
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        self.env = daemon_environment(HOME=str(home), HAVEN_CONFIG_DIR=str(self.config_dir))

    def run(self, *args: str, check: bool = True) -> ToolResult:
        return run_tool(
            [sys.executable, "-m", "haven", *args],
            env=self.env,
            cwd=self.workdir,
            check=check,
            timeout=120,
        )

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--output", "json")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise AssertionError(
                f"`haven {' '.join(args)}` did not print JSON ({error}):\n"
                f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
            ) from None


class SecureTools(Tools):
    """skopeo, podman, buildah and umoci with private state, like Tools, but with no
    credentials signed in and no registry marked insecure: every command names its
    credentials and its CA (`--cert-dir`) itself, and TLS is verified."""

    def __init__(self, workdir: Path, registry: str):
        super().__init__(workdir, registry)
        self.auth_file.write_text('{"auths": {}}\n')
        self.registries_conf.write_text(
            'unqualified-search-registries = []\nshort-name-mode = "disabled"\n'
        )


class OrasClient(oras.client.OrasClient):  # type: ignore[misc]
    """The SDK's client minus its retry-with-backoff wrapper around every request, so a
    refusal fails the test at once with the response in hand."""

    do_request = getattr(
        oras.client.OrasClient.do_request, "__wrapped__", oras.client.OrasClient.do_request
    )


def creds(user: str, password: str) -> str:
    return f"{user}:{password}"


def assert_refused(result: ToolResult, *markers: str) -> None:
    """The command failed, and its output says why with one of `markers` (any case)."""
    output = f"{result.stdout}\n{result.stderr}"
    assert result.returncode != 0, (
        f"expected `{' '.join(result.argv)}` to be refused, but it succeeded:\n{output}"
    )
    lowered = output.lower()
    assert any(marker.lower() in lowered for marker in markers), (
        f"`{' '.join(result.argv)}` failed without saying any of {markers}:\n{output}"
    )


@contextlib.contextmanager
def legacy_tls_server(tls: TlsFiles, version: ssl.TLSVersion) -> Iterator[int]:
    """A TLS server on 127.0.0.1 that speaks only `version` (e.g. TLS 1.0), with every
    cipher allowed: the control that shows a client on this machine can still negotiate
    that version, so that its failure against Haven is Haven refusing it. Yields the port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1: on purpose
        context.minimum_version = version
        context.maximum_version = version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(str(tls.cert), str(tls.key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(10)
            # The handshake is all that matters; then wait for the client to hang up.
            with (
                contextlib.suppress(OSError),
                connection,
                context.wrap_socket(connection, server_side=True) as wrapped,
            ):
                wrapped.recv(1)

    thread = threading.Thread(target=serve, name="legacy-tls", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
