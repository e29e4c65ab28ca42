"""Crash durability: `kill -9` of the whole server in the middle of a large upload.

Every push that a client saw complete before the crash must still be there, byte for byte,
after `haven serve` is started again on the same data directory; the interrupted upload
must leave no blob behind and must not keep the registry from accepting new pushes.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from e2e_support import (
    OWNER,
    HavenServer,
    LayoutImage,
    Tools,
    assert_blobs_byte_identical,
    build_image,
    random_files,
    sha256_digest,
    with_params,
)

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
LARGE_BLOB_SIZE = 200 * MIB
KILL_AFTER = 48 * MIB  # bytes handed to the socket before the server is killed


def push_blob_in_chunks(http: httpx.Client, repository: str, data: bytes, chunk: int) -> str:
    """POST, PATCH with Content-Range per chunk, then PUT ?digest= (the spec's chunked upload)."""
    started = http.post(f"/v2/{repository}/blobs/uploads/", headers={"Content-Length": "0"})
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    for offset in range(0, len(data), chunk):
        part = data[offset : offset + chunk]
        patched = http.patch(
            location,
            content=part,
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(part) - 1}",
            },
        )
        assert patched.status_code == 202, patched.text
        location = patched.headers["location"]
    digest = sha256_digest(data)
    finished = http.put(with_params(location, digest=digest))
    assert finished.status_code == 201, finished.text
    return digest


class KilledMidUpload:
    """Streams a large PATCH body and SIGKILLs the server once enough of it has been sent."""

    def __init__(self, server: HavenServer, total: int, kill_after: int):
        self.server = server
        self.total = total
        self.kill_after = kill_after
        self.block = os.urandom(MIB)
        self.sent = 0
        self.sent_at_kill: int | None = None
        self._threshold = threading.Event()
        self._killer = threading.Thread(target=self._kill_when_due, daemon=True)

    def digest(self) -> str:
        """The digest the whole blob would have had."""
        hasher = hashlib.sha256()
        for _ in range(self.total // len(self.block)):
            hasher.update(self.block)
        return "sha256:" + hasher.hexdigest()

    def body(self) -> Iterator[bytes]:
        while self.sent < self.total:
            if self.sent >= self.kill_after:
                self._threshold.set()
            yield self.block
            self.sent += len(self.block)

    def _kill_when_due(self) -> None:
        # If the server stops reading, the body stalls before the threshold: kill anyway.
        self._threshold.wait(timeout=60)
        self.sent_at_kill = self.sent
        self.server.kill()

    def run(self, http: httpx.Client, location: str) -> None:
        self._killer.start()
        try:
            with pytest.raises(httpx.TransportError):
                http.patch(
                    location,
                    content=self.body(),
                    headers={"Content-Type": "application/octet-stream"},
                    timeout=httpx.Timeout(90.0),
                )
        finally:
            self._killer.join(timeout=90)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """Metadata in SQLite inside the data directory (the default), or in PostgreSQL."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("own_postgres_database"))
    return None


def test_completed_pushes_survive_a_sigkill_mid_upload_and_stay_pullable_byte_exact(
    start_haven: Callable[..., HavenServer],
    database_url: str | None,
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "haven-data"
    server = start_haven(data_dir, database_url=database_url)
    tools = Tools(tmp_path / "tools", server.address)
    try:
        # Several complete pushes of different kinds, each confirmed by its client.
        images: list[tuple[LayoutImage, str]] = []
        for number in range(3):
            image = build_image(
                tools,
                tmp_path / "layouts",
                f"img{number}",
                [random_files(f"base{number}", [120_000, 7]), random_files("app", [60_000])],
            )
            repository = repo(f"img{number}")
            tools.push_layout(image, repository, "v1")
            images.append((image, repository))
        docker_repository = repo("docker")
        tools.push_layout(images[0][0], docker_repository, "v2s2", "--format", "v2s2")
        docker_manifest = tools.inspect_raw(docker_repository, "v2s2")
        chunked_repository = repo("chunked")
        chunked_data = os.urandom(5 * MIB + 123)
        with httpx.Client(base_url=server.url, timeout=60.0, auth=OWNER) as http:
            chunked_digest = push_blob_in_chunks(http, chunked_repository, chunked_data, 2 * MIB)

            # Then a 200 MB blob upload that the server is killed in the middle of.
            large_repository = repo("large")
            started = http.post(f"/v2/{large_repository}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            crash = KilledMidUpload(server, LARGE_BLOB_SIZE, KILL_AFTER)
            crash.run(http, location)
        assert server.process is not None and server.process.poll() is not None
        assert crash.sent_at_kill is not None
        assert KILL_AFTER <= crash.sent_at_kill < LARGE_BLOB_SIZE, (
            f"the server was not killed mid-upload ({crash.sent_at_kill} bytes sent)"
        )

        restarted = start_haven(data_dir, server.port, database_url)

        for image, repository in images:
            assert tools.inspect_raw(repository, "v1") == image.manifest_bytes
            back = tools.pull_to_layout(
                repository, "v1", tmp_path / "after" / repository.replace("/", "_")
            )
            assert back.manifest_digest == image.manifest_digest
            assert_blobs_byte_identical(image.closure(), back.closure())
        assert tools.inspect_raw(docker_repository, "v2s2") == docker_manifest
        with httpx.Client(base_url=restarted.url, timeout=60.0, auth=OWNER) as http:
            blob = http.get(f"/v2/{chunked_repository}/blobs/{chunked_digest}")
            assert blob.status_code == 200
            assert blob.content == chunked_data

            # The interrupted upload is either resumable or gone, never half a blob.
            assert http.head(f"/v2/{large_repository}/blobs/{crash.digest()}").status_code == 404
            session = http.get(location)
            assert session.status_code in (204, 404), f"{session.status_code} {session.text}"

            # And the registry takes new pushes, into the same repository too.
            again = push_blob_in_chunks(http, large_repository, os.urandom(3 * MIB), 1 * MIB)
            assert http.head(f"/v2/{large_repository}/blobs/{again}").status_code == 200
        tools.push_layout(images[1][0], repo("after-restart"), "v1")
        listed = tools.skopeo(
            "list-tags", "--tls-verify=false", f"docker://{tools.registry}/{images[2][1]}"
        ).json()
        assert listed["Tags"] == ["v1"]
    finally:
        tools.close()


def test_a_clean_restart_keeps_every_tag_and_the_catalog(
    start_haven: Callable[..., HavenServer],
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "haven-data"
    server = start_haven(data_dir)
    tools = Tools(tmp_path / "tools", server.address)
    try:
        image = build_image(tools, tmp_path / "layout", "v1", [random_files("a", [10_000])])
        repository = repo("tags")
        for tag in ("a", "b", "c"):
            tools.push_layout(image, repository, tag)
        server.stop()

        restarted = start_haven(data_dir, server.port)

        listed = tools.skopeo(
            "list-tags", "--tls-verify=false", f"docker://{tools.registry}/{repository}"
        ).json()
        assert sorted(listed["Tags"]) == ["a", "b", "c"]
        catalog = httpx.get(f"{restarted.url}/v2/_catalog", timeout=30.0, auth=OWNER)
        assert catalog.status_code == 200
        assert repository in json.loads(catalog.content)["repositories"]
    finally:
        tools.close()
