"""The registry's errors: one class per OCI error code.

Services raise these; the web layer renders each once as the distribution spec's JSON
body (`{"errors": [{"code", "message", "detail"}]}`) with the class's HTTP status. A
handler never chooses a status code for an error itself.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RegistryError(Exception):
    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "unknown error"

    def __init__(
        self,
        message: str | None = None,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.detail = detail
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        detail = {} if self.detail is None else self.detail
        return {"errors": [{"code": self.code, "message": self.message, "detail": detail}]}


class BlobUnknown(RegistryError):
    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class RangeNotSatisfiable(RegistryError):
    """A chunk or a read range that does not fit (416 with the spec's upload code)."""

    code, status, default_message = "BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable"


class BlobUploadUnknown(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, status, default_message = "DIGEST_INVALID", 400, "provided digest did not match content"


class ManifestBlobUnknown(RegistryError):
    code, status, default_message = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to the repository",
    )


class ManifestInvalid(RegistryError):
    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(RegistryError):
    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(RegistryError):
    code, status, default_message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class SizeInvalid(RegistryError):
    code, status, default_message = "SIZE_INVALID", 400, "provided length did not match content"


class PayloadTooLarge(RegistryError):
    code, status, default_message = "SIZE_INVALID", 413, "payload too large"


class TagInvalid(RegistryError):
    code, status, default_message = "TAG_INVALID", 400, "invalid tag"


class Unauthorized(RegistryError):
    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class Conflict(RegistryError):
    """The request contradicts what is there now (a restore over a tag that points
    elsewhere, without force)."""

    code, status, default_message = "CONFLICT", 409, "the request conflicts with the current state"


class Unsupported(RegistryError):
    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class TooManyRequests(RegistryError):
    code, status, default_message = "TOOMANYREQUESTS", 429, "too many requests"


class PaginationNumberInvalid(RegistryError):
    code, status, default_message = (
        "PAGINATION_NUMBER_INVALID",
        400,
        "invalid number of results requested",
    )


class ParameterInvalid(RegistryError):
    """A query parameter no valid request carries (control characters, say)."""

    code, status, default_message = "PARAMETER_INVALID", 400, "invalid query parameter"


class ApiError(Exception):
    """A management API refusal: `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
