"""Real object stores for the tests and the benchmark: Azurite, and Ceph's S3 gateway.

Azurite (npm package `azurite`, installed into .tools/ by scripts/install-store-deps.sh)
is Microsoft's emulator of Azure Blob Storage. It checks Shared Key signatures and SAS
tokens and keeps its data in a directory.

Ceph's RADOS Gateway is the S3 implementation that Ceph clusters serve in production: it
checks SigV4 signatures of headers and of presigned URLs (expiry included), refuses parts
under 5 MiB, and implements multipart uploads, UploadPartCopy and ranged GETs as S3 does.
It needs a cluster, so this starts the smallest one there is: one monitor and one OSD that
keeps its objects in memory, with cephx keys in a temporary directory, on free ports of
127.0.0.1, plus the gateway itself. Startup takes about fifteen seconds.

Both are started from Debian's and npm's packages; without them the callers fail, naming
the install step (never skip).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from haven.store.azure import DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY

REPO = Path(__file__).resolve().parents[1]
AZURITE = Path(os.environ.get("HAVEN_TEST_AZURITE", REPO / ".tools/node_modules/.bin/azurite-blob"))
AZURITE_INSTALL_HINT = "npm install --prefix .tools azurite   (run in the repository root)"

# A second Azurite account, to test keys that are not the development account's.
OTHER_ACCOUNT = "havenother"
OTHER_KEY = base64.b64encode(b"haven-test-key-for-another-account").decode()

RGW_INSTALL_HINT = "apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd"
PROGRAMS = (
    "ceph",
    "ceph-authtool",
    "monmaptool",
    "ceph-mon",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
)
ACCESS_KEY = "HAVENTESTACCESSKEY01"
SECRET_KEY = "haven-test-secret-key-for-the-radosgw-user"
STARTUP_SECONDS = 120


class ServerUnavailable(Exception):
    """The gateway could not be started; the message says why and what to install."""


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:<port>
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def url(self, bucket: str, prefix: str = "", **extra: str) -> str:
        """An `s3://` URL of the store, with this server's endpoint and keys."""
        query = {
            "endpoint": self.endpoint,
            "region": self.region,
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            **extra,
        }
        path = f"/{prefix}" if prefix else ""
        return f"s3://{bucket}{path}?" + "&".join(f"{k}={v}" for k, v in query.items() if v)


@dataclass(frozen=True)
class Azurite:
    host: str  # http://127.0.0.1:<port>

    def endpoint(self, account: str = DEVELOPMENT_ACCOUNT) -> str:
        return f"{self.host}/{account}"

    def url(self, container: str, **extra: str) -> str:
        """An `azure://` URL of a container in the development account."""
        query = "".join(f"&{key}={value}" for key, value in extra.items())
        return f"azure://{DEVELOPMENT_ACCOUNT}/{container}?endpoint={self.endpoint()}{query}"


@contextlib.contextmanager
def azurite(location: Path) -> Iterator[Azurite]:
    """Run Azurite's blob service on a free port of 127.0.0.1, its data under `location`,
    for the duration of the block. Raises ServerUnavailable if it cannot."""
    if not AZURITE.exists():
        raise ServerUnavailable(
            f"Azurite is needed for the Azure content store and is not at {AZURITE}; "
            f"install it with: {AZURITE_INSTALL_HINT}"
        )
    location.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    env = dict(
        os.environ,
        AZURITE_ACCOUNTS=f"{DEVELOPMENT_ACCOUNT}:{DEVELOPMENT_KEY};{OTHER_ACCOUNT}:{OTHER_KEY}",
    )
    command = [
        str(AZURITE),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(location),
        "--skipApiVersionCheck",
        "--disableTelemetry",
        "--silent",
    ]
    with (location / "azurite.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    host = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output = (location / "azurite.log").read_text(errors="replace")
                raise ServerUnavailable(f"Azurite exited with {process.returncode}:\n{output}")
            try:
                httpx.get(f"{host}/{DEVELOPMENT_ACCOUNT}?comp=list", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise ServerUnavailable("Azurite did not answer within 30 s") from None
                time.sleep(0.1)
        yield Azurite(host)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def missing_programs() -> list[str]:
    return [name for name in PROGRAMS if shutil.which(name) is None]


def _config(directory: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    settings = {
        "global": {
            "fsid": fsid,
            "mon host": f"v2:127.0.0.1:{mon_port}",
            "keyring": f"{directory}/keyring",
            "run dir": f"{directory}/run",
            "admin socket": f"{directory}/run/$name.asok",
            "pid file": f"{directory}/run/$name.pid",
            "log file": f"{directory}/log/$name.log",
            "public addr": "127.0.0.1",
            "osd pool default size": "1",
            "osd pool default min size": "1",
            "osd pool default pg num": "8",
            "osd pool default pgp num": "8",
            "osd pool default pg autoscale mode": "off",
            "osd crush chooseleaf type": "0",
            "osd objectstore": "memstore",
            "memstore device bytes": str(8 * 1024**3),
            "mon allow pool size one": "true",
            "mon max pg per osd": "2000",
            "mon warn on pool no redundancy": "false",
            "mon data avail warn": "1",
            "mon data avail crit": "0",
        },
        "mon.a": {"mon data": f"{directory}/mon.a"},
        "osd.0": {"osd data": f"{directory}/osd.0"},
        "client.rgw": {
            "rgw data": f"{directory}/rgw",
            "rgw frontends": f"beast endpoint=127.0.0.1:{rgw_port}",
        },
    }
    return "".join(
        f"[{section}]\n" + "".join(f"{key} = {value}\n" for key, value in values.items())
        for section, values in settings.items()
    )


class _Cluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.config = directory / "ceph.conf"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def run(self, *command: str, timeout: float = 60) -> str:
        try:
            done = subprocess.run(
                [command[0], "-c", str(self.config), *command[1:]],
                cwd=self.directory,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ServerUnavailable(f"{' '.join(command)} timed out\n{self.logs()}") from None
        if done.returncode != 0:
            raise ServerUnavailable(
                f"{' '.join(command)} failed ({done.returncode}): "
                f"{done.stderr.decode(errors='replace')[-2000:]}\n{self.logs()}"
            )
        return done.stdout.decode()

    def start(self, *command: str) -> None:
        with (self.directory / "log" / f"{command[0]}.out").open("wb") as log:
            self.processes[command[0]] = subprocess.Popen(
                [command[0], "-c", str(self.config), "-f", *command[1:]],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise ServerUnavailable(f"{name} exited with {process.returncode}\n{self.logs()}")

    def logs(self) -> str:
        tails = []
        for path in sorted((self.directory / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(tails)

    def stop(self) -> None:
        for process in reversed(self.processes.values()):
            process.terminate()
        for process in reversed(self.processes.values()):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def radosgw(directory: Path) -> Iterator[S3Server]:
    """Run a one-node Ceph cluster with a gateway, its data under `directory`, for the
    duration of the block. Raises ServerUnavailable if it cannot."""
    missing = missing_programs()
    if missing:
        raise ServerUnavailable(
            f"the S3 content store tests need Ceph's RADOS Gateway ({', '.join(missing)} not "
            f"found); install it with: {RGW_INSTALL_HINT}"
        )
    for name in ("run", "log", "mon.a", "osd.0", "rgw"):
        (directory / name).mkdir(parents=True, exist_ok=True)
    mon_port, rgw_port = _free_port(), _free_port()
    fsid = str(uuid.uuid4())
    cluster = _Cluster(directory)
    cluster.config.write_text(_config(directory, fsid, mon_port, rgw_port))
    keyring = str(directory / "keyring")
    try:
        authtool = ("ceph-authtool", keyring)
        subprocess.run(
            [*authtool, "--create-keyring", "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"],
            check=True,
            capture_output=True,
        )
        for name, caps in (
            ("client.admin", {"mon": "allow *", "osd": "allow *", "mgr": "allow *"}),
            ("osd.0", {"mon": "allow profile osd", "osd": "allow *", "mgr": "allow profile osd"}),
            ("client.rgw", {"mon": "allow rw", "osd": "allow rwx", "mgr": "allow rw"}),
        ):
            caps_arguments = [part for key, value in caps.items() for part in ("--cap", key, value)]
            subprocess.run(
                [*authtool, "--gen-key", "-n", name, *caps_arguments],
                check=True,
                capture_output=True,
            )
        subprocess.run(
            [
                "monmaptool",
                "--create",
                "--add",
                "a",
                f"v2:127.0.0.1:{mon_port}",
                "--fsid",
                fsid,
                str(directory / "monmap"),
            ],
            check=True,
            capture_output=True,
        )
        cluster.run("ceph-mon", "--mkfs", "-i", "a", "--monmap", "monmap", "--keyring", keyring)
        cluster.start("ceph-mon", "-i", "a")
        osd_uuid = str(uuid.uuid4())
        cluster.run("ceph", "--connect-timeout", "30", "osd", "new", osd_uuid, "0")
        cluster.run("ceph-osd", "-i", "0", "--mkfs", "--osd-uuid", osd_uuid)
        cluster.start("ceph-osd", "-i", "0")
        cluster.start("radosgw", "-n", "client.rgw")
        endpoint = f"http://127.0.0.1:{rgw_port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            cluster.check_alive()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(endpoint, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"the RADOS Gateway did not answer within {STARTUP_SECONDS} s\n{cluster.logs()}"
                )
            time.sleep(0.25)
        cluster.run(
            "radosgw-admin",
            "-n",
            "client.rgw",
            "user",
            "create",
            "--uid=haven",
            "--display-name=haven",
            f"--access-key={ACCESS_KEY}",
            f"--secret-key={SECRET_KEY}",
        )
        yield S3Server(endpoint, ACCESS_KEY, SECRET_KEY)
    except subprocess.CalledProcessError as error:
        raise ServerUnavailable(
            f"{error.cmd[0]} failed: {error.stderr.decode(errors='replace')[-2000:]}"
        ) from None
    finally:
        cluster.stop()


if __name__ == "__main__":
    # Run it by hand: `python tests/object_stores.py DIRECTORY`; ctrl-C stops it.
    import sys
    import tempfile

    target = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="radosgw-"))
    with radosgw(target) as server:
        print(f"{server.endpoint} access key {server.access_key} secret {server.secret_key}")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
