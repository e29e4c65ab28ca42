"""Authentication and authorisation of data-plane requests.

The distribution API answers a caller without (sufficient) credentials with `401` and a
Bearer challenge naming the token service and the scope to ask for; an authenticated
caller that lacks a right gets `403 DENIED` naming the missing action.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.requests import Request

from haven.auth import roles
from haven.errors import Denied, Unauthorized
from haven.services.access import ANONYMOUS, AccessService, Caller

# Which docker scope asks for each action, for the challenge's `scope`.
_SCOPE_OF = {
    roles.READ: "pull",
    roles.META_READ: "pull",
    roles.WRITE: "pull,push",
    roles.META_WRITE: "pull,push",
    roles.DELETE: "delete",
    roles.DELETED_READ: "deleted_read",
    roles.DELETED_RESTORE: "deleted_read,deleted_restore",
}
_ACTION_WORDS = {
    roles.READ: "pull (content/read)",
    roles.META_READ: "list (metadata/read)",
    roles.WRITE: "push (content/write)",
    roles.META_WRITE: "tag (metadata/write)",
    roles.DELETE: "delete (content/delete)",
    roles.CATALOG: "list the catalog",
    roles.DELETED_READ: "list soft-deleted content (deleted/read)",
    roles.DELETED_RESTORE: "restore soft-deleted content (deleted/restore)",
}


@dataclass(frozen=True, slots=True)
class Credentials:
    scheme: str  # "basic" or "bearer"
    username: str = ""
    secret: str = ""


def parse_authorization(value: str | None) -> Credentials | None:
    """The credentials in an Authorization header; raises Unauthorized if malformed."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "bearer" and rest:
        return Credentials("bearer", secret=rest)
    if scheme.lower() == "basic" and rest:
        try:
            decoded = base64.b64decode(rest, validate=True).decode()
        except (binascii.Error, ValueError):  # ValueError: non-ASCII or undecodable
            raise Unauthorized("malformed Basic credentials") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise Unauthorized("malformed Basic credentials: no ':' between user and password")
        return Credentials("basic", username, password)
    raise Unauthorized("unsupported Authorization scheme: use Basic or Bearer")


def client_address(request: Request, trusted: list[str]) -> str | None:
    """The caller's address: the peer, or the nearest untrusted hop of
    X-Forwarded-For when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    if not trusted or peer is None or not _in(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for")
    if not forwarded:
        return peer
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for network in networks:
        try:
            if ip in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


def external_scheme(request: Request, trusted: list[str]) -> str:
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-proto")
    if forwarded and peer is not None and trusted and _in(peer, trusted):
        return forwarded.split(",")[0].strip()
    return str(request.url.scheme)


class FailedLogins:
    """Slows down an address that keeps failing to sign in: after a few failures in a
    minute, each further answer waits longer (up to 5 s)."""

    FREE = 5
    WINDOW = 60.0
    MAX_DELAY = 5.0

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def record(self, address: str | None) -> None:
        if address is None:
            return
        count, since = self._seen.get(address, (0, time.monotonic()))
        if time.monotonic() - since > self.WINDOW:
            count, since = 0, time.monotonic()
        self._seen[address] = (count + 1, since)
        self._seen.move_to_end(address)
        while len(self._seen) > 10_000:
            self._seen.popitem(last=False)

    async def delay(self, address: str | None) -> None:
        if address is None or address not in self._seen:
            return
        count, since = self._seen[address]
        if time.monotonic() - since > self.WINDOW or count <= self.FREE:
            return
        await asyncio.sleep(min(self.MAX_DELAY, 0.25 * 2 ** (count - self.FREE)))


def challenge(
    request: Request,
    trusted: list[str],
    repository: str | None,
    action: str | None,
    message: str,
) -> Unauthorized:
    host = request.headers.get("host") or "localhost"
    realm = f"{external_scheme(request, trusted)}://{host}/oauth2/token"
    value = f'Bearer realm="{realm}",service="{host}"'
    if action == roles.CATALOG:
        value += ',scope="registry:catalog:*"'
    elif action == roles.DELETED_READ and repository is None:
        value += ',scope="registry:deleted_catalog:*"'
    elif repository is not None and action in _SCOPE_OF:
        value += f',scope="repository:{repository}:{_SCOPE_OF[action]}"'
    return Unauthorized(message, headers={"WWW-Authenticate": value})


async def authenticate(
    access: AccessService,
    failures: FailedLogins,
    request: Request,
    registry_id: int,
    address: str | None,
    trusted: list[str],
) -> Caller:
    """The caller behind the request's credentials; ANONYMOUS when there are none.

    Wrong credentials are refused (401), never treated as anonymous.
    """
    try:
        credentials = parse_authorization(request.headers.get("authorization"))
        if credentials is None:
            return Caller(ANONYMOUS)
        if credentials.scheme == "bearer":
            return await access.bearer(registry_id, credentials.secret)
        await failures.delay(address)
        try:
            caller = await access.login_caller(
                registry_id, credentials.username, credentials.secret
            )
        except Unauthorized:
            failures.record(address)
            raise
        return caller
    except Unauthorized as exc:
        raise challenge(request, trusted, None, None, exc.message) from None


async def allowed(
    access: AccessService, caller: Caller, registry_id: int, repository: str | None, action: str
) -> bool:
    """Whether the caller may do `action` now: its current rights, narrowed to what
    its bearer token grants when it came with one."""
    held = await access.permissions(caller.principal, registry_id, repository)
    if action not in held:
        return False
    if caller.token_grants is None:
        return True
    if repository is None:
        # The registry-wide listings: the catalog, and the repositories holding
        # soft-deleted content; each needs its own grant.
        name = "deleted_catalog" if action == roles.DELETED_READ else "catalog"
        return ("registry", name) in caller.token_grants
    resource = ("repository", repository)
    return action in caller.token_grants.get(resource, frozenset())


async def require(
    access: AccessService,
    caller: Caller,
    request: Request,
    trusted: list[str],
    registry_id: int,
    repository: str | None,
    action: str,
) -> None:
    """Raise the right refusal unless the caller may do `action`."""
    if await allowed(access, caller, registry_id, repository, action):
        return
    words = _ACTION_WORDS.get(action, action)
    where = f"repository {repository}" if repository else "this registry"
    if caller.anonymous:
        raise challenge(request, trusted, repository, action, "authentication required")
    held = await access.permissions(caller.principal, registry_id, repository)
    if caller.token_grants is not None and action in held:
        # The identity may, but this token does not say so: ask for a broader token.
        raise challenge(
            request, trusted, repository, action, f"the token does not grant {words} on {where}"
        )
    raise Denied(
        f"requested access to the resource is denied: {caller.principal.name} "
        f"may not {words} on {where}",
        detail={"action": action, "repository": repository},
    )
