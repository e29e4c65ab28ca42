"""`haven login -n REGISTRY`: docker and podman credentials for a registry, as `az acr login`.

The CLI's management token is exchanged (`POST /oauth2/exchange`) for a refresh token for
the registry's login server, and that is written as the password of the well-known user
`00000000-0000-0000-0000-000000000000` into docker's and podman's credential files, so no
container engine has to be installed or running. With `-u/-p` (the admin user, or a
repository token) those credentials are checked against the token service and written
instead.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import click
import httpx

from haven.cli.account import read_password
from haven.cli.arguments import (
    DEFAULT_REGISTRY_KEY,
    configured_default,
    required_unless_configured,
)
from haven.cli.auth_files import save_containers_login, save_docker_login
from haven.cli.command import HavenCommand, session, warn
from haven.cli.dataplane import RegistryClient, looks_like_host
from haven.cli.errors import CliError, NotLoggedInError, ServerError

REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
EXPOSE_TOKEN_NOTE = (
    "You can perform manual login using the provided access token below, for example: "
    f"'docker login loginServer -u {REFRESH_TOKEN_USER} -p accessToken'"
)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def resolve_login_server(name: str) -> tuple[str, str | None]:
    """The login server for `name`, and the server URL that issues its tokens.

    A registry's name is looked up through the management API (which requires being
    signed in); a host[:port] is taken as the login server itself.
    """
    client = session()
    if client.signed_in:
        return RegistryClient(client, name).login_server, client.server
    if looks_like_host(name):
        return name, None
    raise NotLoggedInError()


def _token_endpoints(login_server: str, token_server: str | None) -> list[str]:
    if token_server:
        return [token_server]
    host = urlsplit(f"//{login_server}").hostname or login_server
    endpoints = [f"https://{login_server}"]
    if _is_loopback(host):
        endpoints.append(f"http://{login_server}")  # docker's rule: loopback may be plain http
    return endpoints


def check_credentials(
    login_server: str, token_server: str | None, username: str, password: str
) -> None:
    """Ask the token service for a token with these credentials, as `docker login` does.

    Raises CliError with the server's message when they are refused or it is unreachable.
    """
    client = session()
    failure: CliError | None = None
    for base in _token_endpoints(login_server, token_server):
        try:
            response = client.send(
                "GET",
                "/oauth2/token",
                base_url=base,
                params={"service": login_server, "account": username},
                auth=httpx.BasicAuth(username, password),
            )
        except CliError as error:
            failure = error
            continue
        try:
            client.result(response)
        except ServerError as error:
            raise CliError(f"Unable to log in to {login_server}: {error.message}") from error
        return
    assert failure is not None
    raise failure


@click.command("login", cls=HavenCommand)
@click.option(
    "--name",
    "-n",
    default=configured_default(DEFAULT_REGISTRY_KEY),
    callback=required_unless_configured,
    metavar="REGISTRY",
    help="The registry's name, or its login server host[:port]; "
    "default: `haven configure --defaults acr=<registry name>`. [required]",
)
@click.option(
    "--expose-token",
    "-t",
    is_flag=True,
    help="Print the token instead of writing docker and podman credentials.",
)
@click.option("--username", "-u", help="The admin user or a repository token's name.")
@click.option("--password", "-p", help="Its password.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def login(
    name: str,
    expose_token: bool,
    username: str | None,
    password: str | None,
    password_stdin: bool,
) -> Any:
    """Log docker and podman in to a registry."""
    if username is None and (password is not None or password_stdin):
        raise click.UsageError("--password needs --username.")
    if username is not None and expose_token:
        raise click.UsageError("--expose-token cannot be combined with --username/--password.")
    login_server, token_server = resolve_login_server(name)
    if username is None:
        secret = session().exchange(login_server)
        user = REFRESH_TOKEN_USER
        if expose_token:
            warn(EXPOSE_TOKEN_NOTE)
            return {"accessToken": secret, "loginServer": login_server}
    else:
        user = username
        secret = read_password(password, password_stdin)
        check_credentials(login_server, token_server, user, secret)
    docker_warning = save_docker_login(login_server, user, secret)
    if docker_warning:
        warn(docker_warning)
    save_containers_login(login_server, user, secret)
    click.echo("Login Succeeded")
    return None
