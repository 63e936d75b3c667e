"""API errors as Kubernetes `Status` objects.

Every failure the server reports, from a bad path to a lost race, leaves as a
`Status` with the same `reason`, `code` and message wording kube-apiserver
uses, because kubectl prints those messages verbatim ("Error from server
(NotFound): pods "x" not found") and clients branch on `reason`.
"""

from __future__ import annotations

from typing import Any

from api.errors import FieldError


class ApiError(Exception):
    """An error that becomes a `Status` response."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:  # {} too: kube-apiserver sends `"details": {}`
            body["details"] = self.details
        return in_status_order(body)


STATUS_ORDER = ("kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code")
DETAILS_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")


def _ordered(obj: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    out = {k: obj[k] for k in order if k in obj}
    out.update((k, v) for k, v in obj.items() if k not in out)
    return out


def in_status_order(body: dict[str, Any]) -> dict[str, Any]:
    """A `Status` with its fields in the order kube-apiserver writes them (the Go struct's
    order), details included: clients and their tests compare the text as printed."""
    out = _ordered(body, STATUS_ORDER)
    if isinstance(out.get("details"), dict):
        out["details"] = _ordered(out["details"], DETAILS_ORDER)
    return out


def qualified(resource: str, group: str) -> str:
    """`deployments.apps`, or just `pods` for the core group, as Kubernetes names them."""
    return f"{resource}.{group}" if group else resource


def _details(name: str, resource: str, group: str) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": resource}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    return details


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{qualified(resource, group)} "{name}" not found',
        details=_details(name, resource, group),
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(resource, group)} "{name}" already exists',
        details=_details(name, resource, group),
    )


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(resource, group)} "{name}": {why}',
        details=_details(name, resource, group),
    )


STALE = (
    "the object has been modified; please apply your changes to the latest version and try again"
)


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 naming every bad field, worded as kube-apiserver's NewInvalid."""
    qualified_kind = f"{kind}.{group}" if group else kind
    parts = [f"{e.field}: {e.message()}" for e in errors]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details: dict[str, Any] = {"name": name, "kind": kind, "causes": [e.cause() for e in errors]}
    if group:
        details["group"] = group
    return ApiError(
        422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details=details
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def forbidden(
    resource: str, group: str, name: str, why: str, causes: list[dict] | None = None
) -> ApiError:
    details = _details(name, resource, group)
    if causes:
        details["causes"] = causes
    target = f'{qualified(resource, group)} "{name}"' if name else qualified(resource, group)
    return ApiError(403, "Forbidden", f"{target} is forbidden: {why}", details=details)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def method_not_allowed(method: str, path: str) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method} {path})",
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def too_large(limit: int) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/merge-patch+json, "
        f'application/json-patch+json (got "{content_type}")',
    )


def path_not_found() -> ApiError:
    """A path nothing serves. kube-apiserver's answer carries empty `details`, and
    clients read them: kubectl debug tells a 404 of the ephemeralcontainers
    subresource (the feature is off) from a missing pod by `details.name`, and
    dereferences `details` to do so (without them it crashed)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource", details={})


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {message}")


def service_unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)
