"""Credentials for a registry that requires them, applied the way real clients apply them.

Haven authenticates every `/v2/` request; the reference registry, as configured here, does
not. Two modes for Haven:

* `bearer` (default): the Docker token protocol that docker, containerd, podman and oras
  follow. A request answered `401` with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`
  makes the client fetch a token for that scope from the realm (HTTP Basic) and retry; the
  token is then reused for its repository. Tokens for the repositories a scenario uses are
  fetched in its set-up, so the timed rounds carry a token and see no 401.
* `basic`: HTTP Basic on every request, which Haven also accepts; the cheaper path for the
  server if its credential check is cached, shown for comparison.

Either way the benchmark measures Haven as clients use it, and the reference as configured
(open), which is the comparison the targets are written against.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

_PARAM = re.compile(r'(\w+)="([^"]*)"')
_REPO_PATH = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)/")
TOKEN_REUSE_S = 120.0  # Haven's access tokens live 5 minutes; renew well before


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    @property
    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def scope_key(path: str) -> str | None:
    """The resource a request path acts on, as tokens are scoped: a repository name, the
    catalog, or None (e.g. `/v2/` itself)."""
    if path.startswith("/v2/_catalog"):
        return "registry:catalog"
    match = _REPO_PATH.match(path)
    return f"repository:{match.group(1)}" if match else None


def parse_challenge(header: str) -> dict[str, str] | None:
    """`Bearer realm="…",service="…",scope="…"` → its parameters; None if not Bearer."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return dict(_PARAM.findall(rest))


@dataclass
class Authorizer:
    """Chooses the Authorization header of each request and renews bearer tokens."""

    credentials: Credentials
    mode: str  # "bearer" or "basic"
    session: aiohttp.ClientSession
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # key -> (token, when)
    _realm: str | None = None
    _service: str | None = None

    def header(self, path: str) -> dict[str, str]:
        """The header to send with a request for `path`, if one is known yet."""
        if self.mode == "basic":
            return {"Authorization": self.credentials.basic}
        key = scope_key(path)
        entry = self._tokens.get(key) if key else None
        if entry and time.monotonic() - entry[1] < TOKEN_REUSE_S:
            return {"Authorization": f"Bearer {entry[0]}"}
        return {}

    async def on_challenge(self, path: str, challenge: str) -> bool:
        """Handle a 401: fetch the token it asks for. True when a retry can succeed."""
        if self.mode == "basic":
            return False
        params = parse_challenge(challenge)
        key = scope_key(path)
        if not params or "realm" not in params or not key:
            return False
        self._realm, self._service = params["realm"], params.get("service", "")
        scope = params.get("scope") or _default_scope(key)
        await self._fetch(key, scope)
        return True

    async def prepare(self, base_url: str, path: str) -> None:
        """Fetch the token for `path`'s resource ahead of time (untimed set-up), as a client
        that is about to pull and push there would."""
        if self.mode == "basic":
            return
        key = scope_key(path)
        if key is None:
            return
        if self._realm is None:
            async with self.session.get(base_url + "/v2/") as resp:
                challenge = resp.headers.get("WWW-Authenticate", "")
            params = parse_challenge(challenge) or {}
            if "realm" not in params:
                raise RuntimeError(f"GET /v2/ gave no Bearer challenge: {challenge!r}")
            self._realm, self._service = params["realm"], params.get("service", "")
        await self._fetch(key, _default_scope(key))

    async def header_for_scopes(self, base_url: str, *scopes: str) -> dict[str, str]:
        """A header whose token carries several scopes at once: a cross-repository mount
        needs push on the target and pull on the source, as docker asks for it."""
        if self.mode == "basic":
            return {"Authorization": self.credentials.basic}
        key = " ".join(scopes)
        entry = self._tokens.get(key)
        if not entry or time.monotonic() - entry[1] >= TOKEN_REUSE_S:
            if self._realm is None:
                await self.prepare(base_url, "/v2/_catalog")
            await self._fetch(key, *scopes)
        return {"Authorization": f"Bearer {self._tokens[key][0]}"}

    async def _fetch(self, key: str, *scopes: str) -> None:
        assert self._realm is not None
        query = [("service", self._service or "")] + [("scope", s) for s in scopes]
        headers = {"Authorization": self.credentials.basic}
        async with self.session.get(self._realm, params=query, headers=headers) as resp:
            body: Any = await resp.json(content_type=None)
            if resp.status != 200:
                raise RuntimeError(f"token for {scopes}: HTTP {resp.status} {body}")
        token = body.get("token") or body.get("access_token")
        self._tokens[key] = (str(token), time.monotonic())


def _default_scope(key: str) -> str:
    return "registry:catalog:*" if key == "registry:catalog" else f"{key}:pull,push"
