"""Two or more `haven serve` nodes behind the nginx configuration shipped in deploy/nginx.

The nginx files are the ones an operator installs, rendered for a test: the listening
ports, the certificate files, the log directory and the upstream list are replaced, and
every replaced line must be found exactly as shipped (a change to the shipped files that
the rendering does not know about fails the tests instead of testing something else).
nginx runs in the foreground with its own prefix, pid file and logs under the test's
directory.

Also here: OCI layouts with random layers, the watch that finds the node receiving an
upload (so that exactly that node can be killed), and the checks that nothing pushed was
lost: every manifest and blob read back through every node with the right digest, and the
registry's usage equal to what was pushed.
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
import ssl
import subprocess
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth_support import OrasClient, Pki
from e2e_support import (
    MANIFEST_ACCEPT,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    OWNER,
    HavenServer,
    LayoutImage,
    TlsFiles,
    Tools,
    free_port,
    read_layout_image,
    sha256_digest,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED_NGINX = REPO / "deploy" / "nginx"
NGINX_INSTALL_HINT = (
    "the scale-out tests balance two `haven serve` nodes with Debian's nginx; install it "
    "with `sudo scripts/install-e2e-deps.sh` (Debian 12: nginx, and iproute2 for `ss`)"
)
START_TIMEOUT = 30.0
REGISTRY = "default"  # the registry that answers for 127.0.0.1


def require_program(name: str) -> str:
    """The path of `name` (also looked for in the sbin directories, which a non-root PATH
    may lack); fails the test with the install hint when it is missing."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"`{name}` is not installed: {NGINX_INSTALL_HINT}", pytrace=False)
    return found


# --------------------------------------------------------------------------- nginx


def _replace(text: str, old: str, new: str, where: str) -> str:
    assert old in text, f"{where} no longer contains {old!r}: update scale_out_support.py"
    return text.replace(old, new)


def render_upstreams(shipped: str, nodes: Sequence[str]) -> str:
    """The shipped upstream block with one `server` line per node (host:port), each with
    the parameters the shipped lines have."""
    lines = shipped.splitlines()
    servers = [i for i, line in enumerate(lines) if re.match(r"\s*server \S+:\d+( .*)?;$", line)]
    assert servers, "deploy/nginx/upstreams.conf lists no `server host:port …;` line"
    first = re.match(r"(\s*)server \S+?(( .*)?;)$", lines[servers[0]])
    assert first is not None
    indent, parameters = first.group(1), first.group(2)
    rendered = [f"{indent}server {node}{parameters}" for node in nodes]
    kept = [line for i, line in enumerate(lines) if i not in servers[1:]]
    position = kept.index(lines[servers[0]])
    return "\n".join(kept[:position] + rendered + kept[position + 1 :]) + "\n"


def render_site(
    directory: Path, nodes: Sequence[str], https_port: int, http_port: int, tls: TlsFiles
) -> Path:
    """Write deploy/nginx, rendered for these nodes, ports (on 127.0.0.1) and
    certificate, plus a main configuration that runs it in the foreground with every
    path under `directory`. Returns the main configuration file."""
    logs, temp = directory / "logs", directory / "temp"
    for path in (logs, temp):
        path.mkdir(parents=True, exist_ok=True)
    (directory / "upstreams.conf").write_text(
        render_upstreams((SHIPPED_NGINX / "upstreams.conf").read_text(), nodes)
    )
    shutil.copyfile(SHIPPED_NGINX / "proxy.conf", directory / "proxy.conf")
    site = (SHIPPED_NGINX / "haven.conf").read_text()
    where = "deploy/nginx/haven.conf"
    for old, new in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen [::]:443 ssl;", ""),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen [::]:80;", ""),
        ("/etc/nginx/haven/", f"{directory}/"),
        ("/etc/haven/tls/fullchain.pem", str(tls.cert)),
        ("/etc/haven/tls/privkey.pem", str(tls.key)),
        ("/var/log/nginx/", f"{logs}/"),
    ):
        site = _replace(site, old, new, where)
    (directory / "haven.conf").write_text(site)
    # As root, nginx's workers would otherwise switch to `nobody`, who cannot enter the
    # test's private directories.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    main = directory / "nginx.conf"
    main.write_text(
        "daemon off;\n"
        "master_process on;\n"
        "worker_processes 2;\n"
        f"{user}"
        f"pid {directory}/nginx.pid;\n"
        f"error_log {logs}/error.log info;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {logs}/access.log;\n"
        f"    client_body_temp_path {temp}/client_body;\n"
        f"    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n"
        f"    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
        f"    include {directory}/haven.conf;\n"
        "}\n"
    )
    return main


@dataclass(frozen=True)
class LogEntry:
    """One line of the shipped `haven` access log format."""

    method: str
    path: str
    status: int
    upstreams: tuple[str, ...]  # every node tried, in order
    upstream_statuses: tuple[str, ...]


_LOG_LINE = re.compile(
    r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d+) .* '
    r"upstream=(?P<upstreams>.*?) ustatus=(?P<statuses>.*?) urt="
)


class Nginx:
    """nginx in the foreground, as its own process group, on the rendered site."""

    def __init__(self, directory: Path, nodes: Sequence[str], https_port: int, tls: TlsFiles):
        self.directory = directory
        self.https_port = https_port
        self.tls = tls
        self.program = require_program("nginx")
        http_port = free_port_avoiding({https_port})
        self.config = render_site(directory, nodes, https_port, http_port, tls)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.https_port}"

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    @property
    def verify(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.tls.ca_cert)

    def _command(self, *extra: str) -> list[str]:
        logs = self.directory / "logs"
        return [
            self.program,
            "-p",
            str(self.directory),
            "-c",
            str(self.config),
            "-e",
            str(logs / "error.log"),
            *extra,
        ]

    def check(self) -> None:
        """`nginx -t` on the rendered configuration."""
        checked = subprocess.run(self._command("-t"), capture_output=True, text=True, check=False)
        assert checked.returncode == 0, f"nginx -t failed:\n{checked.stderr}"

    def start(self) -> None:
        self.check()
        with (self.directory / "logs" / "nginx.out").open("ab") as out:
            self.process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"nginx exited with {self.process.returncode}:\n{self.error_log()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", verify=self.verify, timeout=2).is_success:
                    return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"nginx did not answer within {START_TIMEOUT:.0f}s:\n{self.error_log()}")

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def error_log(self, limit: int = 8000) -> str:
        path = self.directory / "logs" / "haven.error.log"
        main = self.directory / "logs" / "error.log"
        text = "".join(p.read_text(errors="replace") for p in (main, path) if p.exists())
        return text[-limit:]

    def access_log(self) -> list[LogEntry]:
        path = self.directory / "logs" / "haven.access.log"
        entries = []
        for line in path.read_text(errors="replace").splitlines():
            match = _LOG_LINE.search(line)
            if match is None:
                continue
            entries.append(
                LogEntry(
                    method=match["method"],
                    path=match["path"],
                    status=int(match["status"]),
                    upstreams=tuple(u.strip() for u in match["upstreams"].split(",")),
                    upstream_statuses=tuple(s.strip() for s in match["statuses"].split(",")),
                )
            )
        return entries


def free_port_avoiding(taken: set[int]) -> int:
    while (port := free_port()) in taken:
        pass
    return port


# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Endpoint:
    """Where clients reach the registry: a node itself (plain HTTP), or nginx (HTTPS,
    verified against the test CA)."""

    name: str
    address: str
    pki: Pki | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.pki else 'http'}://{self.address}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=self.pki.ca_cert) if self.pki else True

    def ref(self, repository: str, tag: str) -> str:
        return f"docker://{self.address}/{repository}:{tag}"

    def tls_flags(self, side: str) -> list[str]:
        """skopeo's flags for this endpoint as the `src` or `dest` of a copy."""
        if self.pki is None:
            return [f"--{side}-tls-verify=false"]
        return [f"--{side}-tls-verify=true", f"--{side}-cert-dir", str(self.pki.cert_dir)]

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=OWNER, timeout=120.0, verify=self.verify)

    def oras(self) -> OrasClient:
        """The ORAS SDK signed in with HTTP Basic (its token backend keeps the first,
        narrowest token it gets)."""
        if self.pki is None:
            client = OrasClient(hostname=self.address, insecure=True, auth_backend="basic")
        else:
            ca = str(self.pki.ca_cert)
            client = OrasClient(hostname=self.address, tls_verify=ca, auth_backend="basic")
            client.session.verify = ca
        client.auth.set_basic_auth(*OWNER)
        return client


def sign_in(tools: Tools, endpoints: Iterable[Endpoint]) -> None:
    """Give the tools the owner's credentials for every endpoint."""
    owner = base64.b64encode(f"{OWNER[0]}:{OWNER[1]}".encode()).decode()
    auths = {endpoint.address: {"auth": owner} for endpoint in endpoints}
    tools.auth_file.write_text(json.dumps({"auths": auths}) + "\n")


# --------------------------------------------------------------------------- images


def write_image(layout: Path, tag: str, layer_sizes: Sequence[int]) -> LayoutImage:
    """An OCI image in a layout directory: one gzip'd tar layer of random bytes (so
    incompressible and unique) per size, and a config naming their diff IDs."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = sha256_digest(data)
        (blobs / digest.removeprefix("sha256:")).write_bytes(data)
        return digest

    layers, diff_ids = [], []
    for number, size in enumerate(layer_sizes):
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            member = tarfile.TarInfo(f"data/{tag}-{number}.bin")
            member.size = size
            tar.addfile(member, io.BytesIO(os.urandom(size)))
        diff_ids.append(sha256_digest(archive.getvalue()))
        compressed = gzip.compress(archive.getvalue(), compresslevel=1)
        layers.append(
            {"mediaType": OCI_LAYER_GZIP, "digest": put(compressed), "size": len(compressed)}
        )
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"tag": tag}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
            "layers": layers,
        }
    ).encode()
    digest = put(manifest)
    index_path = layout / "index.json"
    index: dict[str, Any] = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "manifests": []}
    )
    index["manifests"].append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    )
    index_path.write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return read_layout_image(layout, tag)


# --------------------------------------------------------------------------- killing a node


def _received_by_port(ports: Iterable[int]) -> dict[tuple[int, str], int]:
    """Bytes received so far on each established TCP connection whose local port is one
    of `ports`, keyed by (local port, peer), as `ss` reports them."""
    wanted = set(ports)
    output = subprocess.run(
        [require_program("ss"), "-tniH", "state", "established"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    received: dict[tuple[int, str], int] = {}
    current: tuple[int, str] | None = None
    for line in output.splitlines():
        if line and not line[0].isspace():
            fields = line.split()
            local, peer = fields[-2], fields[-1]
            port = int(local.rpartition(":")[2])
            current = (port, peer) if port in wanted else None
        elif current is not None:
            found = re.search(r"\bbytes_received:(\d+)", line)
            if found is not None:
                received[current] = int(found.group(1))
    return received


def wait_for_node_receiving(
    nodes: Sequence[HavenServer], at_least: int, timeout: float = 120.0
) -> HavenServer:
    """The node that has received `at_least` bytes on one connection since this was
    called: the one an upload is streaming into."""
    by_port = {node.port: node for node in nodes}
    before = _received_by_port(by_port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for (port, peer), count in _received_by_port(by_port).items():
            if count - before.get((port, peer), 0) >= at_least:
                return by_port[port]
        time.sleep(0.02)
    raise AssertionError(f"no node received {at_least} bytes on a connection within {timeout}s")


# --------------------------------------------------------------------------- nothing lost


@dataclass(frozen=True)
class Pushed:
    """What one push stored: the manifest's bytes and its blobs' sizes by digest."""

    repository: str
    tag: str
    manifest: bytes
    blobs: Mapping[str, int]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


@dataclass
class Ledger:
    """Everything pushed into one deployment, to be found again at the end."""

    pushed: list[Pushed] = field(default_factory=list)

    def record(self, http: httpx.Client, repository: str, tag: str) -> Pushed:
        """Read back what `repository:tag` names (through `http`) and remember it."""
        answer = http.get(f"/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
        assert answer.status_code == 200, answer.text
        manifest = json.loads(answer.content)
        descriptors = [manifest["config"], *manifest.get("layers", [])]
        entry = Pushed(
            repository,
            tag,
            answer.content,
            {str(d["digest"]): int(d["size"]) for d in descriptors},
        )
        self.pushed.append(entry)
        return entry

    def stored_bytes(self) -> int:
        """What the registry must count: each distinct manifest and blob once."""
        manifests = {entry.digest: len(entry.manifest) for entry in self.pushed}
        blobs: dict[str, int] = {}
        for entry in self.pushed:
            blobs.update(entry.blobs)
        return sum(manifests.values()) + sum(blobs.values())


def streamed_digest(http: httpx.Client, url: str) -> tuple[str, int]:
    """sha256 digest and length of what GET `url` answers, redirects followed (to the
    storage's signed URL), streamed rather than held."""
    hasher = hashlib.sha256()
    length = 0
    with http.stream("GET", url, follow_redirects=True) as answer:
        assert answer.status_code == 200, f"GET {url}: {answer.status_code} {answer.read()!r}"
        for chunk in answer.iter_bytes(1024 * 1024):
            hasher.update(chunk)
            length += len(chunk)
    return f"sha256:{hasher.hexdigest()}", length


def assert_all_readable(http: httpx.Client, ledger: Ledger) -> None:
    """Every pushed manifest (by tag and by digest) and every blob (bytes hashed) reads
    back right through `http`."""
    for entry in ledger.pushed:
        for reference in (entry.tag, entry.digest):
            answer = http.get(
                f"/v2/{entry.repository}/manifests/{reference}",
                headers={"Accept": MANIFEST_ACCEPT},
            )
            assert answer.status_code == 200, (http.base_url, entry.repository, answer.text)
            assert answer.content == entry.manifest, f"{entry.repository}:{reference} changed"
        for digest, size in entry.blobs.items():
            got = streamed_digest(http, f"/v2/{entry.repository}/blobs/{digest}")
            assert got == (digest, size), (str(http.base_url), entry.repository, digest, got)


def assert_usage_adds_up(http: httpx.Client, ledger: Ledger) -> None:
    """The registry's usage is exactly what was pushed, and a recount agrees."""
    check = http.get(f"/api/registries/{REGISTRY}/usages/check")
    assert check.status_code == 200, check.text
    figures = check.json()
    assert figures["driftBytes"] == 0, figures
    assert figures["usedBytes"] == ledger.stored_bytes(), (figures, ledger.stored_bytes())
