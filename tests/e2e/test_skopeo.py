"""skopeo against Haven: push, pull, inspect, list tags, delete, convert and mount.

Images are built by umoci into OCI image layouts (real tar+gzip layers of random files),
so every byte that comes back can be compared with what went in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from e2e_support import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    MANIFEST_ACCEPT,
    OCI_CONFIG,
    OCI_MANIFEST,
    HavenServer,
    LayoutImage,
    Tools,
    assert_blobs_byte_identical,
    build_image,
    random_files,
    sha256_digest,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def image(tools: Tools, tmp_path: Path) -> LayoutImage:
    """A two-layer linux/amd64 image in an OCI layout, unique to the test."""
    return build_image(
        tools,
        tmp_path / "source-layout",
        "v1",
        [
            {"etc/motd": b"built by umoci for haven\n", **random_files("opt/a", [150_000, 3])},
            random_files("opt/b", [70_000, 0]),
        ],
        labels={"org.opencontainers.image.title": "haven-e2e"},
    )


def test_skopeo_copies_an_oci_layout_to_haven_and_back_byte_exact(
    tools: Tools, image: LayoutImage, repo: Callable[[str], str], tmp_path: Path
) -> None:
    repository = repo("roundtrip")
    tools.push_layout(image, repository, "v1")

    back = tools.pull_to_layout(repository, "v1", tmp_path / "pulled-layout")

    assert back.manifest_digest == image.manifest_digest
    assert_blobs_byte_identical(image.closure(), back.closure())
    assert back.layer_files()["etc/motd"] == b"built by umoci for haven\n"


def test_skopeo_inspect_reports_the_pushed_digest_platform_and_layers(
    tools: Tools, image: LayoutImage, repo: Callable[[str], str]
) -> None:
    repository = repo("inspect")
    tools.push_layout(image, repository, "v1")
    reference = tools.ref(repository, "v1")

    info = tools.skopeo("inspect", "--tls-verify=false", reference).json()
    raw = tools.skopeo("inspect", "--raw", "--tls-verify=false", reference).stdout.encode()
    config = tools.skopeo(
        "inspect", "--config", "--raw", "--tls-verify=false", reference
    ).stdout.encode()

    assert info["Digest"] == image.manifest_digest
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Layers"] == image.layer_digests
    assert info["Labels"] == {"org.opencontainers.image.title": "haven-e2e"}
    assert "v1" in info["RepoTags"]
    assert raw == image.manifest_bytes
    assert sha256_digest(raw) == info["Digest"]
    assert config == image.blob(image.config_digest)


def test_skopeo_inspect_by_digest_returns_the_same_manifest_as_by_tag(
    tools: Tools, image: LayoutImage, repo: Callable[[str], str]
) -> None:
    repository = repo("bydigest")
    tools.push_layout(image, repository, "v1")

    by_digest = tools.inspect_raw(repository, image.manifest_digest)

    assert by_digest == tools.inspect_raw(repository, "v1") == image.manifest_bytes


def test_skopeo_list_tags_shows_every_pushed_tag(
    tools: Tools, image: LayoutImage, repo: Callable[[str], str]
) -> None:
    repository = repo("tags")
    tags = ["v1", "v1.0.0", "latest", "release-2024_01"]
    for tag in tags:
        tools.push_layout(image, repository, tag)

    listed = tools.skopeo(
        "list-tags", "--tls-verify=false", f"docker://{tools.registry}/{repository}"
    ).json()

    assert listed["Repository"] == f"{tools.registry}/{repository}"
    assert sorted(listed["Tags"]) == sorted(tags)


def test_skopeo_delete_removes_the_manifest_so_inspect_fails(
    tools: Tools,
    image: LayoutImage,
    repo: Callable[[str], str],
    http: httpx.Client,
) -> None:
    repository = repo("delete")
    tools.push_layout(image, repository, "doomed")
    assert tools.inspect_raw(repository, "doomed") == image.manifest_bytes

    tools.skopeo("delete", "--tls-verify=false", tools.ref(repository, "doomed"))

    by_tag = tools.skopeo(
        "inspect", "--raw", "--tls-verify=false", tools.ref(repository, "doomed"), check=False
    )
    assert by_tag.returncode != 0, f"inspect still succeeds after delete: {by_tag.stdout}"
    assert "manifest unknown" in by_tag.stderr.lower(), by_tag.stderr
    by_digest = http.get(
        f"/v2/{repository}/manifests/{image.manifest_digest}",
        headers={"Accept": MANIFEST_ACCEPT},
    )
    assert by_digest.status_code == 404, by_digest.text
    assert by_digest.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_skopeo_copies_in_docker_schema2_format_and_back_byte_exact(
    tools: Tools,
    image: LayoutImage,
    repo: Callable[[str], str],
    http: httpx.Client,
    tmp_path: Path,
) -> None:
    repository = repo("v2s2")
    tools.push_layout(image, repository, "v1", "--format", "v2s2")

    raw = tools.inspect_raw(repository, "v1")
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert manifest["config"]["digest"] == image.config_digest
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DOCKER_LAYER_GZIP] * 2
    assert [layer["digest"] for layer in manifest["layers"]] == image.layer_digests

    served = http.get(f"/v2/{repository}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert served.status_code == 200
    assert served.headers["content-type"].split(";")[0] == DOCKER_MANIFEST
    assert served.headers["docker-content-digest"] == sha256_digest(raw)
    assert served.content == raw

    # The dir: transport stores the manifest and blobs exactly as the registry served them.
    copy_dir = tmp_path / "dir-copy"
    tools.skopeo("copy", "--src-tls-verify=false", tools.ref(repository, "v1"), f"dir:{copy_dir}")
    assert (copy_dir / "manifest.json").read_bytes() == raw
    for digest in [image.config_digest, *image.layer_digests]:
        stored = copy_dir / digest.removeprefix("sha256:")
        assert stored.read_bytes() == image.blob(digest), f"blob {digest} differs"


def test_skopeo_converts_a_docker_schema2_image_in_haven_back_to_oci(
    tools: Tools, image: LayoutImage, repo: Callable[[str], str], tmp_path: Path
) -> None:
    docker_repo, oci_repo = repo("docker"), repo("oci")
    tools.push_layout(image, docker_repo, "v1", "--format", "v2s2")

    tools.skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        tools.ref(docker_repo, "v1"),
        tools.ref(oci_repo, "v1"),
    )

    converted = json.loads(tools.inspect_raw(oci_repo, "v1"))
    assert converted["mediaType"] == OCI_MANIFEST
    assert converted["config"]["mediaType"] == OCI_CONFIG
    back = tools.pull_to_layout(oci_repo, "v1", tmp_path / "back")
    # Layers travel untouched; the config is re-serialised by the conversion itself.
    assert back.layer_digests == image.layer_digests
    for digest in image.layer_digests:
        assert back.blob(digest) == image.blob(digest)
    assert back.config["architecture"] == "amd64"
    assert back.config["rootfs"] == image.config["rootfs"]


def test_skopeo_copies_between_two_repositories_in_haven_by_mounting_blobs(
    tools: Tools,
    image: LayoutImage,
    repo: Callable[[str], str],
    http: httpx.Client,
) -> None:
    source, target = repo("source"), repo("target")
    tools.push_layout(image, source, "v1")

    copied = tools.skopeo(
        "--debug",
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        tools.ref(source, "v1"),
        tools.ref(target, "v1"),
    )

    assert tools.inspect_raw(target, "v1") == image.manifest_bytes
    # skopeo found the layers in the source repository and asked Haven to mount them
    # (POST /v2/<target>/blobs/uploads/?mount=<digest>&from=<source>) instead of
    # uploading them again.
    mount_attempts = [line for line in copied.stderr.splitlines() if "Trying to mount" in line]
    assert mount_attempts, f"skopeo never tried a cross-repository mount:\n{copied.stderr}"
    assert "mount OK" in copied.stderr, f"no mount succeeded:\n{copied.stderr}"
    for digest in image.layer_digests:
        head = http.head(f"/v2/{target}/blobs/{digest}")
        assert head.status_code == 200
        assert head.headers["docker-content-digest"] == digest
        assert int(head.headers["content-length"]) == len(image.blob(digest))

    # The same mount, asked for directly, is answered 201 Created per the distribution spec.
    third = repo("third")
    layer = image.layer_digests[0]
    mounted = http.post(f"/v2/{third}/blobs/uploads/", params={"mount": layer, "from": source})
    assert mounted.status_code == 201, mounted.text
    assert mounted.headers["location"].endswith(f"/v2/{third}/blobs/{layer}")
    assert http.get(f"/v2/{third}/blobs/{layer}").content == image.blob(layer)


def test_skopeo_round_trips_a_32_mib_layer_byte_exact(
    tools: Tools, repo: Callable[[str], str], tmp_path: Path
) -> None:
    big = build_image(
        tools, tmp_path / "big-layout", "v1", [random_files("blob", [32 * 1024 * 1024])]
    )
    repository = repo("big")
    tools.push_layout(big, repository, "v1")

    back = tools.pull_to_layout(repository, "v1", tmp_path / "pulled")

    assert_blobs_byte_identical(big.closure(), back.closure())


def test_parallel_skopeo_pushes_of_the_same_layers_all_complete_byte_exact(
    tools: Tools, image: LayoutImage, repo: Callable[[str], str], tmp_path: Path
) -> None:
    shared = repo("shared")
    targets = [(repo("a"), "v1"), (repo("b"), "v1"), (shared, "x"), (shared, "y")]

    # Several clients uploading the same blobs at the same moment, across the server's
    # worker processes, into different repositories and into one.
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        pushes = [
            pool.submit(tools.push_layout, image, repository, tag) for repository, tag in targets
        ]
        for push in pushes:
            push.result()

    for number, (repository, tag) in enumerate(targets):
        back = tools.pull_to_layout(repository, tag, tmp_path / f"back-{number}")
        assert_blobs_byte_identical(image.closure(), back.closure())
    listed = tools.skopeo(
        "list-tags", "--tls-verify=false", f"docker://{tools.registry}/{shared}"
    ).json()
    assert sorted(listed["Tags"]) == ["x", "y"]


def test_an_image_pushed_through_one_host_name_is_pulled_through_another(
    tools: Tools, image: LayoutImage, repo: Callable[[str], str], haven: HavenServer
) -> None:
    repository = repo("hosts")
    tools.push_layout(image, repository, "v1")

    # 127.0.0.1 and localhost are both unknown host names: both reach the default registry.
    via_localhost = tools.skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        f"docker://localhost:{haven.port}/{repository}:v1",
    )

    assert via_localhost.stdout.encode() == image.manifest_bytes


def test_skopeo_pushes_zstd_compressed_layers_that_come_back_byte_exact(
    tools: Tools, image: LayoutImage, repo: Callable[[str], str], tmp_path: Path
) -> None:
    repository = repo("zstd")
    tools.push_layout(image, repository, "v1", "--dest-compress-format", "zstd")

    manifest = json.loads(tools.inspect_raw(repository, "v1"))
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+zstd"
    ] * 2
    copy_dir = tmp_path / "zstd-dir"
    tools.skopeo("copy", "--src-tls-verify=false", tools.ref(repository, "v1"), f"dir:{copy_dir}")
    for layer in manifest["layers"]:
        stored = (copy_dir / layer["digest"].removeprefix("sha256:")).read_bytes()
        assert len(stored) == layer["size"]
        assert sha256_digest(stored) == layer["digest"]
        assert stored[:4] == b"\x28\xb5\x2f\xfd", "not a zstd frame"
