"""`haven check-health` against a fake server, with stand-in docker, podman, helm and notary
on PATH: each check's OK line, each failure's ACR error code and fix, and the exit codes."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from .certificates import self_signed
from .conftest import Haven
from .fake_haven import OWNER, OWNER_PASSWORD, Answer, FakeHaven, error, oci_error, running
from .test_commands import one_error_line

HEALTHY_DOCKER = """#!/bin/sh
case "$1" in
  --version) echo "Docker version 27.5.1, build 9f9e405" ;;
  version) echo "27.5.1" ;;
esac
"""
DAEMON_DOWN = """#!/bin/sh
case "$1" in
  --version) echo "Docker version 27.5.1, build 9f9e405" ;;
  version) echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1 ;;
esac
"""
TOOLS = {
    "docker": HEALTHY_DOCKER,
    "podman": '#!/bin/sh\necho "podman version 5.4.2"\n',
    "helm": '#!/bin/sh\necho "v3.17.0+g301108e"\n',
    "notary": '#!/bin/sh\necho "notary"\necho " Version: 0.6.1"\n',
}


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only stand-ins for the tools the check looks for (all healthy)."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, script in TOOLS.items():
        install(directory, name, script)
    monkeypatch.setenv("PATH", str(directory))
    return directory


def install(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(script)
    path.chmod(0o755)


def remove(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).unlink()


def test_the_environment_alone(haven: Haven, tools: Path) -> None:
    result = haven("check-health")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Haven CLI version: ")
    assert "Docker daemon status: available" in lines
    assert "Docker version: 'Docker version 27.5.1, build 9f9e405'" in lines
    assert "Podman version: 'podman version 5.4.2'" in lines
    assert "Helm version: v3.17.0+g301108e" in lines
    assert "Notary version: notary" in lines
    assert lines[-1].startswith("Please refer to docs/cli.md")
    assert result.stderr == ""


def test_a_healthy_registry(haven: Haven, registry: FakeHaven, tools: Path) -> None:
    result = haven("check-health", "-n", "reg")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert f"Sign-in to {registry.url} : OK" in out
    assert f"Challenge endpoint {registry.url}/v2/ : OK" in out
    assert "Fetch refresh token for registry 'reg.example.com' : OK" in out
    assert "Fetch access token for registry 'reg.example.com' : OK" in out
    # reg.example.com does not resolve, but the server does: a warning, not a failure.
    assert "WARNING: CONNECTIVITY_DNS_ERROR: The login server's host name reg.example.com" in (
        result.stderr
    )
    assert f"through {registry.url} with 'Host: reg.example.com'" in result.stderr
    challenge = registry.last("GET", "/v2/")
    assert "authorization" not in challenge.headers
    assert challenge.headers["host"] == "reg.example.com"


def test_a_login_server_that_resolves(haven: Haven, logged_in: FakeHaven, tools: Path) -> None:
    logged_in.serve_registry("reg", logged_in.address)
    result = haven("check-health", "-n", "reg", "--only-show-errors")
    assert result.exit_code == 0, result.stderr
    assert "DNS lookup to 127.0.0.1 at IP 127.0.0.1 : OK" in result.stdout
    assert result.stderr == ""


def test_a_pull_of_an_image(haven: Haven, registry: FakeHaven, tools: Path) -> None:
    body = b'{"schemaVersion":2}'
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    path = "/v2/samples/hello/manifests/v1"
    registry.route("GET", path, Answer(200, raw=body, headers={"Docker-Content-Digest": digest}))
    result = haven("check-health", "-n", "reg", "--image", "samples/hello:v1")
    assert result.exit_code == 0, result.stderr
    assert "Pull of 'reg.example.com/samples/hello:v1' : OK" in result.stdout
    assert registry.scopes(registry.last("GET", path)) == ["repository:samples/hello:pull"]

    registry.route("GET", path, Answer(200, raw=b"{}", headers={"Docker-Content-Digest": digest}))
    tampered = haven("check-health", "-n", "reg", "-t", "samples/hello:v1")
    assert tampered.exit_code == 1
    assert "An error occurred: DOCKER_PULL_ERROR" in tampered.stdout
    registry.route("GET", path, oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown"))
    missing = haven("check-health", "-n", "reg", "-t", "samples/hello:v1", "--only-show-errors")
    assert one_error_line(missing.stderr) == (
        "DOCKER_PULL_ERROR: Pull of 'reg.example.com/samples/hello:v1' failed: manifest unknown"
    )


@pytest.mark.parametrize(
    ("broken", "code", "message"),
    [
        ("no-docker-no-podman", "DOCKER_COMMAND_ERROR", "Neither docker nor podman was found"),
        ("daemon-down", "DOCKER_DAEMON_ERROR", "The docker daemon cannot be reached: Cannot"),
        ("docker-version", "DOCKER_VERSION_ERROR", "'docker --version' failed"),
    ],
)
def test_a_broken_docker_stops_the_checks_with_its_code_and_fix(
    haven: Haven, registry: FakeHaven, tools: Path, broken: str, code: str, message: str
) -> None:
    if broken == "no-docker-no-podman":
        remove(tools, "docker", "podman")
    elif broken == "daemon-down":
        install(tools, "docker", DAEMON_DOWN)
    else:
        install(tools, "docker", '#!/bin/sh\n[ "$1" = version ] && exit 0\nexit 3\n')
    result = haven("check-health", "-n", "reg")
    assert result.exit_code == 1
    assert f"An error occurred: {code}\n{message}" in result.stdout
    assert "Potential solution: " in result.stdout
    assert one_error_line(result.stderr).startswith(f"{code}: {message}")
    assert "Challenge endpoint" not in result.stdout, "the first error stops the checks"
    assert registry.data_requests() == []


def test_ignore_errors_runs_every_check_and_still_fails(
    haven: Haven, registry: FakeHaven, tools: Path
) -> None:
    install(tools, "docker", DAEMON_DOWN)
    result = haven("check-health", "-n", "reg", "--ignore-errors")
    assert result.exit_code == 1
    assert "An error occurred: DOCKER_DAEMON_ERROR" in result.stdout
    assert "Fetch access token for registry 'reg.example.com' : OK" in result.stdout
    assert one_error_line(result.stderr.split("\n", 1)[1]) == (
        "1 health check(s) failed: DOCKER_DAEMON_ERROR"
    )


def test_podman_without_docker_and_missing_optional_tools_are_warnings(
    haven: Haven, registry: FakeHaven, tools: Path
) -> None:
    remove(tools, "docker", "helm", "notary")
    result = haven("check-health", "-n", "reg")
    assert result.exit_code == 0, result.stderr
    warnings = result.stderr
    assert "WARNING: DOCKER_COMMAND_ERROR: docker was not found on PATH; podman was." in warnings
    assert "WARNING: HELM_COMMAND_ERROR: helm was not found on PATH. Helm is optional" in warnings
    assert "WARNING: NOTARY_COMMAND_ERROR: notary was not found on PATH." in warnings
    quiet = haven("check-health", "-n", "reg", "--only-show-errors")
    assert quiet.stderr == ""


def test_a_failing_helm_is_a_warning(haven: Haven, tools: Path) -> None:
    install(tools, "helm", "#!/bin/sh\necho 'Error: unknown flag' >&2\nexit 1\n")
    result = haven("check-health")
    assert result.exit_code == 0
    assert "WARNING: HELM_VERSION_ERROR: 'helm version --short' failed: Error: unknown flag" in (
        result.stderr
    )


def test_not_signed_in(haven: Haven, fake: FakeHaven, tools: Path) -> None:
    result = haven("check-health", "-n", "reg")
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        "CONNECTIVITY_AAD_LOGIN_ERROR: Please run 'haven account login' to set up an account."
    )
    assert "Sign in again with 'haven account login'" in result.stdout


def test_an_unknown_registry(haven: Haven, logged_in: FakeHaven, tools: Path) -> None:
    result = haven("check-health", "-n", "nosuch")
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        "LOGIN_SERVER_ERROR: Cannot get the login server of 'nosuch': "
        "no route GET /api/registries/nosuch"
    )


@pytest.mark.parametrize(
    ("answer", "code", "message"),
    [
        (Answer(200, {}), "CONNECTIVITY_CHALLENGE_ERROR", "answered 200 with no WWW-Authenticate"),
        (
            Answer(401, {}, {"WWW-Authenticate": 'Basic realm="x"'}),
            "CONNECTIVITY_CHALLENGE_ERROR",
            "answered 401 with 'Basic realm=\"x\"'",
        ),
        (
            Answer(401, {}, {"WWW-Authenticate": 'Bearer realm="http://x/oauth2/token"'}),
            "CONNECTIVITY_CHALLENGE_ERROR",
            "expected 401 with a Bearer challenge",
        ),
        (
            oci_error(403, "DENIED", "client address 127.0.0.1 is not allowed"),
            "CONNECTIVITY_FORBIDDEN_ERROR",
            "answered 403: client address 127.0.0.1 is not allowed",
        ),
    ],
    ids=["no-challenge", "basic", "no-service", "forbidden"],
)
def test_a_bad_challenge(
    haven: Haven, registry: FakeHaven, tools: Path, answer: Answer, code: str, message: str
) -> None:
    registry.open_paths.add("/v2/")
    registry.route("GET", "/v2/", answer)
    result = haven("check-health", "-n", "reg", "--only-show-errors")
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert line.startswith(f"{code}: ") and message in line
    assert "Fetch refresh token" not in result.stdout


def test_a_refused_refresh_token(haven: Haven, registry: FakeHaven, tools: Path) -> None:
    registry.route("POST", "/oauth2/exchange", error(403, "FORBIDDEN", "no role on reg"))
    result = haven("check-health", "-n", "reg", "--only-show-errors")
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == "CONNECTIVITY_REFRESH_TOKEN_ERROR: no role on reg"


def test_a_refused_access_token(haven: Haven, registry: FakeHaven, tools: Path) -> None:
    registry.refuse_registry_tokens = True
    result = haven("check-health", "-n", "reg", "--only-show-errors")
    assert result.exit_code == 1
    assert one_error_line(result.stderr) == (
        "CONNECTIVITY_ACCESS_TOKEN_ERROR: Cannot get an access token for reg.example.com: "
        "token refused"
    )


def test_a_server_that_is_down(haven: Haven, registry: FakeHaven, tools: Path) -> None:
    registry.stop()
    result = haven("check-health", "-n", "reg")
    assert result.exit_code == 1
    assert one_error_line(result.stderr).startswith(
        f"CONNECTIVITY_AAD_LOGIN_ERROR: Cannot connect to {registry.url}"
    )


@pytest.fixture
def tls_fake(haven: Haven, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHaven]:
    certificate = self_signed(tmp_path)  # valid for 127.0.0.1, not for "localhost"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    for fake in running(context):
        fake.route("GET", "/api/me", {"id": "id-owner", "name": OWNER, "kind": "user"})
        assert (
            haven(
                "account", "login", "--server", fake.url, "-u", OWNER, "-p", OWNER_PASSWORD
            ).exit_code
            == 0
        )
        yield fake


def test_tls_to_the_registry(haven: Haven, tls_fake: FakeHaven, tools: Path) -> None:
    tls_fake.serve_registry("reg", tls_fake.address)
    good = haven("check-health", "-n", "reg")
    assert good.exit_code == 0, good.stderr
    assert f"TLS to {tls_fake.url} : OK" in good.stdout
    port = tls_fake.address.split(":")[1]
    tls_fake.serve_registry("reg", f"localhost:{port}")  # a name the certificate lacks
    bad = haven("check-health", "-n", "reg")
    assert bad.exit_code == 1
    assert one_error_line(bad.stderr).startswith(
        f"CONNECTIVITY_SSL_ERROR: Cannot verify the TLS certificate of https://localhost:{port}"
    )


def test_arguments(haven: Haven, tools: Path) -> None:
    assert haven("check-health", "--vnet", "v", "--yes").stderr == (
        "WARNING: --vnet is ignored: Haven has no virtual networks.\n"
    )
    refused = haven("check-health", "--image", "a:b")
    assert refused.exit_code == 2
    assert "--image needs a registry" in one_error_line(refused.stderr)
