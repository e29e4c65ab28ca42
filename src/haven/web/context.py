"""What a distribution API handler receives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from haven.errors import ParameterInvalid
from haven.services.access import Caller

if TYPE_CHECKING:
    from haven.web.app import Services


@dataclass(slots=True)
class Ctx:
    request: Request
    services: Services
    registry_id: int
    params: dict[str, str]
    caller: Caller

    async def may(self, repository: str | None, action: str) -> bool:
        """Whether the caller may also do `action` on another repository (or, with
        None, across the registry)."""
        from haven.web.auth import allowed

        return await allowed(
            self.services.access, self.caller, self.registry_id, repository, action
        )

    @property
    def name(self) -> str:
        return self.params["name"]

    @property
    def head(self) -> bool:
        return self.request.method == "HEAD"

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def query(self, name: str) -> str | None:
        value = self.request.query_params.get(name)
        if value is not None and (len(value) > 1024 or not value.isprintable()):
            raise ParameterInvalid(f"query parameter {name!r} is too long or not printable text")
        return value
