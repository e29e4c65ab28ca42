"""podman and buildah against Haven: pull, push, multi-platform manifest lists, commit.

podman and buildah run as the invoking user with the vfs storage driver in a store private
to the test; no container is ever started, so no runtime or network setup is involved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from e2e_support import (
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    LayoutImage,
    Tools,
    assert_blobs_byte_identical,
    build_image,
    random_files,
    sha256_digest,
    tar_gzip_files,
)

pytestmark = pytest.mark.e2e


def mounted_file(tools: Tools, image: str, relative: str) -> bytes:
    """Read one file out of an image in the test's podman store (no container needed)."""
    root = Path(tools.podman("image", "mount", image).stdout.strip())
    try:
        return (root / relative).read_bytes()
    finally:
        tools.podman("image", "unmount", image)


def test_podman_pulls_a_skopeo_pushed_image_pushes_it_under_a_new_name_and_pulls_it_back(
    tools: Tools, repo: Callable[[str], str], tmp_path: Path
) -> None:
    payload = random_files("srv", [200_000])
    image = build_image(tools, tmp_path / "layout", "v1", [{"etc/hostname": b"haven\n"}, payload])
    source, renamed = repo("src"), repo("renamed")
    tools.push_layout(image, source, "v1")

    tools.podman("pull", "--tls-verify=false", tools.name(source, "v1"))
    tools.podman("push", "--tls-verify=false", tools.name(source, "v1"), tools.ref(renamed, "v2"))
    tools.podman("rmi", "--all", "--force")
    tools.podman("pull", "--tls-verify=false", tools.name(renamed, "v2"))

    pulled = tools.podman("image", "inspect", tools.name(renamed, "v2")).json()[0]
    # An image's ID is its config digest: the same config came back through two pushes.
    assert "sha256:" + pulled["Id"] == image.config_digest
    assert pulled["Architecture"] == "amd64"
    assert pulled["Os"] == "linux"
    assert pulled["Config"]["Cmd"] == ["/bin/app"]
    assert (
        mounted_file(tools, tools.name(renamed, "v2"), "srv/file-0.bin")
        == payload["srv/file-0.bin"]
    )
    assert mounted_file(tools, tools.name(renamed, "v2"), "etc/hostname") == b"haven\n"
    # And what podman pushed is a complete image in Haven, readable by another client.
    info = tools.skopeo("inspect", "--tls-verify=false", tools.ref(renamed, "v2")).json()
    assert info["Digest"] == pulled["Digest"]
    assert len(info["Layers"]) == 2
    # Pull by digest as well, from the original repository.
    tools.podman("rmi", "--all", "--force")
    tools.podman("pull", "--tls-verify=false", f"{tools.registry}/{source}@{image.manifest_digest}")
    by_digest = tools.podman(
        "image", "inspect", f"{tools.registry}/{source}@{image.manifest_digest}"
    )
    assert "sha256:" + by_digest.json()[0]["Id"] == image.config_digest


def test_podman_pulls_an_image_whose_layers_skopeo_pushed_zstd_compressed(
    tools: Tools, repo: Callable[[str], str], tmp_path: Path
) -> None:
    payload = random_files("zstd", [100_000])
    image = build_image(tools, tmp_path / "layout", "v1", [payload])
    repository = repo("zstd")
    tools.push_layout(image, repository, "v1", "--dest-compress-format", "zstd")

    tools.podman("pull", "--tls-verify=false", tools.name(repository, "v1"))

    pulled = tools.podman("image", "inspect", tools.name(repository, "v1")).json()[0]
    assert "sha256:" + pulled["Id"] == image.config_digest
    assert (
        mounted_file(tools, tools.name(repository, "v1"), "zstd/file-0.bin")
        == payload["zstd/file-0.bin"]
    )


def test_podman_pushes_in_docker_format_and_the_pull_matches_the_image_id(
    tools: Tools, repo: Callable[[str], str], tmp_path: Path
) -> None:
    image = build_image(tools, tmp_path / "layout", "v1", [random_files("data", [50_000])])
    source, docker = repo("src"), repo("docker")
    tools.push_layout(image, source, "v1")
    tools.podman("pull", "--tls-verify=false", tools.name(source, "v1"))

    tools.podman(
        "push",
        "--tls-verify=false",
        "--format",
        "v2s2",
        tools.name(source, "v1"),
        tools.ref(docker, "v1"),
    )
    tools.podman("rmi", "--all", "--force")
    tools.podman("pull", "--tls-verify=false", tools.name(docker, "v1"))

    manifest = json.loads(tools.inspect_raw(docker, "v1"))
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    pulled = tools.podman("image", "inspect", tools.name(docker, "v1")).json()[0]
    assert "sha256:" + pulled["Id"] == manifest["config"]["digest"]


@pytest.fixture
def two_platform_images(tools: Tools, tmp_path: Path) -> dict[str, LayoutImage]:
    """linux/amd64 and linux/arm64 images of the same app, each with its own marker file."""
    layout = tmp_path / "platforms"
    return {
        arch: build_image(
            tools,
            layout,
            arch,
            [
                {"etc/os-release": b"ID=haven-e2e\n"},
                {
                    f"opt/app/{arch}.txt": f"built for {arch}\n".encode(),
                    **random_files(arch, [30_000]),
                },
            ],
            architecture=arch,
            cmd=f"/opt/app/{arch}",
        )
        for arch in ("amd64", "arm64")
    }


def test_podman_manifest_push_all_stores_a_two_platform_index_that_skopeo_resolves_per_arch(
    tools: Tools,
    repo: Callable[[str], str],
    two_platform_images: dict[str, LayoutImage],
    tmp_path: Path,
) -> None:
    repository = repo("multi")
    tools.podman("manifest", "create", "localhost/haven-e2e-list:1")
    for image in two_platform_images.values():
        tools.podman(
            "manifest", "add", "localhost/haven-e2e-list:1", f"oci:{image.layout}:{image.tag}"
        )
    tools.podman(
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        "localhost/haven-e2e-list:1",
        tools.ref(repository, "multi"),
    )

    index_bytes = tools.inspect_raw(repository, "multi")
    index = json.loads(index_bytes)
    assert index["mediaType"] in (OCI_INDEX, DOCKER_MANIFEST_LIST)
    platforms = {
        (entry["platform"]["os"], entry["platform"]["architecture"]): entry["digest"]
        for entry in index["manifests"]
    }
    assert platforms == {
        ("linux", arch): image.manifest_digest for arch, image in two_platform_images.items()
    }
    # Every child manifest is there, by digest, byte for byte.
    for image in two_platform_images.values():
        assert tools.inspect_raw(repository, image.manifest_digest) == image.manifest_bytes

    arm = tools.skopeo(
        "inspect",
        "--tls-verify=false",
        "--override-os",
        "linux",
        "--override-arch",
        "arm64",
        tools.ref(repository, "multi"),
    ).json()
    # skopeo reports the digest of what the tag names (the index) and the chosen image's
    # configuration and layers.
    assert arm["Digest"] == sha256_digest(index_bytes)
    assert arm["Architecture"] == "arm64"
    assert arm["Layers"] == two_platform_images["arm64"].layer_digests

    pulled = tools.pull_to_layout(
        repository,
        "multi",
        tmp_path / "arm64-only",
        "--override-os",
        "linux",
        "--override-arch",
        "arm64",
    )
    expected = two_platform_images["arm64"]
    assert pulled.manifest_digest == expected.manifest_digest
    assert_blobs_byte_identical(expected.closure(), pulled.closure())
    assert pulled.config["architecture"] == "arm64"
    assert pulled.layer_files()["opt/app/arm64.txt"] == b"built for arm64\n"
    assert "opt/app/amd64.txt" not in pulled.layer_files()


def test_skopeo_copy_all_round_trips_a_podman_pushed_index_byte_exact(
    tools: Tools,
    repo: Callable[[str], str],
    two_platform_images: dict[str, LayoutImage],
    tmp_path: Path,
) -> None:
    repository = repo("index")
    tools.podman("manifest", "create", "localhost/haven-e2e-index:1")
    for image in two_platform_images.values():
        tools.podman(
            "manifest", "add", "localhost/haven-e2e-index:1", f"oci:{image.layout}:{image.tag}"
        )
    tools.podman(
        "manifest",
        "push",
        "--all",
        "--tls-verify=false",
        "localhost/haven-e2e-index:1",
        tools.ref(repository, "v1"),
    )
    served = tools.inspect_raw(repository, "v1")

    tools.skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        tools.ref(repository, "v1"),
        f"oci:{tmp_path / 'all'}:v1",
    )

    copied_index = json.loads((tmp_path / "all" / "index.json").read_text())
    (entry,) = copied_index["manifests"]
    copied = (tmp_path / "all" / "blobs" / entry["digest"].replace(":", "/")).read_bytes()
    assert copied == served
    for image in two_platform_images.values():
        child = tmp_path / "all" / "blobs" / image.manifest_digest.replace(":", "/")
        assert child.read_bytes() == image.manifest_bytes
        for digest in image.layer_digests:
            layer = tmp_path / "all" / "blobs" / digest.replace(":", "/")
            assert layer.read_bytes() == image.blob(digest)


def test_buildah_commits_a_scratch_arm64_image_straight_to_haven(
    tools: Tools, repo: Callable[[str], str], tmp_path: Path
) -> None:
    repository = repo("buildah")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(random_files("x", [40_000])["x/file-0.bin"])

    container = tools.buildah("from", "scratch").stdout.strip()
    tools.buildah("copy", container, str(payload), "/payload.bin")
    tools.buildah("config", "--arch", "arm64", "--os", "linux", "--cmd", "/payload.bin", container)
    tools.buildah("commit", "--tls-verify=false", container, tools.ref(repository, "v1"))

    info = tools.skopeo("inspect", "--tls-verify=false", tools.ref(repository, "v1")).json()
    assert info["Architecture"] == "arm64"
    pulled = tools.pull_to_layout(repository, "v1", tmp_path / "pulled")
    (layer,) = pulled.layer_digests
    assert tar_gzip_files(pulled.blob(layer))["payload.bin"] == payload.read_bytes()
