"""The CLI's HTTP client for Haven's management API and token service.

The CLI never touches the database: everything goes over HTTP, so it works the same against
a remote deployment. Signing in exchanges the password once for a refresh token (kept in
the config file); each command then gets a short-lived access token from
`POST /oauth2/token` with `grant_type=refresh_token` and `service=management`, caches it in
the config file until shortly before it expires, and sends it as `Authorization: Bearer`.

Scripts may instead set `HAVEN_SERVER`, `HAVEN_USERNAME` and `HAVEN_PASSWORD` (a user, or a
service principal's appId and secret): every command then signs in with them by itself
(`grant_type=password`), keeps the access token in memory only and writes nothing; the
stored login, if any, is left alone.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from haven import __version__
from haven.cli.config import CliConfig, ConfigStore
from haven.cli.errors import CliError, NotLoggedInError, ServerError
from haven.cli.httplog import HttpLog

MANAGEMENT_SERVICE = "management"
# An access token this close to its expiry is renewed rather than sent.
EXPIRY_MARGIN_SECONDS = 30.0
DEFAULT_ACCESS_TOKEN_SECONDS = 300.0
TIMEOUT = httpx.Timeout(60.0, connect=15.0)
ENVIRONMENT_VARIABLES = ("HAVEN_SERVER", "HAVEN_USERNAME", "HAVEN_PASSWORD")


@dataclass(frozen=True)
class EnvironmentLogin:
    """The sign-in a script gives through HAVEN_SERVER, HAVEN_USERNAME and HAVEN_PASSWORD."""

    server: str
    username: str
    password: str


def environment_login(environ: Mapping[str, str] | None = None) -> EnvironmentLogin | None:
    """The environment's sign-in, or None when none of its variables is set.

    Raises CliError when only some of them are set, or HAVEN_SERVER is not a server URL:
    a script that meant to sign in that way must not silently run as someone else.
    """
    env = os.environ if environ is None else environ
    values = {name: env.get(name, "") for name in ENVIRONMENT_VARIABLES}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise CliError(
            f"{', '.join(missing)} not set: set HAVEN_SERVER, HAVEN_USERNAME and "
            "HAVEN_PASSWORD together to sign in through the environment, or unset them."
        )
    try:
        server = normalize_server(values["HAVEN_SERVER"])
    except ValueError as error:
        raise CliError(f"HAVEN_SERVER: {error}") from error
    return EnvironmentLogin(server, values["HAVEN_USERNAME"], values["HAVEN_PASSWORD"])


def segment(value: str) -> str:
    """`value` quoted as one URL path segment (names may hold `/`, `@`, spaces…)."""
    return quote(value, safe="")


def normalize_server(url: str) -> str:
    """`url` as a base URL: https:// when no scheme is given, no trailing slash.

    Raises ValueError when it is not an http(s) URL with a host.
    """
    text = url.strip()
    if "://" not in text:
        text = f"https://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// server URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a server URL takes no query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def tls_verification(ca_file: str | None) -> ssl.SSLContext | bool:
    """How to verify the server's certificate.

    The CA file given to `haven account login --ca-file` wins; then `REQUESTS_CA_BUNDLE`
    and `SSL_CERT_FILE` (as az and the requests library read them); else the default
    trust store. Raises CliError when a named CA file is missing or unreadable.
    """
    for source, path in (
        ("--ca-file", ca_file),
        ("REQUESTS_CA_BUNDLE", os.environ.get("REQUESTS_CA_BUNDLE")),
        ("SSL_CERT_FILE", os.environ.get("SSL_CERT_FILE")),
    ):
        if not path:
            continue
        try:
            if Path(path).is_dir():
                return ssl.create_default_context(capath=path)
            return ssl.create_default_context(cafile=path)
        except (OSError, ssl.SSLError) as error:
            raise CliError(f"Cannot load the CA certificates {path} ({source}): {error}") from error
    return True


def transport_error(error: httpx.HTTPError, where: str) -> CliError:
    """The CliError for a request to `where` that got no HTTP answer."""
    if isinstance(error, httpx.ConnectError):
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            return CliError(
                f"Cannot verify the TLS certificate of {where} ({error}); pass its CA "
                "with 'haven account login --ca-file', or set REQUESTS_CA_BUNDLE."
            )
        return CliError(f"Cannot connect to {where}: {error}")
    if isinstance(error, httpx.TimeoutException):
        return CliError(f"{where} did not answer in time ({type(error).__name__}).")
    return CliError(f"The request to {where} failed: {error}")


def error_message(response: httpx.Response) -> tuple[str, str | None]:
    """The server's own message and code for a failed response.

    Understands Haven's `{"error": {"code", "message"}}`, OAuth's `{"error",
    "error_description"}` and the OCI `{"errors": [{"code", "message"}]}`; otherwise the
    status line.
    """
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            code = error.get("code")
            return error["message"], code if isinstance(code, str) else None
        if isinstance(error, str):
            description = data.get("error_description")
            return (description if isinstance(description, str) and description else error), error
        errors = data.get("errors")
        if isinstance(errors, list) and errors and all(isinstance(e, dict) for e in errors):
            messages = [str(e.get("message") or e.get("code")) for e in errors]
            code = errors[0].get("code")
            return "; ".join(messages), code if isinstance(code, str) else None
        for key in ("message", "detail"):
            if isinstance(data.get(key), str):
                return data[key], None
    text = response.text.strip()
    if text and len(text) <= 300 and "<" not in text:
        return text, None
    return f"{response.status_code} {response.reason_phrase}", None


class HavenClient:
    """One command's connection to the Haven server named in the config file (or in
    HAVEN_SERVER, with HAVEN_USERNAME and HAVEN_PASSWORD)."""

    def __init__(self, store: ConfigStore | None = None, *, debug: bool = False) -> None:
        self.store = store or ConfigStore()
        self.config = self.store.load()
        self.debug = debug
        self._clients: dict[str, httpx.Client] = {}
        self._environment: EnvironmentLogin | None = None
        self._environment_read = False
        self._memory_token: tuple[str, float] | None = None

    # ------------------------------------------------------------------ plumbing

    @property
    def environment(self) -> EnvironmentLogin | None:
        """The HAVEN_SERVER/USERNAME/PASSWORD sign-in, when it is in use (read once)."""
        if not self._environment_read:
            self._environment = environment_login()
            self._environment_read = True
        return self._environment

    @property
    def signed_in(self) -> bool:
        """Whether a command can reach the management API as someone."""
        return self.environment is not None or bool(
            self.config.server and self.config.refresh_token
        )

    @property
    def server(self) -> str:
        environment = self.environment
        if environment is not None:
            return environment.server
        if not self.config.server or not self.config.refresh_token:
            raise NotLoggedInError()
        return self.config.server

    @property
    def ca_file(self) -> str | None:
        """The remembered --ca-file, for the server it was given with."""
        environment = self.environment
        if environment is not None and environment.server != self.config.server:
            return None
        return self.config.ca_file

    def http(self, base_url: str | None = None) -> httpx.Client:
        """An httpx client for `base_url` (default: the configured server), kept open."""
        base = base_url or self.server
        client = self._clients.get(base)
        if client is None:
            client = httpx.Client(
                base_url=base,
                verify=tls_verification(self.ca_file),
                timeout=TIMEOUT,
                headers={"User-Agent": f"haven-cli/{__version__}"},
                event_hooks=HttpLog().hooks() if self.debug else None,
            )
            self._clients[base] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def send(
        self, method: str, url: str, *, base_url: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One HTTP exchange; transport failures become a CliError naming the server."""
        client = self.http(base_url)
        where = base_url or self.server
        try:
            return client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            raise transport_error(error, where) from error

    @staticmethod
    def result(response: httpx.Response) -> Any:
        """The JSON body of a successful response (None when empty); else a ServerError."""
        if response.is_success:
            if response.status_code == 204 or not response.content:
                return None
            try:
                return response.json()
            except ValueError as error:
                raise CliError(
                    f"The server answered {response.request.method} {response.request.url.path} "
                    "with a body that is not JSON."
                ) from error
        message, code = error_message(response)
        raise ServerError(message, response.status_code, code)

    # ------------------------------------------------------------------ tokens

    def _remember_tokens(self, tokens: Mapping[str, Any]) -> str:
        access = tokens.get("access_token") or tokens.get("token")
        if not isinstance(access, str) or not access:
            raise CliError("The token service answered without an access token.")
        lifetime = tokens.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, (int, float)) else None
        self.config.access_token = access
        self.config.access_token_expires_at = time.time() + (
            seconds if seconds is not None else DEFAULT_ACCESS_TOKEN_SECONDS
        )
        refresh = tokens.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self.config.refresh_token = refresh
        self.store.save(self.config)
        return access

    def access_token(self, *, renew: bool = False) -> str:
        """A management access token: the cached one while it is valid, else a new one."""
        if self.environment is not None:
            return self._environment_access_token(renew)
        server = self.server
        config = self.config
        expires_at = config.access_token_expires_at or 0.0
        if not renew and config.access_token and expires_at > time.time() + EXPIRY_MARGIN_SECONDS:
            return config.access_token
        response = self.send(
            "POST",
            "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": config.refresh_token,
                "service": MANAGEMENT_SERVICE,
            },
        )
        if response.status_code in (400, 401, 403):
            message, _ = error_message(response)
            raise CliError(
                f"Your login to {server} is no longer valid ({message}); "
                "run 'haven account login' again."
            )
        tokens = self.result(response)
        if not isinstance(tokens, dict):
            raise CliError("The token service answered with something other than a JSON object.")
        return self._remember_tokens(tokens)

    def _environment_access_token(self, renew: bool) -> str:
        environment = self.environment
        assert environment is not None
        cached = self._memory_token
        if not renew and cached is not None and cached[1] > time.time() + EXPIRY_MARGIN_SECONDS:
            return cached[0]
        response = self.send(
            "POST",
            "/oauth2/token",
            data={
                "grant_type": "password",
                "username": environment.username,
                "password": environment.password,
                "service": MANAGEMENT_SERVICE,
            },
        )
        if response.status_code in (400, 401, 403):
            message, _ = error_message(response)
            raise CliError(
                f"{environment.server} refused HAVEN_USERNAME and HAVEN_PASSWORD: {message}"
            )
        tokens = self.result(response)
        access = tokens.get("access_token") if isinstance(tokens, dict) else None
        if not isinstance(access, str) or not access:
            raise CliError("The token service answered without an access token.")
        lifetime = tokens.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, (int, float)) else None
        self._memory_token = (
            access,
            time.time() + (seconds if seconds is not None else DEFAULT_ACCESS_TOKEN_SECONDS),
        )
        return access

    def login(self, server: str, username: str, password: str, ca_file: str | None) -> None:
        """Sign in with a password and keep the refresh token (never the password).

        Raises ServerError with the token service's message when the credentials are
        refused; the previous login, if any, is kept in that case.
        """
        self.close()
        # An explicit login is what this command uses, whatever the environment says.
        self._environment, self._environment_read = None, True
        previous = self.config
        self.config = CliConfig(
            server=server, ca_file=ca_file, defaults=previous.defaults, extra=previous.extra
        )
        try:
            response = self.send(
                "POST",
                "/oauth2/token",
                base_url=server,
                data={
                    "grant_type": "password",
                    "username": username,
                    "password": password,
                    "service": MANAGEMENT_SERVICE,
                    "access_type": "offline",
                },
            )
            tokens = self.result(response)
            if not isinstance(tokens, dict) or not isinstance(tokens.get("refresh_token"), str):
                raise CliError(f"{server} did not return a refresh token; is it a Haven server?")
        except CliError:
            self.config = previous
            raise
        self.config.username = username
        self._remember_tokens(tokens)

    def logout(self) -> None:
        self.config.forget_credentials()
        self.store.save(self.config)

    def exchange(self, service: str) -> str:
        """A refresh token for registry `service` (its login server), for docker and podman."""
        for renew in (False, True):
            response = self.send(
                "POST",
                "/oauth2/exchange",
                data={
                    "grant_type": "access_token",
                    "service": service,
                    "access_token": self.access_token(renew=renew),
                },
            )
            if response.status_code != 401:
                break
        body = self.result(response)
        token = body.get("refresh_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise CliError("The token exchange answered without a refresh token.")
        return token

    # ------------------------------------------------------------------ management API

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """`method path` on the management API; the parsed JSON answer (None when empty).

        A 401 on a cached access token is retried once with a new one (the server may have
        rotated its keys); any other failure raises ServerError with the server's message.
        """
        kwargs: dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = json
        if params:
            kwargs["params"] = dict(params)
        for renew in (False, True):
            token = self.access_token(renew=renew)
            response = self.send(
                method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
            if response.status_code != 401:
                break
        return self.result(response)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.call("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.call("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.call("PATCH", path, json=body)

    def delete(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.call("DELETE", path, params=params)
