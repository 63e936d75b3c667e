"""API failures as typed exceptions, chosen by the `Status` reason and code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details or {}


class BadRequest(ApiError): ...


class Unauthorized(ApiError): ...


class Forbidden(ApiError): ...


class NotFound(ApiError): ...


class Conflict(ApiError): ...


class AlreadyExists(Conflict): ...


class Gone(ApiError): ...


class Invalid(ApiError): ...


class ServerError(ApiError): ...


_BY_REASON: dict[str, type[ApiError]] = {
    "AlreadyExists": AlreadyExists,
    "Invalid": Invalid,
    "Expired": Gone,
    "Gone": Gone,
}
_BY_CODE: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
}


def from_status(code: int, body: Any) -> ApiError:
    status = body if isinstance(body, dict) else {}
    reason = str(status.get("reason", ""))
    message = str(status.get("message") or f"HTTP {code}")
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code) or (ServerError if code >= 500 else ApiError)
    return cls(int(status.get("code") or code), reason, message, status.get("details"))
