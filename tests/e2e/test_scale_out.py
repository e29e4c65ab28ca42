"""Scale-out: two `haven serve` nodes on one PostgreSQL database and one Azure Blob
container (Azurite), behind nginx with the configuration shipped in deploy/nginx.

Real clients push and pull through either node and through nginx at once; a chunked
upload moves between the nodes with every request; a node is killed with SIGKILL while
a client streams a large layer into it through nginx, and the client's retry succeeds on
the other node. Whatever happened, every manifest and blob pushed reads back through
both nodes with its digest, and the registry's usage is exactly what was pushed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import psycopg
import pytest
from auth_support import Pki
from cryptography.fernet import Fernet
from e2e_support import (
    OCI_CONFIG,
    OCI_MANIFEST,
    OWNER,
    HavenServer,
    LayoutImage,
    Tools,
    assert_blobs_byte_identical,
    read_layout_image,
    sha256_digest,
    unique_repository,
    with_params,
)
from scale_out_support import (
    Endpoint,
    Ledger,
    Nginx,
    assert_all_readable,
    assert_usage_adds_up,
    free_port_avoiding,
    require_program,
    sign_in,
    wait_for_node_receiving,
    write_image,
)

from object_stores import Azurite

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
SMALL_LAYERS = (1 * MiB, 3 * MiB)
# Large enough that a node is still receiving it well after it is seen to start.
LARGE_LAYER = 160 * MiB
KILL_AFTER = 16 * MiB  # received by one node on one connection


def node_settings(database_url: str, storage: str, secret_key: str) -> dict[str, str]:
    """What every node of one deployment shares (docs/scale-out.md)."""
    return {
        "HAVEN_DATABASE_URL": database_url,
        "HAVEN_STORAGE": storage,
        "HAVEN_SECRET_KEY": secret_key,
        "HAVEN_TRUSTED_PROXIES": "127.0.0.1",
        # Two nodes of two workers: 2 x 2 x (4 + 3) connections, on a PostgreSQL that
        # other test sessions use too.
        "HAVEN_DB_THREADS": "4",
    }


@dataclass
class Deployment:
    nodes: list[HavenServer]
    nginx: Nginx
    tools: Tools
    ledger: Ledger
    endpoints: dict[str, Endpoint]  # "A", "B" (the nodes) and "nginx"
    workdir: Path

    def node_endpoint(self, node: HavenServer) -> Endpoint:
        return next(e for e in self.endpoints.values() if e.address == node.address)


@pytest.fixture
def deployment(
    own_postgres_database: str,  # first: dropped after the nodes stopped
    start_haven: Callable[..., HavenServer],
    azurite: Azurite,
    tls_pki: Pki,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Deployment]:
    """Nodes A and B (two workers each) and nginx in front of them, on an empty database
    and container of their own."""
    for program in ("nginx", "ss"):  # missing: fail with the install hint before starting
        require_program(program)
    storage = azurite.url(f"scale-out-{uuid.uuid4().hex[:12]}")
    settings = node_settings(own_postgres_database, storage, Fernet.generate_key().decode())
    nodes = [
        start_haven(
            tmp_path / f"node-{name}", database_url=own_postgres_database, settings=settings
        )
        for name in "ab"
    ]
    https_port = free_port_avoiding({node.port for node in nodes})
    nginx = Nginx(tmp_path / "nginx", [node.address for node in nodes], https_port, tls_pki.files)
    nginx.start()
    endpoints = {
        "A": Endpoint("node A", nodes[0].address),
        "B": Endpoint("node B", nodes[1].address),
        "nginx": Endpoint("nginx", nginx.address, tls_pki),
    }
    tools = Tools(tmp_path / "tools", nodes[0].address)
    sign_in(tools, endpoints.values())
    try:
        yield Deployment(nodes, nginx, tools, Ledger(), endpoints, tmp_path)
    finally:
        tools.close()
        nginx.stop()
        report = getattr(request.node, "e2e_report_call", None)
        if report is not None and report.failed:
            print("--- nginx error log ---")
            print(nginx.error_log())


def run_all(jobs: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the jobs at once; their results in order, or the first failure raised."""
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [future.result() for future in futures]


# --------------------------------------------------------------------------- scenarios


def push_image(deployment: Deployment, image: LayoutImage, via: Endpoint, repository: str) -> None:
    deployment.tools.skopeo(
        "copy",
        *via.tls_flags("dest"),
        f"oci:{image.layout}:{image.tag}",
        via.ref(repository, image.tag),
    )


def pull_and_compare(
    deployment: Deployment, image: LayoutImage, via: Endpoint, repository: str
) -> None:
    # No ":" in the path: skopeo's oci: reference ends with ":tag".
    name = f"{repository}-{via.address}".replace("/", "_").replace(":", "_")
    layout = deployment.workdir / "pulled" / name
    layout.parent.mkdir(parents=True, exist_ok=True)
    deployment.tools.skopeo(
        "copy", *via.tls_flags("src"), via.ref(repository, image.tag), f"oci:{layout}:{image.tag}"
    )
    pulled = read_layout_image(layout, image.tag)
    assert pulled.manifest_digest == image.manifest_digest, via.name
    assert_blobs_byte_identical(image.closure(), pulled.closure())


def push_artifact(via: Endpoint, repository: str, source: Path, chunked: bool) -> None:
    pushed = via.oras().push(
        target=f"{via.address}/{repository}:v1",
        files=[f"{source}:application/vnd.haven.e2e.file"],
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=MiB,
    )
    assert pushed.status_code == 201, pushed.text


def pull_artifact(via: Endpoint, repository: str, source: Path, outdir: Path) -> None:
    pulled = via.oras().pull(target=f"{via.address}/{repository}:v1", outdir=str(outdir))
    assert [Path(path).read_bytes() for path in pulled] == [source.read_bytes()], via.name


def concurrent_pushes_and_pulls(deployment: Deployment, label: str) -> list[str]:
    """Two waves of pushes, one image through each of node A, node B and nginx per wave
    (skopeo) plus one ORAS artifact (chunked through nginx, whole through node B); the
    second wave is pushed while the first is pulled. Each is pulled through the two
    endpoints it was not pushed through. Returns the repositories."""
    endpoints = deployment.endpoints
    sources = deployment.workdir / "sources"
    waves: list[list[tuple[Callable[[], None], Callable[[], None]]]] = []
    repositories = []
    for wave in range(2):
        work = []
        for via in ("A", "B", "nginx"):
            repository = unique_repository(f"{label}-{via}-{wave}")
            repositories.append(repository)
            image = write_image(sources / repository, "v1", SMALL_LAYERS)
            others = [endpoints[name] for name in endpoints if name != via]
            work.append(
                (
                    lambda image=image, via=endpoints[via], r=repository: push_image(
                        deployment, image, via, r
                    ),
                    lambda image=image, others=others, r=repository: [
                        pull_and_compare(deployment, image, other, r) for other in others
                    ],
                )
            )
        via_oras = endpoints["nginx"] if wave == 0 else endpoints["B"]
        repository = unique_repository(f"{label}-oras-{wave}")
        repositories.append(repository)
        source = sources / f"{repository.replace('/', '_')}.bin"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(os.urandom(3 * MiB + 17))
        others = [e for e in endpoints.values() if e is not via_oras]
        work.append(
            (
                lambda v=via_oras, r=repository, s=source: push_artifact(
                    v, r, s, v.pki is not None
                ),
                lambda others=others, r=repository, s=source: [
                    pull_artifact(o, r, s, deployment.workdir / "oras" / r / o.name) for o in others
                ],
            )
        )
        waves.append(work)
    first, second = waves
    run_all([push for push, _ in first])
    run_all([pull for _, pull in first] + [push for push, _ in second])
    run_all([pull for _, pull in second])
    return repositories


def chunked_upload_alternating(
    deployment: Deployment, repository: str, finish_on: HavenServer
) -> tuple[bytes, str]:
    """Upload a blob in chunks whose PATCHes alternate between the two nodes (directly,
    not through nginx), checking each time that the other node sees the upload's new
    size; finished by a PUT with a last chunk on `finish_on`. Returns the blob and its
    digest."""
    a, b = (deployment.node_endpoint(node).http() for node in deployment.nodes)
    # Sizes around Azure's 8 MiB blocks and the 1 MiB tail that is merged into the next
    # request's blocks.
    sizes = [5 * MiB, 600 * 1024, 9 * MiB + 1, 1, 2 * MiB + 3]
    chunks = [os.urandom(size) for size in sizes]
    last = os.urandom(700 * 1024)
    blob = b"".join(chunks) + last
    digest = sha256_digest(blob)
    with a, b:
        started = a.post(f"/v2/{repository}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        offset = 0
        for number, chunk in enumerate(chunks):
            writer, other = (b, a) if number % 2 == 0 else (a, b)
            end = offset + len(chunk) - 1
            answer = writer.patch(
                location,
                content=chunk,
                headers={
                    "Content-Range": f"{offset}-{end}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert answer.status_code == 202, (number, answer.text)
            assert answer.headers["Range"] == f"0-{end}"
            offset = end + 1
            status = other.get(location)
            assert status.status_code == 204, status.text
            assert status.headers["Range"] == f"0-{end}", "the other node sees another size"
            if number == 1:
                # A chunk that does not continue the upload is refused by the other node
                # too: it knows where the upload ends.
                stale = other.patch(
                    location,
                    content=b"x",
                    headers={"Content-Range": "0-0", "Content-Type": "application/octet-stream"},
                )
                assert stale.status_code == 416, stale.text
        finisher = a if finish_on is deployment.nodes[0] else b
        done = finisher.put(
            with_params(location, digest=digest),
            content=last,
            headers={
                "Content-Range": f"{offset}-{offset + len(last) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert done.status_code == 201, done.text
        assert done.headers["Docker-Content-Digest"] == digest
        for client in (a, b):
            head = client.head(f"/v2/{repository}/blobs/{digest}")
            assert head.status_code == 200, head.text
            assert int(head.headers["Content-Length"]) == len(blob)
            got = client.get(f"/v2/{repository}/blobs/{digest}", follow_redirects=True)
            assert got.status_code == 200 and got.content == blob
    return blob, digest


def push_manifest_for(
    deployment: Deployment, via: HavenServer, repository: str, tag: str, layer: tuple[int, str]
) -> None:
    """A manifest naming the uploaded blob as its layer, with a small config."""
    size, digest = layer
    config = f'{{"architecture":"amd64","os":"linux","tag":"{tag}"}}'.encode()
    with deployment.node_endpoint(via).http() as http:
        put = http.post(
            with_params(f"/v2/{repository}/blobs/uploads/", digest=sha256_digest(config)),
            content=config,
        )
        assert put.status_code == 201, put.text
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.haven.e2e.blob", "digest": digest, "size": size}
            ],
        }
        pushed = http.put(
            f"/v2/{repository}/manifests/{tag}",
            json=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert pushed.status_code == 201, pushed.text


def push_large_image_killing_its_node(
    deployment: Deployment, repository: str
) -> tuple[LayoutImage, HavenServer, HavenServer]:
    """skopeo pushes a large image through nginx (retrying up to three times); the node
    that receives the large layer is killed (SIGKILL, all its processes) as soon as 16 MiB
    of it arrived. The push must succeed anyway. Returns the image, the killed node and
    the survivor."""
    nginx = deployment.endpoints["nginx"]
    image = write_image(deployment.workdir / "sources" / "large", "large", (LARGE_LAYER, 64 * 1024))
    with ThreadPoolExecutor(max_workers=1) as pool:
        push = pool.submit(
            deployment.tools.skopeo,
            "copy",
            "--retry-times",
            "3",
            *nginx.tls_flags("dest"),
            f"oci:{image.layout}:{image.tag}",
            nginx.ref(repository, image.tag),
        )
        try:
            victim = wait_for_node_receiving(deployment.nodes, KILL_AFTER)
        except AssertionError:
            push.result()  # its failure says more
            raise
        victim.kill()
        result = push.result()
    survivor = next(node for node in deployment.nodes if node is not victim)
    assert "retrying" in result.stderr, result.stderr

    layer = image.layer_digests[0]
    log = deployment.nginx.access_log()
    # The request cut off with its node: nginx answered BLOB_UPLOAD_INVALID (400)
    # instead of 502, so the client retried.
    cut = [e for e in log if e.status == 400 and e.upstreams[-1] == victim.address]
    assert cut, "no request to the killed node was cut off"
    # The layer's upload then finished on the survivor.
    finished = [
        e for e in log if e.method == "PUT" and layer in unquote(e.path) and e.status == 201
    ]
    assert finished, f"the large layer's upload never finished: {log[-20:]}"
    assert finished[-1].upstreams[-1] == survivor.address, finished[-1]
    return image, victim, survivor


# --------------------------------------------------------------------------- the tests


def test_two_nodes_started_at_once_on_an_empty_database_both_serve(
    own_postgres_database: str,
    start_haven: Callable[..., HavenServer],
    azurite: Azurite,
    tmp_path: Path,
) -> None:
    """The first to take the preparation lock migrates and creates the owner; the other
    waits, then finds both done. Either node then verifies the other's tokens."""
    settings = node_settings(
        own_postgres_database,
        azurite.url(f"scale-out-{uuid.uuid4().hex[:12]}"),
        Fernet.generate_key().decode(),
    )
    a, b = run_all(
        [
            lambda name=name: start_haven(
                tmp_path / f"node-{name}", database_url=own_postgres_database, settings=settings
            )
            for name in "ab"
        ]
    )
    with psycopg.connect(own_postgres_database) as conn:
        owners = conn.execute("SELECT count(*) FROM identities").fetchone()
    assert owners == (1,)
    token = httpx.get(
        f"{a.url}/oauth2/token",
        params={"service": a.address, "scope": "registry:catalog:*"},
        auth=OWNER,
    )
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['token']}"}
    for node in (a, b):
        assert httpx.get(f"{node.url}/readyz").status_code == 200
        catalog = httpx.get(f"{node.url}/v2/_catalog", headers=bearer)
        assert catalog.status_code == 200, catalog.text


def test_concurrent_pushes_and_pulls_through_both_nodes_and_nginx_pull_back_byte_exact(
    deployment: Deployment,
) -> None:
    nginx = deployment.endpoints["nginx"]
    # TLS ends at nginx, and the node, trusting it, names the client's scheme and host.
    challenge = httpx.get(f"{nginx.url}/v2/", verify=nginx.verify)
    assert challenge.status_code == 401
    assert f'realm="https://{nginx.address}/oauth2/token"' in challenge.headers["WWW-Authenticate"]

    repositories = concurrent_pushes_and_pulls(deployment, "concurrent")

    # nginx spread the requests over both nodes.
    served = {e.upstreams[-1] for e in deployment.nginx.access_log() if e.status < 400}
    assert {node.address for node in deployment.nodes} <= served, served
    with deployment.endpoints["A"].http() as a, deployment.endpoints["B"].http() as b:
        for repository in repositories:
            deployment.ledger.record(a, repository, "v1")
        assert_all_readable(b, deployment.ledger)
        assert_usage_adds_up(a, deployment.ledger)


def test_chunked_upload_with_patches_alternating_between_nodes_completes_with_its_digest(
    deployment: Deployment,
) -> None:
    a, b = deployment.nodes
    for finish_on, manifest_via in ((a, b), (b, a)):
        repository = unique_repository("alternating")
        blob, digest = chunked_upload_alternating(deployment, repository, finish_on)
        push_manifest_for(deployment, manifest_via, repository, "v1", (len(blob), digest))
        with deployment.endpoints["nginx"].http() as http:
            deployment.ledger.record(http, repository, "v1")
    for node in deployment.nodes:
        with deployment.node_endpoint(node).http() as http:
            assert_all_readable(http, deployment.ledger)
    with deployment.endpoints["A"].http() as http:
        assert_usage_adds_up(http, deployment.ledger)


def test_node_killed_mid_upload_the_client_retries_through_nginx_and_succeeds_on_the_other(
    deployment: Deployment,
) -> None:
    repository = unique_repository("killed")
    image, victim, survivor = push_large_image_killing_its_node(deployment, repository)

    pull_and_compare(deployment, image, deployment.node_endpoint(survivor), repository)
    # The killed node comes back on its data directory and serves what was pushed.
    victim.start()
    pull_and_compare(deployment, image, deployment.endpoints["nginx"], repository)
    with deployment.node_endpoint(victim).http() as http:
        deployment.ledger.record(http, repository, image.tag)
        assert_all_readable(http, deployment.ledger)
        assert_usage_adds_up(http, deployment.ledger)


def test_no_blob_is_lost_after_concurrent_pushes_alternating_chunks_and_a_killed_node(
    deployment: Deployment,
) -> None:
    """All of the above in one deployment, then a full garbage collection pass: every
    manifest and blob still reads back through both nodes with its digest, and the
    registry's usage is exactly what was pushed, by its own count and a recount."""
    a, b = deployment.nodes
    endpoints = deployment.endpoints
    with endpoints["nginx"].http() as http:
        for repository in concurrent_pushes_and_pulls(deployment, "story"):
            deployment.ledger.record(http, repository, "v1")

        repository = unique_repository("story-alternating")
        blob, digest = chunked_upload_alternating(deployment, repository, b)
        push_manifest_for(deployment, a, repository, "v1", (len(blob), digest))
        deployment.ledger.record(http, repository, "v1")

        repository = unique_repository("story-killed")
        image, victim, _ = push_large_image_killing_its_node(deployment, repository)
        victim.start()
        deployment.ledger.record(http, repository, image.tag)

        collected = http.post("/api/gc", json={"full": True})
        assert collected.status_code == 200, collected.text
        assert collected.json()["blobsDeleted"] == 0, collected.json()

    for node in deployment.nodes:
        with deployment.node_endpoint(node).http() as http:
            assert_all_readable(http, deployment.ledger)
            assert_usage_adds_up(http, deployment.ledger)
