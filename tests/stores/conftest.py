"""Real object stores for the content store tests: Azurite, and Ceph's S3 gateway.

Azurite runs once per session on a free port with its data in a temporary directory.
It is a hard requirement, as PostgreSQL is: a run without it fails, naming the install
step, rather than skipping the Azure half of the content store tests.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from haven.store.azure import DEVELOPMENT_ACCOUNT, DEVELOPMENT_KEY, AzureBlobStore

from .s3_server import S3Server, ServerUnavailable, radosgw

REPO = Path(__file__).resolve().parents[2]
AZURITE = Path(os.environ.get("HAVEN_TEST_AZURITE", REPO / ".tools/node_modules/.bin/azurite-blob"))
INSTALL_HINT = "npm install --prefix .tools azurite   (run in the repository root)"

# A second account, to test keys that are not the development account's.
OTHER_ACCOUNT = "havenother"
OTHER_KEY = base64.b64encode(b"haven-test-key-for-another-account").decode()


@dataclass(frozen=True)
class Azurite:
    host: str  # http://127.0.0.1:<port>

    def endpoint(self, account: str = DEVELOPMENT_ACCOUNT) -> str:
        return f"{self.host}/{account}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if not AZURITE.exists():
        pytest.fail(
            f"Azurite is needed for the Azure content store tests and is not at {AZURITE}; "
            f"install it with: {INSTALL_HINT}",
            pytrace=False,
        )
    location = tmp_path_factory.mktemp("azurite")
    port = _free_port()
    log = (location / "azurite.log").open("wb")
    env = dict(
        os.environ,
        AZURITE_ACCOUNTS=f"{DEVELOPMENT_ACCOUNT}:{DEVELOPMENT_KEY};{OTHER_ACCOUNT}:{OTHER_KEY}",
    )
    process = subprocess.Popen(
        [
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
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    host = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output = (location / "azurite.log").read_text(errors="replace")
                pytest.fail(f"Azurite exited with {process.returncode}:\n{output}", pytrace=False)
            try:
                httpx.get(f"{host}/{DEVELOPMENT_ACCOUNT}?comp=list", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("Azurite did not answer within 30 s", pytrace=False)
                time.sleep(0.1)
        yield Azurite(host)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def container_url(azurite: Azurite) -> str:
    """An `azure://` URL for a container of its own (created by the first store)."""
    return f"azure://{DEVELOPMENT_ACCOUNT}/t{uuid.uuid4().hex[:20]}?endpoint={azurite.endpoint()}"


@pytest.fixture
def store(container_url: str) -> Iterator[AzureBlobStore]:
    store = AzureBlobStore.from_url(container_url)
    yield store
    store.close()


@pytest.fixture
def other_store(container_url: str, store: AzureBlobStore) -> Iterator[AzureBlobStore]:
    """A second, independent instance on the same container: another server process."""
    other = AzureBlobStore.from_url(container_url)
    yield other
    other.close()


@pytest.fixture(scope="session")
def rgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    directory = tmp_path_factory.mktemp("radosgw")
    failure = None
    try:
        with radosgw(directory) as server:
            yield server
    except ServerUnavailable as error:
        failure = str(error)
    if failure is not None:
        pytest.fail(failure, pytrace=False)


@pytest.fixture
def bucket_url(rgw: S3Server) -> str:
    return rgw.url(f"haven-{uuid.uuid4().hex[:12]}", "registry/one")
