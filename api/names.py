"""Name, label and annotation checks with Kubernetes' exact messages
(`k8s.io/apimachinery/pkg/util/validation`)."""

from __future__ import annotations

import re
from typing import Any

from .errors import FieldError, invalid

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
TOTAL_ANNOTATION_SIZE = 256 * 1024


def dns1123_label(field: str, value: str) -> list[FieldError]:
    out = []
    if len(value) > 63:
        out.append(invalid(field, value, "must be no more than 63 characters"))
    if not DNS1123_LABEL.match(value):
        out.append(invalid(field, value, LABEL_MSG))
    return out


def dns1123_subdomain(field: str, value: str) -> list[FieldError]:
    out = []
    if len(value) > 253:
        out.append(invalid(field, value, "must be no more than 253 characters"))
    if not DNS1123_SUBDOMAIN.match(value):
        out.append(invalid(field, value, SUBDOMAIN_MSG))
    return out


def path_segment_name(field: str, value: str) -> list[FieldError]:
    """RBAC names (`system:node`): anything usable as one URL path segment."""
    if value in (".", ".."):
        return [invalid(field, value, f"may not be '{value}'")]
    for bad in ("/", "%"):
        if bad in value:
            return [invalid(field, value, f"may not contain '{bad}'")]
    return []


def dns1035_label(field: str, value: str) -> list[FieldError]:
    out = []
    if len(value) > 63:
        out.append(invalid(field, value, "must be no more than 63 characters"))
    if not DNS1035_LABEL.match(value):
        out.append(invalid(field, value, DNS1035_MSG))
    return out


def qualified_name(field: str, key: str) -> list[FieldError]:
    """A label or annotation key: optional DNS subdomain prefix, '/', a name part."""
    prefix, _, name = key.rpartition("/")
    out: list[FieldError] = []
    if key.count("/") > 1:
        return [
            invalid(
                field,
                key,
                "a qualified name " + QUALIFIED_MSG + " with an optional "
                "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            )
        ]
    if "/" in key:
        if not prefix:
            out.append(invalid(field, key, "prefix part must be non-empty"))
        elif not DNS1123_SUBDOMAIN.match(prefix) or len(prefix) > 253:
            out.append(invalid(field, key, "prefix part " + SUBDOMAIN_MSG))
    if not name:
        out.append(invalid(field, key, "name part must be non-empty"))
    else:
        if len(name) > 63:
            out.append(invalid(field, key, "name part must be no more than 63 characters"))
        if not QUALIFIED_NAME.match(name):
            out.append(invalid(field, key, QUALIFIED_MSG))
    return out


def labels(field: str, value: Any) -> list[FieldError]:
    if not isinstance(value, dict):
        return []
    out: list[FieldError] = []
    for key, v in value.items():
        out += qualified_name(field, str(key))
        text = "" if v is None else str(v)
        if len(text) > 63:
            out.append(invalid(field, text, "must be no more than 63 characters"))
        if not LABEL_VALUE.match(text):
            out.append(invalid(field, text, LABEL_VALUE_MSG))
    return out


def annotations(field: str, value: Any) -> list[FieldError]:
    if not isinstance(value, dict):
        return []
    out: list[FieldError] = []
    total = 0
    for key, v in value.items():
        out += qualified_name(field, str(key).lower())
        total += len(str(key)) + len(str(v or ""))
    if total > TOTAL_ANNOTATION_SIZE:
        out.append(
            FieldError(
                field, "FieldValueTooLong", f"must have at most {TOTAL_ANNOTATION_SIZE} bytes"
            )
        )
    return out


def config_keys(field: str, value: Any) -> list[FieldError]:
    if not isinstance(value, dict):
        return []
    out = []
    for key in value:
        if len(key) > 253:
            out.append(invalid(f"{field}[{key}]", key, "must be no more than 253 characters"))
        if not CONFIG_KEY.match(key):
            out.append(invalid(f"{field}[{key}]", key, CONFIG_KEY_MSG))
    return out
