"""A programmable stand-in for a Haven server, for the CLI's unit tests.

It speaks real HTTP on 127.0.0.1 (so the CLI's actual httpx client, TLS-less, is exercised)
and implements only the token service; each test declares the management API answers it
needs with `route()` and inspects what the CLI sent in `requests`.

`serve_registry()` adds a registry's data plane: its record in the management API, the
refresh-token exchange and registry access tokens for the scopes asked; data-plane routes
(`/acr/…`, `/v2/…`) then require such a token and answer 401 with a Bearer challenge
without one, as a registry does.
"""

from __future__ import annotations

import itertools
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OWNER = "owner"
OWNER_PASSWORD = "correct horse battery staple"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    # Bytes sent as they are (with headers' Content-Type), instead of `body` as JSON.
    raw: bytes | None = None


Handler = Callable[[Recorded], Answer]


def error(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}})


def oci_error(status: int, code: str, message: str) -> Answer:
    """The distribution spec's error body, as `/v2/` and `/acr/v1/` answer."""
    return Answer(status, {"errors": [{"code": code, "message": message, "detail": None}]})


DATA_PLANE_PREFIXES = ("/acr/", "/v2/")


class FakeHaven:
    """Token service + declared routes; every request is recorded."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.scheme = "https" if tls else "http"
        self.routes: dict[tuple[str, str], Handler] = {}
        self.requests: list[Recorded] = []
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.access_token_lifetime = 300
        # Registry refresh tokens → login server; registry access tokens → (server, scopes).
        self.registry_refresh_tokens: dict[str, str] = {}
        self.registry_access_tokens: dict[str, tuple[str, list[str]]] = {}
        self.refuse_registry_tokens = False
        # Data-plane paths answered by their route without a token (a misbehaving proxy).
        self.open_paths: set[str] = set()
        self._counter = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    @property
    def address(self) -> str:
        return self.url.split("://", 1)[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ----------------------------------------------------------------- declaring

    def route(
        self, method: str, path: str, answer: Answer | Handler | Any = None, status: int = 200
    ) -> None:
        """Answer `method path` (path without query) with `answer`.

        `answer` may be an Answer, a function of the Recorded request, or a JSON body sent
        with `status`. Management routes require a valid access token.
        """
        if callable(answer):
            self.routes[(method, path)] = answer
        elif isinstance(answer, Answer):
            self.routes[(method, path)] = lambda _request: answer
        else:
            self.routes[(method, path)] = lambda _request: Answer(status, answer)

    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/api/")]

    def last(self, method: str, path: str) -> Recorded:
        matches = [r for r in self.requests if r.method == method and r.path == path]
        assert matches, f"no {method} {path} among {[(r.method, r.path) for r in self.requests]}"
        return matches[-1]

    def revoke_access_tokens(self) -> None:
        self.access_tokens.clear()

    def serve_registry(self, name: str = "reg", login_server: str = "reg.example.com") -> None:
        """Registry `name` served as `login_server`: its management record and token exchange."""
        self.route(
            "GET",
            f"/api/registries/{name}",
            {"id": f"/registries/{name}", "name": name, "loginServer": login_server},
        )

        def exchange(request: Recorded) -> Answer:
            form = request.form()
            if form.get("access_token") not in self.access_tokens:
                return Answer(401, {"error": "invalid_grant", "error_description": "bad token"})
            refresh = f"registry-refresh-{next(self._counter)}"
            self.registry_refresh_tokens[refresh] = form.get("service", "")
            return Answer(200, {"refresh_token": refresh})

        self.route("POST", "/oauth2/exchange", exchange)

    def scopes(self, request: Recorded) -> list[str]:
        """The scopes of the registry access token `request` carried."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return self.registry_access_tokens[token][1]

    def data_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith(DATA_PLANE_PREFIXES)]

    # ----------------------------------------------------------------- serving

    def _issue(self) -> dict[str, Any]:
        number = next(self._counter)
        access, refresh = f"access-{number}", f"refresh-{number}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": self.access_token_lifetime,
        }

    def _registry_token(self, form: dict[str, str]) -> Answer:
        service = self.registry_refresh_tokens.get(form.get("refresh_token", ""))
        if form.get("grant_type") != "refresh_token" or service is None:
            return Answer(401, {"error": "invalid_grant", "error_description": "bad refresh token"})
        if self.refuse_registry_tokens:
            return Answer(403, {"error": "access_denied", "error_description": "token refused"})
        if service != form.get("service"):
            return Answer(401, {"error": "invalid_grant", "error_description": "wrong service"})
        access = f"registry-access-{next(self._counter)}"
        self.registry_access_tokens[access] = (service, form.get("scope", "").split())
        return Answer(200, {"access_token": access, "expires_in": 300})

    def _token(self, request: Recorded) -> Answer:
        form = request.form()
        if form.get("service") in self.registry_refresh_tokens.values():
            return self._registry_token(form)
        if form.get("service") != "management":
            return Answer(400, {"error": "invalid_request", "error_description": "bad service"})
        if form.get("grant_type") == "password":
            if form.get("username") == OWNER and form.get("password") == OWNER_PASSWORD:
                return Answer(200, self._issue())
            return error(401, "UNAUTHORIZED", "invalid username or password")
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") in self.refresh_tokens:
                tokens = self._issue()
                del tokens["refresh_token"]
                return Answer(200, tokens)
            return error(401, "UNAUTHORIZED", "the refresh token is expired or revoked")
        return Answer(400, {"error": "unsupported_grant_type"})

    def _dispatch(self, request: Recorded) -> Answer:
        if request.method == "POST" and request.path == "/oauth2/token":
            return self._token(request)
        handler = self.routes.get((request.method, request.path))
        if request.path.startswith("/api/"):
            authorization = request.headers.get("authorization", "")
            if authorization.removeprefix("Bearer ") not in self.access_tokens:
                return error(401, "UNAUTHORIZED", "authentication required")
        if request.path.startswith(DATA_PLANE_PREFIXES) and request.path not in self.open_paths:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            if token not in self.registry_access_tokens:
                host = request.headers.get("host", "")
                answer = oci_error(401, "UNAUTHORIZED", "authentication required")
                answer.headers["WWW-Authenticate"] = (
                    f'Bearer realm="{self.url}/oauth2/token",service="{host}"'
                )
                return answer
            if handler is None:
                return oci_error(404, "NAME_UNKNOWN", f"no route {request.method} {request.path}")
        if handler is None:
            return error(404, "NOT_FOUND", f"no route {request.method} {request.path}")
        return handler(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                request = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=self.rfile.read(length) if length else b"",
                )
                fake.requests.append(request)
                answer = fake._dispatch(request)
                if answer.raw is not None:
                    payload = answer.raw
                else:
                    payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                if payload and answer.raw is None:
                    self.send_header("Content-Type", "application/json")
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return RequestHandler


def running(tls: ssl.SSLContext | None = None) -> Iterator[FakeHaven]:
    fake = FakeHaven(tls)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
