"""A registry's data plane for the CLI: ACR's metadata API `/acr/v1/` and the OCI `/v2/` API.

Requests go to the registry's login server (the `loginServer` of
`GET /api/registries/{name}`), over the scheme of the configured server URL. When that host
name does not resolve, or nothing answers there, they go to the configured server URL with
`Host: <login server>` instead: Haven picks the registry by Host, so a deployment whose
login servers are not in DNS (the default `<name>.localhost`) works from the CLI all the
same.

Each request carries a bearer access token for exactly the scopes it needs
(`registry:catalog:*`, `repository:<repo>:metadata_read`, `…:metadata_write`, `…:delete`,
`…:pull`; for soft-deleted content `registry:deleted_catalog:*`, `…:deleted_read`,
`…:deleted_restore`), from `POST /oauth2/token` with `grant_type=refresh_token`; the
registry refresh token comes from `POST /oauth2/exchange` of the CLI's management token,
as `haven login` gets it. Failures are CliErrors carrying the registry's own message (the
distribution spec's `{"errors": [{"code", "message"}]}`); a 404 exits with code 3.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import click
import httpx

from haven.cli.client import HavenClient, error_message, transport_error
from haven.cli.errors import CliError, ServerError
from haven.cli.progress import progress
from haven.cli.registry import registry_path

CATALOG_SCOPE = "registry:catalog:*"
DELETED_CATALOG_SCOPE = "registry:deleted_catalog:*"
PAGE_SIZE = 100
MAX_PAGES = 100_000

MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.artifact.manifest.v1+json",
)
MANIFEST_ACCEPT = ", ".join(MANIFEST_MEDIA_TYPES)

_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?', re.IGNORECASE)


def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def reference_segment(value: str) -> str:
    """A tag or digest as one URL path segment (a digest keeps its `:`, as registries expect)."""
    return quote(value, safe=":")


def repository_path(repository: str) -> str:
    """`repository` in a URL path: each of its `/`-separated components quoted."""
    return quote(repository, safe="/")


@dataclass(frozen=True)
class ImageReference:
    """`repo:tag` or `repo@digest`, as `--image` and `az acr manifest -n` take them."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    def __str__(self) -> str:
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"

    @property
    def reference(self) -> str:
        """The tag or digest, as `/v2/<name>/manifests/<reference>` takes it."""
        return self.digest if self.digest is not None else str(self.tag)


def parse_image(value: str, option: str = "--image") -> ImageReference:
    """`repo:tag`, `repo@digest`, or `repo` (meaning `repo:latest`, as az takes it).

    Raises BadParameter for an empty repository, tag or digest, or a malformed digest; the
    registry judges the rest of the name.
    """
    text = value.strip()
    if "@" in text:
        repository, _, digest = text.partition("@")
        last = repository.rsplit("/", 1)[-1]
        if ":" in last:  # repo:tag@digest: the digest decides
            repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
        if not _DIGEST.match(digest):
            raise click.BadParameter(
                f"'{digest}' is not a digest (expected algorithm:hex, e.g. sha256:…)",
                param_hint=option,
            )
        reference = ImageReference(repository, digest=digest)
    else:
        head, _, last = text.rpartition("/")
        name, colon, tag = last.partition(":")
        if colon and not tag:
            raise click.BadParameter(f"'{value}' has an empty tag", param_hint=option)
        repository = f"{head}/{name}" if head else name
        reference = ImageReference(repository, tag=tag if colon else "latest")
    if not reference.repository or reference.repository.startswith("/"):
        raise click.BadParameter(f"'{value}' names no repository", param_hint=option)
    return reference


def next_link(header: str | None) -> tuple[str, dict[str, str]] | None:
    """The path and query of a `Link: <…>; rel="next"` header, if there is one."""
    if not header:
        return None
    found = _LINK.search(header)
    if found is None:
        return None
    parts = urlsplit(found.group(1))
    if not parts.path:
        return None
    return parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))


def looks_like_host(name: str) -> bool:
    """Whether `name` is a login server (host[:port]) rather than a registry's name, which
    is letters and digits only."""
    return "." in name or ":" in name or name == "localhost"


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return True


def _same_url(left: str, right: str) -> bool:
    return left.rstrip("/").lower() == right.rstrip("/").lower()


@dataclass(frozen=True)
class Endpoint:
    """Where the data-plane requests of one registry go."""

    base_url: str
    # The Host header to send when base_url is not the login server itself.
    host: str | None = None

    def headers(self) -> dict[str, str]:
        return {"Host": self.host} if self.host else {}

    def describe(self) -> str:
        return f"{self.base_url} (Host: {self.host})" if self.host else self.base_url


class RegistryClient:
    """The data plane of registry `name`, reached through the signed-in HavenClient."""

    def __init__(self, client: HavenClient, name: str) -> None:
        self.client = client
        self.name = name
        self._login_server: str | None = None
        self._endpoints: list[Endpoint] | None = None
        self._refresh_token: str | None = None
        self._access_tokens: dict[str, str] = {}

    # ------------------------------------------------------------------ where

    @property
    def login_server(self) -> str:
        """The registry's login server, from the management API (asked once); a name that
        is a host[:port] is taken as the login server itself, which needs no management
        rights (an identity holding only AcrPull may not read the registry's resource)."""
        if self._login_server is None and looks_like_host(self.name):
            self._login_server = self.name
        if self._login_server is None:
            try:
                found = self.client.get(registry_path(self.name))
            except ServerError as error:
                if error.status != 403:
                    raise
                # Without the right to read the registry resource (an AcrPull assignee,
                # say), any role on it still reveals its login server.
                try:
                    found = self.client.get(registry_path(self.name) + "/loginServer")
                except ServerError:
                    reason = error.message.rstrip(".")
                    raise ServerError(
                        f"{reason}. Without the right to read the registry, name it by its "
                        "login server instead: -n <login server>.",
                        error.status,
                        error.code,
                    ) from error
            login_server = found.get("loginServer") if isinstance(found, dict) else None
            if not isinstance(login_server, str) or not login_server:
                raise CliError(f"The server did not say what registry '{self.name}' is served as.")
            self._login_server = login_server
        return self._login_server

    def endpoints(self) -> list[Endpoint]:
        """The login server itself when its name resolves, then the configured server."""
        if self._endpoints is None:
            server = self.client.server
            scheme = urlsplit(server).scheme
            direct = Endpoint(f"{scheme}://{self.login_server}")
            fallback = Endpoint(server, self.login_server)
            host = urlsplit(direct.base_url).hostname or ""
            if _same_url(direct.base_url, server):
                self._endpoints = [direct]
            elif _resolves(host):
                self._endpoints = [direct, fallback]
            else:
                self._endpoints = [fallback]
        return self._endpoints

    @property
    def endpoint(self) -> Endpoint:
        return self.endpoints()[0]

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange with the registry, moving on to the configured server when the
        login server cannot be connected to; other transport failures are CliErrors."""
        headers = dict(kwargs.pop("headers", None) or {})
        while True:
            endpoint = self.endpoint
            http = self.client.http(endpoint.base_url)
            try:
                return http.request(
                    method, path, headers={**endpoint.headers(), **headers}, **kwargs
                )
            except httpx.HTTPError as error:
                unreachable = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
                if (
                    unreachable
                    and "CERTIFICATE_VERIFY_FAILED" not in str(error)
                    and len(self.endpoints()) > 1
                ):
                    self.endpoints().pop(0)
                    continue
                raise transport_error(error, endpoint.describe()) from error

    # ------------------------------------------------------------------ tokens

    def refresh_token(self, *, renew: bool = False) -> str:
        if self._refresh_token is None or renew:
            self._refresh_token = self.client.exchange(self.login_server)
        return self._refresh_token

    def access_token(self, scopes: Sequence[str], *, renew: bool = False) -> str:
        """A registry access token for `scopes` (one request per set of scopes)."""
        key = " ".join(sorted(set(scopes)))
        cached = self._access_tokens.get(key)
        if cached is not None and not renew:
            return cached
        for fresh_refresh in (False, True):
            response = self.send(
                "POST",
                "/oauth2/token",
                data={
                    "grant_type": "refresh_token",
                    "service": self.login_server,
                    "scope": key,
                    "refresh_token": self.refresh_token(renew=fresh_refresh),
                },
            )
            if response.status_code != 401:
                break
        if not response.is_success:
            message, _ = error_message(response)
            raise ServerError(
                f"Cannot get an access token for {self.login_server}: {message}",
                response.status_code,
            )
        body = HavenClient.result(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise CliError(f"The token service of {self.login_server} answered without a token.")
        self._access_tokens[key] = token
        return token

    # ------------------------------------------------------------------ requests

    def request(
        self,
        method: str,
        path: str,
        scopes: Sequence[str],
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """`method path` with a token for `scopes`; a 401 is retried once with a new token.

        Returns the response whatever its status; `answer()` turns it into a result.
        """
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = dict(params)
        if json is not None:
            kwargs["json"] = json
        for renew in (False, True):
            token = self.access_token(scopes, renew=renew)
            response = self.send(
                method,
                path,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
                **kwargs,
            )
            if response.status_code != 401:
                break
        return response

    def call(
        self,
        method: str,
        path: str,
        scopes: Sequence[str],
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """The parsed JSON answer of `method path` (None when empty); else a ServerError."""
        return HavenClient.result(self.request(method, path, scopes, params=params, json=json))

    def paged(
        self,
        path: str,
        key: str,
        scopes: Sequence[str],
        *,
        params: Mapping[str, str] | None = None,
        top: int | None = None,
    ) -> list[Any]:
        """Every item of a listing's `key`, following `Link: rel="next"` (at most `top`)."""
        query = dict(params or {})
        query["n"] = str(min(top, PAGE_SIZE) if top is not None else PAGE_SIZE)
        items: list[Any] = []
        seen: set[tuple[str, str]] = set()
        current: tuple[str, dict[str, str]] | None = (path, query)
        with progress(f"Listing {key}") as step:
            while current is not None and len(seen) < MAX_PAGES:
                page_path, page_query = current
                seen.add((page_path, repr(sorted(page_query.items()))))
                response = self.request("GET", page_path, scopes, params=page_query)
                body = HavenClient.result(response)
                page = body.get(key) if isinstance(body, dict) else None
                if page is None:
                    page = []
                if not isinstance(page, list):
                    raise CliError(f"The registry answered {page_path} without a list of {key}.")
                items.extend(page)
                step.advance(len(page))
                if top is not None and len(items) >= top:
                    return items[:top]
                current = next_link(response.headers.get("link"))
                if current is not None and (current[0], repr(sorted(current[1].items()))) in seen:
                    break
        return items

    # ------------------------------------------------------------------ manifests

    def manifest_digest(self, image: ImageReference) -> str:
        """The digest `image` names: its own, or its tag's (`HEAD /v2/…/manifests/<tag>`)."""
        if image.digest is not None:
            return image.digest
        response = self.request(
            "HEAD",
            f"/v2/{repository_path(image.repository)}/manifests/{reference_segment(str(image.tag))}",
            [repository_scope(image.repository, "pull")],
            headers={"Accept": MANIFEST_ACCEPT},
        )
        if not response.is_success:
            if response.status_code == 404:
                raise ServerError(f"The manifest '{image}' does not exist.", 404)
            message, code = error_message(response)
            raise ServerError(message, response.status_code, code)
        digest = response.headers.get("docker-content-digest")
        if not digest:
            raise CliError(f"The registry did not give the digest of '{image}'.")
        return str(digest)
