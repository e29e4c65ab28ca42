"""`haven account login|show|logout`: which Haven server the CLI uses, and as whom."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from haven.cli.client import normalize_server
from haven.cli.command import HavenGroup, session
from haven.cli.errors import CliError

SERVICE_PRINCIPAL = "servicePrincipal"


def read_password(password: str | None, password_stdin: bool, prompt: str = "Password") -> str:
    """The password from `-p`, from stdin (`--password-stdin`), or asked on a terminal.

    Raises UsageError for both `-p` and `--password-stdin`, for an empty password, and when
    there is neither and no terminal to ask on.
    """
    if password is not None and password_stdin:
        raise click.UsageError("--password and --password-stdin are mutually exclusive.")
    if password_stdin:
        password = sys.stdin.read().rstrip("\r\n")
    elif password is None:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "Missing option '-p' / '--password' (or --password-stdin); no tty to prompt on."
            )
        password = click.prompt(prompt, hide_input=True, err=True)
    if not password:
        raise click.UsageError("The password must not be empty.")
    return password


def _server_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return normalize_server(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


@click.group(cls=HavenGroup)
def account() -> None:
    """Sign the CLI in to a Haven server, and see as whom."""


@account.command("login")
@click.option(
    "--server",
    "-s",
    required=True,
    callback=_server_url,
    metavar="URL",
    help="The Haven server, e.g. https://haven.example.com (https:// when no scheme is given).",
)
@click.option("--username", "-u", required=True, help="User name, or a service principal's appId.")
@click.option("--password", "-p", help="Password, or a service principal's secret.")
@click.option(
    "--service-principal",
    is_flag=True,
    help="Sign in as a service principal (-u APPID -p SECRET); refused for a user.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, resolve_path=True, path_type=Path),
    help="PEM CA certificates that sign the server's TLS certificate (remembered).",
)
def login(
    server: str,
    username: str,
    password: str | None,
    service_principal: bool,
    password_stdin: bool,
    ca_file: Path | None,
) -> Any:
    """Sign in; keep the server and a refresh token (never the password) in the config file
    (~/.config/haven/config.json).

    Scripts can skip this: HAVEN_SERVER, HAVEN_USERNAME and HAVEN_PASSWORD sign every
    command in by themselves.
    """
    secret = read_password(password, password_stdin)
    client = session()
    previous = client.store.load()
    client.login(server, username, secret, str(ca_file) if ca_file else None)
    me = client.get("/api/me")
    if service_principal and (not isinstance(me, dict) or me.get("kind") != SERVICE_PRINCIPAL):
        client.store.save(previous)
        raise CliError(
            f"'{username}' is a {me.get('kind') if isinstance(me, dict) else 'principal'}, "
            "not a service principal; drop --service-principal to sign in as it."
        )
    return me


@account.command("show")
def show() -> Any:
    """Show the signed-in identity."""
    return session().get("/api/me")


@account.command("logout")
def logout() -> Any:
    """Forget the tokens of the signed-in account (the server URL is kept)."""
    client = session()
    if not client.config.refresh_token:
        raise CliError("There is no active account; nothing to log out of.")
    client.logout()
    return None
