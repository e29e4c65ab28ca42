"""The token service: `/oauth2/token` and `/oauth2/exchange` (Docker token auth, ACR's
refresh-token exchange).

`service=management` asks for tokens of the management API; any other service gets
tokens for the registry the request's Host names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response

from haven.errors import NameInvalid, Unauthorized
from haven.oci.names import validate_name
from haven.services.access import ANONYMOUS, MANAGEMENT, AccessService, Principal
from haven.timestamps import iso_from_ms
from haven.web.auth import FailedLogins, parse_authorization

MAX_FORM_BYTES = 64 * 1024


class OAuthError(Exception):
    """A malformed token request, answered as `{"error", "error_description"}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _json(value: dict[str, Any], status: int = 200) -> Response:
    return Response(
        orjson.dumps(value),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


def _error(code: str, message: str, status: int) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="haven"'} if status == 401 else None
    body = orjson.dumps({"error": code, "error_description": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def parse_scopes(values: list[str]) -> list[tuple[str, str, list[str]]]:
    """`repository:NAME:pull,push` and `registry:catalog:*` entries; several may share
    one parameter, separated by spaces. Raises NameInvalid for a bad repository name."""
    scopes = []
    for value in values:
        for item in value.split():
            resource_type, sep, rest = item.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not name:
                raise NameInvalid(f"malformed scope {item[:200]!r}: expected type:name:actions")
            if resource_type == "repository":
                validate_name(name)
            scopes.append((resource_type, name, [a for a in actions.split(",") if a]))
    return scopes


async def _form(request: Request) -> dict[str, list[str]]:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "request body too large")
    try:
        return parse_qs(body.decode(), keep_blank_values=False, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "malformed form body") from None


def _one(form: dict[str, list[str]], key: str) -> str | None:
    values = form.get(key)
    return values[0] if values else None


class TokenEndpoints:
    def __init__(
        self,
        access: AccessService,
        failures: FailedLogins,
        resolve: Callable[[str | None], Awaitable[int]],
    ) -> None:
        self._access = access
        self._failures = failures
        self._resolve = resolve

    async def _registry(self, service: str | None, fallback: int) -> int | None:
        """The registry a form's `service` names (a login server); None for management."""
        if service == MANAGEMENT:
            return None
        return await self._resolve(service) if service else fallback

    async def _issue(
        self,
        principal: Principal,
        target: int | None,
        scopes: list[tuple[str, str, list[str]]],
        offline: bool,
    ) -> dict[str, Any]:
        token, lifetime, issued, access = await self._access.issue_access(principal, target, scopes)
        answer: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": lifetime,
            "issued_at": iso_from_ms(issued * 1000),
        }
        if access:
            answer["scope"] = " ".join(
                f"{a['type']}:{a['name']}:{','.join(a['actions'])}" for a in access
            )
        if offline and principal.kind != "anonymous":
            answer["refresh_token"] = await self._access.issue_refresh(principal, target)
        return answer

    async def get_token(self, request: Request, registry_id: int, address: str | None) -> Response:
        """GET /oauth2/token: Basic credentials (or none, for anonymous pull)."""
        params = request.query_params
        try:
            scopes = parse_scopes(params.getlist("scope"))
            target = None if params.get("service") == MANAGEMENT else registry_id
            credentials = parse_authorization(request.headers.get("authorization"))
            if credentials is None:
                principal = ANONYMOUS
            elif credentials.scheme != "basic":
                raise Unauthorized("the token endpoint takes Basic credentials")
            else:
                principal = await self._login(
                    target, credentials.username, credentials.secret, address
                )
        except Unauthorized as exc:
            return _error("unauthorized", exc.message, 401)
        except NameInvalid as exc:
            return _error("invalid_scope", exc.message, 400)
        offline = params.get("offline_token") == "true"
        return _json(await self._issue(principal, target, scopes, offline))

    async def _login(
        self, target: int | None, username: str, password: str, address: str | None
    ) -> Principal:
        await self._failures.delay(address)
        try:
            principal = await self._access.login(target, username, password)
        except Unauthorized:
            self._failures.record(address)
            raise
        return principal

    async def post_token(self, request: Request, registry_id: int, address: str | None) -> Response:
        """POST /oauth2/token: grant_type=password or refresh_token."""
        try:
            form = await _form(request)
            scopes = parse_scopes(form.get("scope", []))
        except OAuthError as exc:
            return _error(exc.code, exc.message, 400)
        except NameInvalid as exc:
            return _error("invalid_scope", exc.message, 400)
        target = await self._registry(_one(form, "service"), registry_id)
        grant = _one(form, "grant_type")
        try:
            if grant == "password":
                username, password = _one(form, "username"), _one(form, "password")
                if not username or password is None:
                    return _error("invalid_request", "username and password are required", 400)
                principal = await self._login(target, username, password, address)
            elif grant == "refresh_token":
                refresh = _one(form, "refresh_token")
                if not refresh:
                    return _error("invalid_request", "refresh_token is required", 400)
                audience = MANAGEMENT if target is None else await self._access.audience(target)
                principal = await self._access.from_token(refresh, audience, "refresh")
            else:
                return _error(
                    "unsupported_grant_type", "grant_type must be password or refresh_token", 400
                )
        except Unauthorized as exc:
            return _error("invalid_grant", exc.message, 401)
        offline = _one(form, "access_type") == "offline" or grant == "refresh_token"
        answer = await self._issue(principal, target, scopes, offline)
        answer.pop("token", None)
        return _json(answer)

    async def exchange(self, request: Request, registry_id: int) -> Response:
        """POST /oauth2/exchange: a management access token → a registry refresh token."""
        try:
            form = await _form(request)
        except OAuthError as exc:
            return _error(exc.code, exc.message, 400)
        if _one(form, "grant_type") not in ("access_token", None):
            return _error("unsupported_grant_type", "grant_type must be access_token", 400)
        token = _one(form, "access_token")
        if not token:
            return _error("invalid_request", "access_token is required", 400)
        try:
            principal = await self._access.from_token(token, MANAGEMENT, "access")
        except Unauthorized as exc:
            return _error("invalid_grant", exc.message, 401)
        target = await self._registry(_one(form, "service"), registry_id)
        if target is None:
            return _error("invalid_request", "service must name a registry's login server", 400)
        refresh = await self._access.issue_refresh(principal, target)
        return _json({"refresh_token": refresh})
