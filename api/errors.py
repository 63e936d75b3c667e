"""Field errors, worded exactly as Kubernetes' `field.Error` prints them.

kubectl shows these messages verbatim ("spec.replicas: Invalid value: -1: must
be greater than or equal to 0"), so the wording is part of the API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_REASON_TEXT = {
    "FieldValueInvalid": "Invalid value",
    "FieldValueRequired": "Required value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueTypeInvalid": "Invalid value",
    "FieldValueNotFound": "Not found",
}


@dataclass(frozen=True)
class GoValue:
    """A value already written the way Go prints it, e.g. `map[string]string{"a":"b"}`."""

    text: str


def go_value(value: Any) -> str:
    """A value as Go's %v/%q prints it in field errors: strings quoted, numbers bare."""
    if isinstance(value, GoValue):
        return value.text
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str
    detail: str = ""
    value: Any = None

    def message(self) -> str:
        head = _REASON_TEXT.get(self.reason, "Invalid value")
        if self.reason in (
            "FieldValueRequired",
            "FieldValueForbidden",
            "FieldValueTooLong",
            "FieldValueTooMany",
        ):
            return f"{head}: {self.detail}" if self.detail else head
        if self.reason == "FieldValueNotSupported":
            return f"{head}: {go_value(self.value)}" + (f": {self.detail}" if self.detail else "")
        text = f"{head}: {go_value(self.value)}"
        return f"{text}: {self.detail}" if self.detail else text

    def cause(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message(), "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message()}"


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, "FieldValueRequired", detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, "FieldValueInvalid", detail, value)


def not_supported(field: str, value: Any, allowed: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(json.dumps(a) for a in allowed)
    return FieldError(field, "FieldValueNotSupported", detail, value)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(field, "FieldValueDuplicate", "", value)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, "FieldValueForbidden", detail)


def type_invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, "FieldValueTypeInvalid", detail, value)
