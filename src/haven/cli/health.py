"""`haven check-health [-n REGISTRY]`: check the client environment and the way to a
registry, as `az acr check-health` does, with ACR's error codes.

Environment (always):
- docker: on PATH (`DOCKER_COMMAND_ERROR`, only a warning when podman is there instead),
  `docker --version` (`DOCKER_VERSION_ERROR`), the daemon answering `docker version`
  (`DOCKER_DAEMON_ERROR`); podman's and skopeo's versions when they are installed;
- helm and notary, optional tools: a missing one is a warning (`HELM_COMMAND_ERROR`,
  `NOTARY_COMMAND_ERROR`), never a failure.

Registry (with `-n`, or `haven configure --defaults acr=NAME`):
- the CLI's own sign-in (`CONNECTIVITY_AAD_LOGIN_ERROR`) and the registry's login server
  (`LOGIN_SERVER_ERROR`);
- DNS of the login server (`CONNECTIVITY_DNS_ERROR`; only a warning while the configured
  server resolves, because the CLI then reaches the registry through it with a Host
  header, but docker and podman need the name);
- TLS to the registry, when it is https (`CONNECTIVITY_SSL_ERROR`);
- `GET /v2/` answering 401 with a Bearer challenge that names realm and service
  (`CONNECTIVITY_CHALLENGE_ERROR`; a 403 is `CONNECTIVITY_FORBIDDEN_ERROR`: the network
  rules refuse this client);
- a registry refresh token from `/oauth2/exchange` (`CONNECTIVITY_REFRESH_TOKEN_ERROR`) and
  an access token from `/oauth2/token` (`CONNECTIVITY_ACCESS_TOKEN_ERROR`);
- with `--image repo:tag`, a pull of that image's manifest, its digest verified
  (`DOCKER_PULL_ERROR`).

Each result is a line on stdout; each error prints its code, what happened and a fix.
Without `--ignore-errors` the first error stops the checks and the command exits 1; with it,
every check runs, and the command exits 1 if any failed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import subprocess
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from haven import __version__
from haven.cli.arguments import DEFAULT_REGISTRY_KEY, REGISTRY_HELP, configured_default
from haven.cli.client import error_message
from haven.cli.command import HavenCommand, session, warn
from haven.cli.dataplane import (
    CATALOG_SCOPE,
    MANIFEST_ACCEPT,
    RegistryClient,
    parse_image,
    reference_segment,
    repository_path,
    repository_scope,
)
from haven.cli.errors import CliError
from haven.cli.progress import progress

TOOL_TIMEOUT_SECONDS = 20
MORE_INFORMATION = "Please refer to docs/cli.md ('haven check-health') for more information."

FIXES = {
    "DOCKER_COMMAND_ERROR": "Install docker (or podman) and make sure it is on PATH; without "
    "it the docker version, daemon and pull checks cannot run.",
    "DOCKER_DAEMON_ERROR": "Start the docker daemon (for example 'sudo systemctl start "
    "docker'), and check that your user may use its socket (the docker group, DOCKER_HOST).",
    "DOCKER_VERSION_ERROR": "Run 'docker --version' yourself and read its error; reinstall "
    "docker if it keeps failing.",
    "DOCKER_PULL_ERROR": "Check that the image exists ('haven repository show-tags'), that "
    "you may pull it (AcrPull or more on the registry or repository), and that it is not "
    "locked with --read-enabled false.",
    "HELM_COMMAND_ERROR": "Helm is optional: install it and put it on PATH to push and pull "
    "Helm charts.",
    "HELM_VERSION_ERROR": "Run 'helm version' yourself and read its error; use a current Helm 3.",
    "NOTARY_COMMAND_ERROR": "Notary is optional: install it (Debian: apt install notary) to "
    "use content trust.",
    "NOTARY_VERSION_ERROR": "Run 'notary version' yourself and read its error.",
    "CONNECTIVITY_DNS_ERROR": "Make the login server's host name resolve to the Haven server "
    "(a DNS record, or a line in /etc/hosts), or give the server an HAVEN_DOMAIN that "
    "resolves.",
    "CONNECTIVITY_FORBIDDEN_ERROR": "The registry's network rules refuse this client's "
    "address: allow it with 'haven network-rule add -n REGISTRY --ip-address ADDRESS', or "
    "set the default action to Allow ('haven registry update --default-action Allow').",
    "CONNECTIVITY_CHALLENGE_ERROR": "Check that the address reaches Haven itself, and that a "
    "proxy in between passes the WWW-Authenticate header through; '--debug' shows the "
    "exchange.",
    "CONNECTIVITY_AAD_LOGIN_ERROR": "Sign in again with 'haven account login' (or check "
    "HAVEN_SERVER, HAVEN_USERNAME and HAVEN_PASSWORD).",
    "CONNECTIVITY_REFRESH_TOKEN_ERROR": "Check that your identity holds a role on the "
    "registry ('haven role assignment list --assignee ID'); sign in again if your login "
    "expired.",
    "CONNECTIVITY_ACCESS_TOKEN_ERROR": "Check your role on the registry and its "
    "repositories; sign in again with 'haven account login' if the login expired.",
    "CONNECTIVITY_SSL_ERROR": "Trust the CA that signed the server's certificate ('haven "
    "account login --ca-file CA.pem', or REQUESTS_CA_BUNDLE), and check that the certificate "
    "names the login server and has not expired.",
    "LOGIN_SERVER_ERROR": "Check the registry's name ('haven registry list') and that you "
    "may read it (Reader or more on the registry).",
}

_CHALLENGE_PARAMETER = re.compile(r'(\w+)="([^"]*)"')


class Report:
    """The checks' results: OK lines on stdout, errors with their fix, and the verdict."""

    def __init__(self, ignore_errors: bool) -> None:
        self.ignore_errors = ignore_errors
        self.failed: list[str] = []

    def ok(self, line: str) -> None:
        click.echo(line)

    def error(self, code: str, message: str) -> None:
        """Report a failed check; raises CliError (exit 1) unless errors are ignored."""
        click.echo(f"An error occurred: {code}\n{message}\nPotential solution: {FIXES[code]}")
        self.failed.append(code)
        if not self.ignore_errors:
            click.echo(MORE_INFORMATION)
            raise CliError(f"{code}: {message}")

    def warning(self, code: str, message: str) -> None:
        warn(f"{code}: {message} {FIXES[code]}")

    def finish(self) -> None:
        click.echo(MORE_INFORMATION)
        if self.failed:
            raise CliError(f"{len(self.failed)} health check(s) failed: {', '.join(self.failed)}")


def _run(check: str, arguments: list[str]) -> tuple[bool, str]:
    """Whether a tool ran successfully, and the first line it printed; `check` is shown
    as progress while it runs."""
    try:
        with progress(check):
            done = subprocess.run(
                arguments,
                capture_output=True,
                text=True,
                timeout=TOOL_TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
                check=False,
            )
    except (OSError, subprocess.SubprocessError) as error:
        return False, str(error)
    text = (done.stdout.strip() or done.stderr.strip()).splitlines()
    first = text[0].strip() if text else f"exit status {done.returncode}"
    if done.returncode != 0 and done.stderr.strip():
        first = done.stderr.strip().splitlines()[-1].strip()
    return done.returncode == 0, first


def check_environment(report: Report) -> None:
    report.ok(f"Haven CLI version: {__version__}")
    docker = shutil.which("docker")
    podman = shutil.which("podman")
    if docker is None:
        if podman is None:
            report.error("DOCKER_COMMAND_ERROR", "Neither docker nor podman was found on PATH.")
        else:
            report.warning("DOCKER_COMMAND_ERROR", "docker was not found on PATH; podman was.")
    else:
        daemon_ok, daemon = _run(
            "Checking the docker daemon", [docker, "version", "--format", "{{.Server.Version}}"]
        )
        if daemon_ok:
            report.ok("Docker daemon status: available")
        else:
            report.error("DOCKER_DAEMON_ERROR", f"The docker daemon cannot be reached: {daemon}")
        version_ok, version = _run("Checking docker's version", [docker, "--version"])
        if version_ok:
            report.ok(f"Docker version: '{version}'")
        else:
            report.error("DOCKER_VERSION_ERROR", f"'docker --version' failed: {version}")
    for tool, program in (("podman", podman), ("skopeo", shutil.which("skopeo"))):
        if program is None:
            continue  # optional, and without an ACR error code of its own
        tool_ok, version = _run(f"Checking {tool}'s version", [program, "--version"])
        if tool_ok:
            report.ok(f"{tool.capitalize()} version: '{version}'")
        else:
            warn(f"'{tool} --version' failed: {version}")
    for tool, version_arguments, missing, broken in (
        ("helm", ["version", "--short"], "HELM_COMMAND_ERROR", "HELM_VERSION_ERROR"),
        ("notary", ["version"], "NOTARY_COMMAND_ERROR", "NOTARY_VERSION_ERROR"),
    ):
        program = shutil.which(tool)
        if program is None:
            report.warning(missing, f"{tool} was not found on PATH.")
            continue
        tool_ok, version = _run(f"Checking {tool}'s version", [program, *version_arguments])
        if tool_ok:
            report.ok(f"{tool.capitalize()} version: {version}")
        else:
            report.warning(broken, f"'{tool} {' '.join(version_arguments)}' failed: {version}")


def _resolve(host: str) -> str | None:
    try:
        with progress(f"Looking up {host}"):
            found = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return None
    return str(found[0][4][0]) if found else None


def _tls_failure(error: BaseException) -> bool:
    cause = error.__cause__
    text = str(cause or error)
    return isinstance(cause, httpx.ConnectError) and any(
        marker in text for marker in ("SSL", "TLS", "CERTIFICATE", "certificate")
    )


def challenge_parameters(header: str) -> tuple[str, dict[str, str]]:
    """The scheme and parameters of a WWW-Authenticate header."""
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), {k.lower(): v for k, v in _CHALLENGE_PARAMETER.findall(rest)}


def check_registry(report: Report, name: str, image: str | None) -> None:
    """The checks of one registry; stops early (returns) where later ones cannot run."""
    client = session()
    try:
        with progress(f"Signing in to {client.server}"):
            client.get("/api/me")
    except CliError as error:
        report.error("CONNECTIVITY_AAD_LOGIN_ERROR", error.message)
        return
    report.ok(f"Sign-in to {client.server} : OK")
    registry = RegistryClient(client, name)
    try:
        with progress(f"Reading the login server of '{name}'"):
            login_server = registry.login_server
    except CliError as error:
        report.error(
            "LOGIN_SERVER_ERROR", f"Cannot get the login server of '{name}': {error.message}"
        )
        return
    host = urlsplit(f"//{login_server}").hostname or login_server
    address = _resolve(host)
    if address is not None:
        report.ok(f"DNS lookup to {host} at IP {address} : OK")
    else:
        server_host = urlsplit(client.server).hostname or ""
        message = f"The login server's host name {host} does not resolve."
        if _resolve(server_host) is None:
            report.error("CONNECTIVITY_DNS_ERROR", message)
            return
        report.warning(
            "CONNECTIVITY_DNS_ERROR",
            f"{message} docker and podman cannot reach the registry by that name; this CLI "
            f"reaches it through {client.server} with 'Host: {login_server}'.",
        )
    try:
        with progress(f"Checking the challenge endpoint of {login_server}"):
            response = registry.send("GET", "/v2/")
    except CliError as error:
        code = "CONNECTIVITY_SSL_ERROR" if _tls_failure(error) else "CONNECTIVITY_CHALLENGE_ERROR"
        report.error(code, error.message)
        return
    url = f"{registry.endpoint.base_url}/v2/"
    if url.startswith("https://"):
        report.ok(f"TLS to {registry.endpoint.describe()} : OK")
    if response.status_code == 403:
        message, _ = error_message(response)
        report.error("CONNECTIVITY_FORBIDDEN_ERROR", f"{url} answered 403: {message}")
        return
    header = response.headers.get("www-authenticate", "")
    scheme, parameters = challenge_parameters(header)
    if (
        response.status_code != 401
        or scheme != "bearer"
        or not parameters.get("realm")
        or not parameters.get("service")
    ):
        report.error(
            "CONNECTIVITY_CHALLENGE_ERROR",
            f"{url} answered {response.status_code} with "
            f"{repr(header) if header else 'no WWW-Authenticate header'}; expected 401 with "
            'a Bearer challenge naming realm="…" and service="…".',
        )
        return
    report.ok(f"Challenge endpoint {url} : OK")
    try:
        with progress(f"Fetching a refresh token for registry '{login_server}'"):
            registry.refresh_token()
    except CliError as error:
        report.error("CONNECTIVITY_REFRESH_TOKEN_ERROR", error.message)
        return
    report.ok(f"Fetch refresh token for registry '{login_server}' : OK")
    try:
        with progress(f"Fetching an access token for registry '{login_server}'"):
            registry.access_token([CATALOG_SCOPE])
    except CliError as error:
        report.error("CONNECTIVITY_ACCESS_TOKEN_ERROR", error.message)
        return
    report.ok(f"Fetch access token for registry '{login_server}' : OK")
    if image is not None:
        check_pull(report, registry, image)


def check_pull(report: Report, registry: RegistryClient, image: str) -> None:
    reference = parse_image(image)
    try:
        with progress(f"Pulling {reference}"):
            response = registry.request(
                "GET",
                f"/v2/{repository_path(reference.repository)}/manifests/{reference_segment(reference.reference)}",
                [repository_scope(reference.repository, "pull")],
                headers={"Accept": MANIFEST_ACCEPT},
            )
    except CliError as error:
        report.error("DOCKER_PULL_ERROR", error.message)
        return
    target = f"{registry.login_server}/{reference}"
    if not response.is_success:
        message, _ = error_message(response)
        report.error("DOCKER_PULL_ERROR", f"Pull of '{target}' failed: {message}")
        return
    digest = response.headers.get("docker-content-digest", "")
    computed = "sha256:" + hashlib.sha256(response.content).hexdigest()
    if digest.startswith("sha256:") and digest != computed:
        report.error(
            "DOCKER_PULL_ERROR", f"Pull of '{target}': the manifest's digest is not {digest}."
        )
        return
    report.ok(f"Pull of '{target}' : OK")


@click.command("check-health", cls=HavenCommand)
@click.option(
    "--name",
    "-n",
    default=configured_default(DEFAULT_REGISTRY_KEY),
    metavar="REGISTRY",
    help=f"{REGISTRY_HELP} Without it, only the environment is checked.",
)
@click.option("--ignore-errors", is_flag=True, help="Run every check, even after one has failed.")
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@click.option(
    "--image",
    "-t",
    metavar="IMAGE",
    help="Also pull this image's manifest from the registry: 'repository:tag'.",
)
@click.option("--vnet", metavar="VNET", help="Accepted for az compatibility, and ignored.")
def check_health(
    name: str | None, ignore_errors: bool, yes: bool, image: str | None, vnet: str | None
) -> Any:
    """Check the client environment and, with a registry, the way to it."""
    if vnet is not None:
        warn("--vnet is ignored: Haven has no virtual networks.")
    if image is not None and name is None:
        raise click.UsageError("--image needs a registry: give --name/-n.")
    report = Report(ignore_errors)
    check_environment(report)
    if name is not None:
        check_registry(report, name, image)
    report.finish()
    return None
