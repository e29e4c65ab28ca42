"""Real clients sign in to Haven over HTTPS: docker, podman, skopeo, ctr, the ORAS SDK,
httpx, curl and openssl, each trusting the session's test CA its own way (see
auth_support), against one `haven serve --tls-cert --tls-key`.

Every test proves both halves: the client gets in with the right credentials and the CA,
and is refused (with the client's own words for it) without them. Identities, role
assignments, the admin user and repository tokens are set up with the `haven` CLI, signed
in as the deployment owner with `haven account login --ca-file`.

docker talks to Haven on 127.0.0.1 over HTTPS: dockerd treats registries in 127.0.0.0/8
as insecure and does not verify their certificate (tests may only reach loopback
addresses), so its tests prove sign-in, push and pull, not certificate trust; the other
clients prove that.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import ssl
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
import requests
from auth_support import (
    HOST_ARCHITECTURE,
    REFRESH_TOKEN_USER,
    ContainerdDaemon,
    Ctr,
    DockerClient,
    DockerDaemon,
    HavenCli,
    OrasClient,
    Pki,
    SecureTools,
    assert_refused,
    ca_context,
    creds,
    daemon_environment,
    legacy_tls_server,
)
from e2e_support import (
    MANIFEST_ACCEPT,
    OWNER,
    HavenServer,
    LayoutImage,
    Tools,
    assert_blobs_byte_identical,
    build_image,
    random_files,
    read_layout_image,
    run_tool,
)

pytestmark = pytest.mark.e2e

# The name the sample image carries in its docker-archive (and so in docker and podman
# after `load`); fully qualified, so podman does not resolve it as a short name.
SAMPLE_NAME = "localhost/haven-e2e/sample:v1"
UNTRUSTED = ("certificate signed by unknown authority", "x509", "certificate verify failed")
UNAUTHORIZED = ("unauthorized", "authentication required", "invalid username/password")
DENIED = ("denied", "forbidden")


@dataclass(frozen=True)
class SampleImage:
    """A small two-layer image for this machine's platform, as an OCI layout and as a
    docker-archive tar (for `docker load` and `podman load`)."""

    image: LayoutImage
    docker_archive: Path


@pytest.fixture(scope="module")
def sample_image(
    haven_tls: HavenServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SampleImage]:
    base = tmp_path_factory.mktemp("sample")
    tools = SecureTools(base / "tools", haven_tls.address)
    try:
        image = build_image(
            tools,
            base / "layout",
            "v1",
            [{"etc/hostname": b"haven-auth\n"}, random_files("data", [60_000])],
            architecture=HOST_ARCHITECTURE,
        )
        archive = base / "sample.tar"
        tools.skopeo("copy", f"oci:{image.layout}:v1", f"docker-archive:{archive}:{SAMPLE_NAME}")
        yield SampleImage(image, archive)
    finally:
        tools.close()


@pytest.fixture(scope="module")
def owner_cli(
    haven_tls: HavenServer, tls_pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> HavenCli:
    """The `haven` CLI signed in to the HTTPS server as the owner, trusting the test CA."""
    cli = HavenCli(tmp_path_factory.mktemp("haven-cli"))
    me = cli.json(
        "account",
        "login",
        "--server",
        haven_tls.url,
        "-u",
        OWNER[0],
        "-p",
        OWNER[1],
        "--ca-file",
        str(tls_pki.ca_cert),
    )
    assert me["name"] == OWNER[0], me
    return cli


@pytest.fixture
def secure_tools(haven_tls: HavenServer, tmp_path: Path) -> Iterator[SecureTools]:
    tools = SecureTools(tmp_path / "tools", haven_tls.address)
    try:
        yield tools
    finally:
        tools.close()


@pytest.fixture
def docker(dockerd: DockerDaemon, tmp_path: Path) -> Iterator[DockerClient]:
    client = DockerClient(dockerd, tmp_path / "docker")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def ctr(containerd: ContainerdDaemon, tmp_path: Path) -> Ctr:
    return Ctr(containerd, tmp_path, namespace=f"haven-e2e-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def https(haven_tls: HavenServer, tls_pki: Pki) -> Iterator[httpx.Client]:
    """httpx on the HTTPS server as the owner, trusting the test CA alone (and following
    blob downloads' redirects to an object store)."""
    with httpx.Client(
        base_url=haven_tls.url,
        auth=OWNER,
        verify=ca_context(tls_pki.ca_cert),
        timeout=60.0,
        follow_redirects=True,
    ) as client:
        yield client


def stored_digest(https: httpx.Client, repository: str, reference: str) -> str | None:
    """The digest of the manifest Haven holds at repository:reference (None: none)."""
    response = https.get(
        f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    return response.headers["docker-content-digest"]


def push_as_owner(tools: Tools, pki: Pki, image: LayoutImage, repository: str, tag: str) -> None:
    tools.skopeo(
        "copy",
        f"--dest-creds={creds(*OWNER)}",
        f"--dest-cert-dir={pki.cert_dir}",
        f"oci:{image.layout}:{image.tag}",
        tools.ref(repository, tag),
    )


def challenge(response: httpx.Response) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer …` challenge."""
    header = response.headers.get("www-authenticate", "")
    assert header.startswith("Bearer "), f"not a Bearer challenge: {header!r}"
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


# --------------------------------------------------------------------------- docker


def test_docker_logs_in_pushes_pulls_and_logs_out(
    docker: DockerClient,
    docker_registry: str,
    tls_pki: Pki,
    sample_image: SampleImage,
    repo: Callable[[str], str],
    https: httpx.Client,
) -> None:
    docker.trust(docker_registry, tls_pki.ca_cert)
    wrong = docker.run("login", docker_registry, "-u", OWNER[0], "-p", "not-it", check=False)
    assert_refused(wrong, "unauthorized")
    assert docker_registry not in docker.config().get("auths", {})

    login = docker.run("login", docker_registry, "-u", OWNER[0], "-p", OWNER[1])
    assert "Login Succeeded" in login.stdout
    assert docker_registry in docker.config()["auths"]

    image_id = docker.load(sample_image.docker_archive)
    repository = repo("docker")
    target = f"{docker_registry}/{repository}:v1"
    docker.run("tag", SAMPLE_NAME, target)
    pushed = docker.run("push", target)
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed.stdout)
    assert digest, pushed.stdout
    assert stored_digest(https, repository, "v1") == digest[1]

    # Nothing of the image is left in dockerd: the pull downloads all of it.
    docker.run("image", "rm", "--force", image_id)
    assert docker.run("image", "inspect", target, check=False).returncode != 0
    pulled = docker.run("pull", target)
    assert f"Digest: {digest[1]}" in pulled.stdout
    assert docker.image_id(target) == image_id

    logout = docker.run("logout", docker_registry)
    assert "Removing login credentials" in logout.stdout
    assert docker_registry not in docker.config().get("auths", {})
    docker.run("image", "rm", "--force", image_id)
    assert_refused(docker.run("pull", target, check=False), *UNAUTHORIZED)


def test_an_acrpull_identity_made_with_the_cli_pulls_with_docker_and_its_push_is_refused(
    docker: DockerClient,
    docker_registry: str,
    tls_pki: Pki,
    owner_cli: HavenCli,
    secure_tools: SecureTools,
    sample_image: SampleImage,
    repo: Callable[[str], str],
    https: httpx.Client,
) -> None:
    repository = repo("acrpull")
    push_as_owner(secure_tools, tls_pki, sample_image.image, repository, "v1")
    name, password = f"puller-{uuid.uuid4().hex[:8]}", f"Pull-{secrets.token_urlsafe(12)}"
    created = owner_cli.json("identity", "create", "-n", name, "-p", password)
    assert created["name"] == name and created["kind"] == "user", created
    assignment = owner_cli.json(
        "role",
        "assignment",
        "create",
        "--role",
        "AcrPull",
        "--assignee",
        name,
        "--scope",
        "default",
    )
    assert (assignment["role"], assignment["scope"]) == ("AcrPull", "default"), assignment

    docker.trust(docker_registry, tls_pki.ca_cert)
    login = docker.run("login", docker_registry, "-u", name, "-p", password)
    assert "Login Succeeded" in login.stdout
    source = f"{docker_registry}/{repository}:v1"
    pulled = docker.run("pull", source)
    assert f"Digest: {sample_image.image.manifest_digest}" in pulled.stdout

    # Pull on the repository does not make push: not a new tag there, nor a new repository.
    for target_repository in (repository, repo("acrpull-new")):
        target = f"{docker_registry}/{target_repository}:by-puller"
        docker.run("tag", source, target)
        refused = docker.run("push", target, check=False)
        assert_refused(refused, "requested access to the resource is denied")
        assert f"{name} may not push (content/write)" in refused.stdout + refused.stderr
        assert stored_digest(https, target_repository, "by-puller") is None


# --------------------------------------------------------------------------- podman, skopeo


def test_podman_logs_in_with_its_own_authfile_and_cert_dir_then_pushes_and_pulls(
    secure_tools: SecureTools,
    tls_pki: Pki,
    sample_image: SampleImage,
    repo: Callable[[str], str],
    https: httpx.Client,
    tmp_path: Path,
) -> None:
    tools = secure_tools
    registry = tools.registry
    authfile = f"--authfile={tmp_path / 'podman-auth.json'}"
    cert_dir = f"--cert-dir={tls_pki.cert_dir}"

    untrusted = tools.podman(
        "login", authfile, "-u", OWNER[0], "-p", OWNER[1], registry, check=False
    )
    assert_refused(untrusted, *UNTRUSTED)
    wrong = tools.podman(
        "login", authfile, cert_dir, "-u", OWNER[0], "-p", "not-it", registry, check=False
    )
    assert_refused(wrong, *UNAUTHORIZED)
    login = tools.podman("login", authfile, cert_dir, "-u", OWNER[0], "-p", OWNER[1], registry)
    assert "Login Succeeded" in login.stdout
    assert registry in json.loads((tmp_path / "podman-auth.json").read_text())["auths"]

    tools.podman("load", "--input", str(sample_image.docker_archive))
    loaded_id = tools.podman("image", "inspect", "--format", "{{.Id}}", SAMPLE_NAME).stdout.strip()
    repository = repo("podman")
    target = f"{registry}/{repository}:v1"
    tools.podman("tag", SAMPLE_NAME, target)
    tools.podman("push", authfile, cert_dir, target)
    digest = stored_digest(https, repository, "v1")
    assert digest is not None

    tools.podman("rmi", "--all", "--force")
    tools.podman("pull", authfile, cert_dir, target)
    pulled = tools.podman("image", "inspect", target).json()[0]
    assert pulled["Digest"] == digest
    assert pulled["Id"] == loaded_id

    logout = tools.podman("logout", authfile, registry)
    assert "Removed login credentials" in logout.stdout
    tools.podman("rmi", "--all", "--force")
    assert_refused(tools.podman("pull", authfile, cert_dir, target, check=False), *UNAUTHORIZED)


def test_skopeo_copies_and_inspects_with_explicit_credentials_and_cert_dir(
    secure_tools: SecureTools,
    tls_pki: Pki,
    sample_image: SampleImage,
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    tools = secure_tools
    image = sample_image.image
    repository = repo("skopeo")
    source = f"oci:{image.layout}:{image.tag}"
    destination = tools.ref(repository, "v1")
    owner, cert_dir = creds(*OWNER), str(tls_pki.cert_dir)

    no_ca = tools.skopeo("copy", f"--dest-creds={owner}", source, destination, check=False)
    assert_refused(no_ca, *UNTRUSTED)
    wrong = tools.skopeo(
        "copy",
        f"--dest-creds={OWNER[0]}:not-it",
        f"--dest-cert-dir={cert_dir}",
        source,
        destination,
        check=False,
    )
    assert_refused(wrong, *UNAUTHORIZED)
    tools.skopeo(
        "copy", f"--dest-creds={owner}", f"--dest-cert-dir={cert_dir}", source, destination
    )

    info = tools.skopeo("inspect", f"--creds={owner}", f"--cert-dir={cert_dir}", destination).json()
    assert info["Digest"] == image.manifest_digest
    assert info["RepoTags"] == ["v1"]
    anonymous = tools.skopeo("inspect", f"--cert-dir={cert_dir}", destination, check=False)
    assert_refused(anonymous, *UNAUTHORIZED)
    wrong_inspect = tools.skopeo(
        "inspect", f"--creds={OWNER[0]}:not-it", f"--cert-dir={cert_dir}", destination, check=False
    )
    assert_refused(wrong_inspect, *UNAUTHORIZED)

    back = tmp_path / "back"
    tools.skopeo(
        "copy", f"--src-creds={owner}", f"--src-cert-dir={cert_dir}", destination, f"oci:{back}:v1"
    )
    assert_blobs_byte_identical(image.closure(), read_layout_image(back, "v1").closure())


# --------------------------------------------------------------------------- containerd


def test_ctr_pulls_and_pushes_with_user_and_tlscacert(
    ctr: Ctr,
    haven_tls: HavenServer,
    secure_tools: SecureTools,
    tls_pki: Pki,
    sample_image: SampleImage,
    repo: Callable[[str], str],
    https: httpx.Client,
) -> None:
    image = sample_image.image
    source_repository = repo("ctr-src")
    push_as_owner(secure_tools, tls_pki, image, source_repository, "v1")
    source = f"{haven_tls.address}/{source_repository}:v1"
    hosts = f"--hosts-dir={ctr.https_hosts_dir(haven_tls.address)}"
    user, ca = f"--user={creds(*OWNER)}", f"--tlscacert={tls_pki.ca_cert}"
    native = "--snapshotter=native"  # unpacks by copying: no overlay mounts needed

    untrusted = ctr.run("images", "pull", hosts, user, native, source, check=False)
    assert_refused(untrusted, *UNTRUSTED)
    wrong = ctr.run(
        "images", "pull", hosts, f"--user={OWNER[0]}:not-it", ca, native, source, check=False
    )
    assert_refused(wrong, "401 Unauthorized")

    ctr.run("images", "pull", hosts, user, ca, native, source)
    assert ctr.image_digest(source) == image.manifest_digest

    target_repository = repo("ctr-dst")
    target = f"{haven_tls.address}/{target_repository}:v2"
    ctr.run("images", "tag", source, target)
    ctr.run("images", "push", hosts, user, ca, target)
    assert stored_digest(https, target_repository, "v2") == image.manifest_digest


# --------------------------------------------------------------------------- the ORAS SDK


def test_oras_sdk_pushes_with_basic_auth_and_pulls_with_token_auth(
    haven_tls: HavenServer, tls_pki: Pki, repo: Callable[[str], str], tmp_path: Path
) -> None:
    target = f"{haven_tls.address}/{repo('oras')}:v1"
    payload = tmp_path / "payload.bin"
    # Small enough to fit the socket buffers: larger PUTs trip the server bug that
    # test_an_upload_refused_for_lack_of_credentials_gets_its_401_not_a_dropped_connection
    # pins down (the basic backend sends every request without credentials first).
    payload.write_bytes(secrets.token_bytes(10_000))
    ca = str(tls_pki.ca_cert)

    # The SDK's token backend keeps its first token and never widens it (push needs more
    # than the pull-scoped token a first HEAD gets), so push with HTTP Basic throughout.
    pusher = OrasClient(hostname=haven_tls.address, tls_verify=ca, auth_backend="basic")
    pusher.auth.set_basic_auth(*OWNER)
    pushed = pusher.push(target=target, files=[str(payload)], disable_path_validation=True)
    assert pushed.status_code == 201, pushed.text

    puller = OrasClient(hostname=haven_tls.address, tls_verify=ca, auth_backend="token")
    puller.auth.set_basic_auth(*OWNER)
    pulled = puller.pull(target=target, outdir=str(tmp_path / "pulled"))
    assert [Path(path).read_bytes() for path in pulled] == [payload.read_bytes()]
    assert puller.auth.token, "the pull did not go through the token service"

    anonymous = OrasClient(hostname=haven_tls.address, tls_verify=ca, auth_backend="token")
    with pytest.raises(ValueError, match="Unauthorized"):
        anonymous.pull(target=target, outdir=str(tmp_path / "anonymous"))
    system_trust = OrasClient(hostname=haven_tls.address, auth_backend="basic")
    system_trust.auth.set_basic_auth(*OWNER)
    with pytest.raises(requests.exceptions.SSLError):
        system_trust.pull(target=target, outdir=str(tmp_path / "untrusted"))


def test_an_upload_refused_for_lack_of_credentials_gets_its_401_not_a_dropped_connection(
    haven_tls: HavenServer, tls_pki: Pki, repo: Callable[[str], str]
) -> None:
    """The ORAS SDK's basic backend (and any client that authenticates on a 401) sends a
    request without credentials first and repeats it with them. For a blob PUT whose body
    is larger than the socket buffers, the client must get the 401, not a connection torn
    down under it while it is still sending the body (with requests: `SSLError: EOF
    occurred in violation of protocol`), or the push fails."""
    repository = repo("refused-body")
    # It is a race: the larger the body, the likelier the client loses it (here 100 kB
    # lost 20-60 % of attempts, 4 MB about 80 %). Enough attempts that a server with the
    # bug practically never passes.
    attempts = 20
    body = secrets.token_bytes(4 * 1024 * 1024)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    ca = str(tls_pki.ca_cert)
    failures = []
    with requests.Session() as session:
        for attempt in range(attempts):
            try:
                started = session.post(
                    f"{haven_tls.url}/v2/{repository}/blobs/uploads/", auth=OWNER, verify=ca
                )
                assert started.status_code == 202, started.text
                location = urljoin(f"{haven_tls.url}/", started.headers["location"])
                refused = session.put(
                    location, params={"digest": digest}, data=body, verify=ca, timeout=30
                )
            except requests.ConnectionError as error:
                failures.append(f"attempt {attempt + 1}: {type(error).__name__}: {error}")
                continue
            assert refused.status_code == 401, refused.text
    assert not failures, (
        f"{len(failures)} of {attempts} unauthenticated 4 MiB PUTs got no answer:\n"
        + "\n".join(failures[:3])
    )


# --------------------------------------------------------------------------- admin user, tokens


def test_the_admin_user_shown_by_the_cli_logs_podman_in_until_it_is_disabled(
    owner_cli: HavenCli,
    secure_tools: SecureTools,
    tls_pki: Pki,
    sample_image: SampleImage,
    repo: Callable[[str], str],
    tmp_path: Path,
) -> None:
    tools = secure_tools
    repository = repo("admin")
    push_as_owner(tools, tls_pki, sample_image.image, repository, "v1")
    authfile = f"--authfile={tmp_path / 'podman-auth.json'}"
    cert_dir = f"--cert-dir={tls_pki.cert_dir}"

    updated = owner_cli.json("registry", "update", "-n", "default", "--admin-enabled", "true")
    try:
        assert updated["adminUserEnabled"] is True, updated
        shown = owner_cli.json("credential", "show", "-n", "default")
        assert shown["username"] == "default", shown
        password = {entry["name"]: entry["value"] for entry in shown["passwords"]}["password"]

        login = tools.podman(
            "login", authfile, cert_dir, "-u", "default", "-p", password, tools.registry
        )
        assert "Login Succeeded" in login.stdout
        tools.podman("pull", authfile, cert_dir, tools.name(repository, "v1"))
        pulled = tools.podman("image", "inspect", tools.name(repository, "v1")).json()[0]
        assert pulled["Digest"] == sample_image.image.manifest_digest
    finally:
        disabled = owner_cli.json("registry", "update", "-n", "default", "--admin-enabled", "false")
    assert disabled["adminUserEnabled"] is False, disabled
    refused = tools.podman(
        "login", authfile, cert_dir, "-u", "default", "-p", password, tools.registry, check=False
    )
    assert_refused(refused, *UNAUTHORIZED)


def test_a_repository_scoped_token_pushes_to_its_repository_and_is_refused_elsewhere(
    owner_cli: HavenCli,
    secure_tools: SecureTools,
    tls_pki: Pki,
    sample_image: SampleImage,
    repo: Callable[[str], str],
    https: httpx.Client,
) -> None:
    tools = secure_tools
    image = sample_image.image
    suffix = uuid.uuid4().hex[:8]
    name, repository = f"ci-token-{suffix}", f"samples/hello-{suffix}"
    created = owner_cli.json(
        "token",
        "create",
        "-n",
        name,
        "-r",
        "default",
        "--repository",
        repository,
        "content/read",
        "content/write",
    )
    assert created["credentials"]["username"] == name, created
    password = created["credentials"]["passwords"][0]["value"]
    token_creds, cert_dir = creds(name, password), f"--dest-cert-dir={tls_pki.cert_dir}"
    source = f"oci:{image.layout}:{image.tag}"

    tools.skopeo(
        "copy", f"--dest-creds={token_creds}", cert_dir, source, tools.ref(repository, "v1")
    )
    assert stored_digest(https, repository, "v1") == image.manifest_digest
    # content/read: the manifest can be read back with the token (tags need metadata/read).
    raw = tools.skopeo(
        "inspect",
        "--raw",
        f"--creds={token_creds}",
        f"--cert-dir={tls_pki.cert_dir}",
        tools.ref(repository, "v1"),
    )
    assert raw.stdout.encode() == image.manifest_bytes

    elsewhere = repo("not-the-tokens")
    refused = tools.skopeo(
        "copy",
        f"--dest-creds={token_creds}",
        cert_dir,
        source,
        tools.ref(elsewhere, "v1"),
        check=False,
    )
    assert_refused(refused, *DENIED)
    assert stored_digest(https, elsewhere, "v1") is None


def test_haven_login_expose_token_gives_a_token_that_skopeo_signs_in_with(
    owner_cli: HavenCli,
    haven_tls: HavenServer,
    secure_tools: SecureTools,
    tls_pki: Pki,
    sample_image: SampleImage,
    repo: Callable[[str], str],
) -> None:
    tools = secure_tools
    repository = repo("exposed")
    push_as_owner(tools, tls_pki, sample_image.image, repository, "v1")

    exposed = owner_cli.json("login", "-n", "default", "--expose-token")
    assert sorted(exposed) == ["accessToken", "loginServer"], exposed
    assert exposed["loginServer"].endswith(f":{haven_tls.port}"), exposed
    cert_dir = f"--cert-dir={tls_pki.cert_dir}"
    # The default registry answers on any host name, so 127.0.0.1:port reaches it too.
    info = tools.skopeo(
        "inspect",
        f"--creds={REFRESH_TOKEN_USER}:{exposed['accessToken']}",
        cert_dir,
        tools.ref(repository, "v1"),
    ).json()
    assert info["Digest"] == sample_image.image.manifest_digest

    forged = exposed["accessToken"][:-6] + (
        "AAAAAA" if exposed["accessToken"][-6:] != "AAAAAA" else "BBBBBB"
    )
    refused = tools.skopeo(
        "inspect",
        f"--creds={REFRESH_TOKEN_USER}:{forged}",
        cert_dir,
        tools.ref(repository, "v1"),
        check=False,
    )
    assert_refused(refused, *UNAUTHORIZED)


# --------------------------------------------------------------------------- TLS, httpx, curl


def openssl_handshake(port: int, version_flag: str, ca_file: Path, *extra: str) -> Any:
    return run_tool(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            "localhost",
            "-CAfile",
            str(ca_file),
            "-verify_return_error",
            version_flag,
            *extra,
        ],
        env=daemon_environment(),
        cwd=ca_file.parent,
        check=False,
        timeout=30,
        input=b"",
    )


@pytest.mark.parametrize(
    ("flag", "version"),
    [
        pytest.param("-tls1", ssl.TLSVersion.TLSv1, id="tls1.0"),
        pytest.param("-tls1_1", ssl.TLSVersion.TLSv1_1, id="tls1.1"),
    ],
)
def test_tls_1_0_and_1_1_handshakes_are_refused(
    haven_tls: HavenServer, tls_pki: Pki, flag: str, version: ssl.TLSVersion
) -> None:
    # The client allows every cipher (OpenSSL 3 disables the old versions at its default
    # security level) and, against a control server speaking only that version, succeeds:
    # so the failure against Haven is Haven refusing the version.
    legacy = "-cipher", "DEFAULT:@SECLEVEL=0"
    with legacy_tls_server(tls_pki.files, version) as control_port:
        control = openssl_handshake(control_port, flag, tls_pki.ca_cert, *legacy)
    assert control.returncode == 0 and "Verify return code: 0 (ok)" in control.stdout, (
        f"the control {flag} handshake failed, so this machine's openssl cannot test it:\n"
        f"{control.stdout}\n{control.stderr}"
    )
    refused = openssl_handshake(haven_tls.port, flag, tls_pki.ca_cert, *legacy)
    assert refused.returncode != 0, f"{flag} handshake succeeded:\n{refused.stdout}"
    assert "Cipher is (NONE)" in refused.stdout or "no peer certificate" in refused.stdout, (
        refused.stdout + refused.stderr
    )


@pytest.mark.parametrize(
    "flag", [pytest.param("-tls1_2", id="tls1.2"), pytest.param("-tls1_3", id="tls1.3")]
)
def test_tls_1_2_and_1_3_handshakes_verify_against_the_test_ca(
    haven_tls: HavenServer, tls_pki: Pki, flag: str
) -> None:
    result = openssl_handshake(haven_tls.port, flag, tls_pki.ca_cert)
    assert result.returncode == 0, result.stdout + result.stderr
    version = {"-tls1_2": "TLSv1.2", "-tls1_3": "TLSv1.3"}[flag]
    assert f"New, {version}, Cipher is" in result.stdout, result.stdout
    assert "Verify return code: 0 (ok)" in result.stdout, result.stdout


def test_httpx_trusts_the_test_ca_and_follows_the_bearer_challenge(
    haven_tls: HavenServer, tls_pki: Pki
) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{haven_tls.url}/v2/", timeout=10.0)

    with httpx.Client(
        base_url=haven_tls.url, verify=ca_context(tls_pki.ca_cert), timeout=30.0
    ) as client:
        unauthenticated = client.get("/v2/")
        assert unauthenticated.status_code == 401
        params = challenge(unauthenticated)
        assert params["realm"] == f"https://{haven_tls.address}/oauth2/token", params
        assert params["service"] == haven_tls.address, params

        refused = client.get(
            params["realm"], params={"service": params["service"]}, auth=(OWNER[0], "not-it")
        )
        assert refused.status_code == 401, refused.text
        issued = client.get(params["realm"], params={"service": params["service"]}, auth=OWNER)
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        signed_in = client.get("/v2/", headers={"Authorization": f"Bearer {token}"})
        assert signed_in.status_code == 200, signed_in.text


def test_curl_fetches_a_blob_with_a_bearer_token(
    haven_tls: HavenServer,
    tls_pki: Pki,
    secure_tools: SecureTools,
    sample_image: SampleImage,
    repo: Callable[[str], str],
    https: httpx.Client,
    tmp_path: Path,
) -> None:
    image = sample_image.image
    repository = repo("curl")
    push_as_owner(secure_tools, tls_pki, image, repository, "v1")
    layer = image.layer_digests[-1]
    url = f"{haven_tls.url}/v2/{repository}/blobs/{layer}"

    params = challenge(https.get(url, auth=None))
    assert params["scope"] == f"repository:{repository}:pull", params
    issued = https.get(
        params["realm"], params={"service": params["service"], "scope": params["scope"]}
    )
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]

    def curl(*extra: str) -> Any:
        return run_tool(
            [
                "curl",
                "--silent",
                "--show-error",
                "--fail-with-body",
                "-L",
                "--cacert",
                str(tls_pki.ca_cert),
                *extra,
                url,
            ],
            env=daemon_environment(HOME=str(tmp_path)),
            cwd=tmp_path,
            check=False,
            timeout=60,
        )

    downloaded = tmp_path / "blob"
    fetched = curl("-H", f"Authorization: Bearer {token}", "-o", str(downloaded))
    assert fetched.returncode == 0, fetched.stderr
    assert downloaded.read_bytes() == image.blob(layer)

    anonymous = curl("-o", str(tmp_path / "anonymous"))
    assert anonymous.returncode == 22 and "401" in anonymous.stderr, anonymous.stderr
    untrusted = run_tool(
        [
            "curl",
            "--silent",
            "--show-error",
            "-H",
            f"Authorization: Bearer {token}",
            "-o",
            "/dev/null",
            url,
        ],
        env=daemon_environment(HOME=str(tmp_path)),
        cwd=tmp_path,
        check=False,
        timeout=60,
    )
    assert untrusted.returncode == 60, untrusted.stderr  # CURLE_PEER_FAILED_VERIFICATION
