"""Writing a response: JSON (or YAML when asked), lists, Tables, Status.

kubectl asks for lists `as=Table` and prints the server's columns; other
clients get the plain objects. The media type is negotiated from `Accept`
the way kube-apiserver does it, falling back to JSON.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from starlette.responses import Response

from api.resources import ResourceInfo

from . import jsoncodec, tables
from .crd import tables as crd_tables
from .errors import ApiError, in_status_order


def _dumps(obj: Any) -> bytes:
    # A lone surrogate (input refuses them; this guards what is already stored) is
    # escaped by jsoncodec: the answer is still JSON and still sent.
    return jsoncodec.dumps(obj)


# kube-apiserver's limits on warnings: all of them together at most 4 KiB; past
# that, each is cut to 256 characters, and those that still do not fit are dropped.
MAX_WARNINGS_SIZE = 4 * 1024
MAX_TRUNCATED_WARNING = 256
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def warning_header(warnings: list[str]) -> str:
    """The `Warning` header for some warnings, always a valid header value.

    Each is `299 - "text"` with `"` and `\\` escaped (Kubernetes' NewWarningHeader);
    line breaks and other control characters become spaces, as Go's HTTP server
    writes them; UTF-8 text is sent as its bytes, as Go sends it (the value is
    returned as latin-1 text of those bytes, which is how Starlette encodes it).
    """
    texts = [_CONTROL.sub(" ", w) for w in warnings]
    if sum(len(t) for t in texts) > MAX_WARNINGS_SIZE:
        texts = [t[:MAX_TRUNCATED_WARNING] for t in texts]
    parts: list[str] = []
    size = 0
    for text in texts:
        if parts and size + len(text) > MAX_WARNINGS_SIZE:
            break
        size += len(text)
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(f'299 - "{quoted}"')
    value = ", ".join(parts)
    return value.encode("utf-8", "replace").decode("latin-1")


def wants_yaml(accept: str) -> bool:
    types = [part.split(";")[0].strip() for part in accept.split(",")]
    return bool(types) and types[0] in ("application/yaml", "application/x-yaml")


def send(
    obj: Any, code: int = 200, *, accept: str = "", warnings: list[str] | None = None
) -> Response:
    headers = {}
    if warnings:
        headers["Warning"] = warning_header(warnings)
    if accept and wants_yaml(accept):
        body = yaml.safe_dump(obj, sort_keys=False).encode()
        return Response(body, code, headers, media_type="application/yaml")
    return Response(_dumps(obj), code, headers, media_type="application/json")


def send_error(error: ApiError) -> Response:
    return Response(
        _dumps(error.status()), error.code, error.headers, media_type="application/json"
    )


def created_status() -> dict[str, Any]:
    """What a create that makes no object of its own answers (pods/binding,
    pods/eviction), as Kubernetes does."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def success_status(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """What a DELETE of a kind without ReturnDeletedObject answers, as Kubernetes does."""
    meta = obj.get("metadata", {})
    details: dict[str, Any] = {"name": meta.get("name", ""), "kind": info.plural}
    if info.group:
        details["group"] = info.group
    if meta.get("uid"):
        details["uid"] = meta["uid"]
    return in_status_order(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
    )


def list_object(
    info: ResourceInfo,
    items: list[dict[str, Any]],
    revision: int,
    continue_token: str = "",
    remaining: int | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    # Items in a list carry no kind/apiVersion in Kubernetes' JSON. Copies: the
    # items may be the watch cache's own objects, which nothing may change.
    return {
        "kind": info.list_kind,
        "apiVersion": info.api_version,
        "metadata": meta,
        "items": [
            {k: v for k, v in item.items() if k != "kind" and k != "apiVersion"} for item in items
        ],
    }


def send_list(
    info: ResourceInfo,
    encoded: list[bytes],
    revision: int,
    continue_token: str = "",
    remaining: int | None = None,
) -> Response:
    """`list_object` sent as JSON, from items already encoded: the same bytes
    `send(list_object(...))` writes, without encoding the items again."""
    head = _dumps(list_object(info, [], revision, continue_token, remaining))
    body = head[: -len(b"[]}")] + b"[" + b",".join(encoded) + b"]}"
    return Response(body, 200, media_type="application/json")


def table(
    info: ResourceInfo,
    objects: list[dict[str, Any]],
    include_object: str,
    revision: int = 0,
    continue_token: str = "",
    remaining: int | None = None,
) -> dict[str, Any]:
    objects = [
        obj if "kind" in obj and "apiVersion" in obj
        else {"kind": info.kind, "apiVersion": info.api_version, **obj}
        for obj in objects
    ]  # fmt: skip
    if info.custom is not None:  # a CRD's additionalPrinterColumns
        return crd_tables.table(
            info,
            objects,
            include_object or "Metadata",
            str(revision) if revision else "",
            continue_token,
            remaining,
        )
    return tables.table_for(
        group=info.group,
        kind=info.kind,
        objects=objects,
        include_object=include_object or "Metadata",
        resource_version=str(revision) if revision else "",
        continue_token=continue_token,
        remaining=remaining,
    )
