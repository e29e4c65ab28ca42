"""Fixtures for the end-to-end suite: a real `haven serve` and isolated real clients.

The suite fails (never skips) when the clients are missing, so that a CI machine without
them cannot pass silently: `scripts/install-e2e-deps.sh` installs them.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from auth_support import (
    ContainerdDaemon,
    DockerDaemon,
    Pki,
    make_test_pki,
    remove_state,
    short_directory,
)
from e2e_support import (
    INSTALL_HINT,
    OWNER,
    HavenServer,
    Tools,
    missing_prerequisites,
    unique_repository,
)

E2E_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"e2e_report_{report.when}", report)  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="session")
def e2e_prerequisites() -> None:
    missing = missing_prerequisites()
    if missing:
        pytest.fail(f"missing: {', '.join(missing)}; {INSTALL_HINT}", pytrace=False)
    try:
        import oras.client  # noqa: F401
    except ImportError as error:
        pytest.fail(
            f"the ORAS Python SDK is not importable ({error}); install the `oras` package "
            "into the test environment (`pip install -e '.[test]'`)",
            pytrace=False,
        )


# (metadata store, content store) of the session's servers: every test that uses them runs
# once per pair, which covers each store (tests/api adds PostgreSQL on the filesystem).
STORES = [("sqlite", "file"), ("postgresql", "azure"), ("sqlite", "s3")]
STORE_IDS = ["-".join(pair) for pair in STORES]


def _on_stores(request: pytest.FixtureRequest) -> tuple[str | None, dict[str, str]]:
    """The database URL and HAVEN_* settings that put a session server on the pair
    `request.param`: a database and a container or bucket of its own."""
    metadata, content = request.param
    database_url = None
    if metadata == "postgresql":
        database_url = request.getfixturevalue("new_postgres_database")()
    name = f"e2e-{uuid.uuid4().hex[:12]}"
    storage = {
        "file": lambda: None,
        "azure": lambda: request.getfixturevalue("azurite").url(name),
        "s3": lambda: request.getfixturevalue("rgw").url(name, "haven"),
    }[content]()
    return database_url, {"HAVEN_STORAGE": storage} if storage else {}


@pytest.fixture(scope="session", params=STORES, ids=STORE_IDS)
def haven(
    request: pytest.FixtureRequest,
    e2e_prerequisites: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HavenServer]:
    """One `haven serve` per store pair for the session, on a free port with an empty data
    directory."""
    base = tmp_path_factory.mktemp("haven")
    database_url, settings = _on_stores(request)
    server = HavenServer(
        data_dir=base / "data",
        log_path=base / "haven.log",
        database_url=database_url,
        settings=settings,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _haven_log_on_failure(
    request: pytest.FixtureRequest,
) -> Iterator[None]:
    """When a test fails, print what the session's servers (`haven`, and `haven_tls` for
    the tests that use it) logged during it (shown by pytest)."""
    servers: list[HavenServer] = [
        request.getfixturevalue(name)
        for name in ("haven", "haven_tls")
        if name in request.fixturenames
    ]
    offsets = [server.log_size() for server in servers]
    yield
    report = getattr(request.node, "e2e_report_call", None)
    if report is not None and report.failed:
        for server, offset in zip(servers, offsets, strict=True):
            print(f"--- haven serve ({server.url}) log during {request.node.name} ---")
            print(server.log_since(offset))


@pytest.fixture
def registry(haven: HavenServer) -> str:
    """host:port of the session's Haven, as used in image references."""
    return haven.address


@pytest.fixture
def tools(haven: HavenServer, tmp_path: Path) -> Iterator[Tools]:
    """skopeo/podman/buildah/umoci with state private to this test."""
    isolated = Tools(tmp_path / "tools", haven.address)
    try:
        yield isolated
    finally:
        isolated.close()


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Unique repository names for this test: repo("src") -> "e2e/<test>-src-<random>"."""

    def make(suffix: str = "") -> str:
        label = request.node.name.removeprefix("test_")
        return unique_repository(f"{label[:28]}-{suffix}" if suffix else label)

    return make


@pytest.fixture
def http(haven: HavenServer) -> Iterator[httpx.Client]:
    """A plain HTTP client on the session's Haven; it follows blob downloads' redirects
    to an object store, as registry clients do."""
    with httpx.Client(
        base_url=haven.url, timeout=60.0, auth=OWNER, follow_redirects=True
    ) as client:
        yield client


@pytest.fixture
def start_haven(
    e2e_prerequisites: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., HavenServer]]:
    """Start extra servers: start(data_dir, port=None, database_url=None, settings=None)
    -> HavenServer, `settings` being HAVEN_* variables for the server's environment.

    Each gets its own log; all are stopped at teardown (their logs printed if the test failed).
    """
    started: list[HavenServer] = []

    def start(
        data_dir: Path,
        port: int | None = None,
        database_url: str | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> HavenServer:
        server = HavenServer(
            data_dir=data_dir,
            log_path=tmp_path / f"haven-{len(started)}.log",
            port=port,
            database_url=database_url,
            settings=settings,
        )
        started.append(server)
        server.start()
        return server

    yield start
    report = getattr(request.node, "e2e_report_call", None)
    for server in started:
        server.stop()
        if report is not None and report.failed:
            print(f"--- log of `haven serve` on {server.address} ---")
            print(server.log_tail(20_000))


# --------------------------------------------------------------------------- HTTPS and daemons


@pytest.fixture(scope="session")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA, and a server certificate it signed for localhost and 127.0.0.1."""
    return make_test_pki(tmp_path_factory.mktemp("pki"), ["127.0.0.1"], ["localhost"])


@pytest.fixture(scope="session", params=STORES, ids=STORE_IDS)
def haven_tls(
    request: pytest.FixtureRequest,
    e2e_prerequisites: None,
    tls_pki: Pki,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[HavenServer]:
    """One `haven serve --tls-cert --tls-key` per store pair for the session (HTTPS on
    127.0.0.1)."""
    base = tmp_path_factory.mktemp("haven-tls")
    database_url, settings = _on_stores(request)
    server = HavenServer(
        data_dir=base / "data",
        log_path=base / "haven.log",
        database_url=database_url,
        tls=tls_pki.files,
        settings=settings,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def docker_registry(haven_tls: HavenServer) -> str:
    """host:port at which dockerd reaches `haven_tls`: 127.0.0.1, which dockerd treats as
    an insecure registry (HTTPS without certificate verification)."""
    return haven_tls.address


@pytest.fixture(scope="session")
def dockerd(
    e2e_prerequisites: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerDaemon]:
    """A dockerd private to the session (own data root, exec root and socket). It fails
    the tests that need it, with its log, when it cannot start here."""
    state = short_directory("dockerd")
    daemon = DockerDaemon(state, tmp_path_factory.mktemp("dockerd") / "dockerd.log")
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        remove_state(state)


@pytest.fixture(scope="session")
def containerd(
    e2e_prerequisites: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ContainerdDaemon]:
    """A containerd private to the session (own root, state, socket and configuration)."""
    state = short_directory("containerd")
    daemon = ContainerdDaemon(state, tmp_path_factory.mktemp("containerd") / "containerd.log")
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
        remove_state(state)
