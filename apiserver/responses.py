"""Writing a response: JSON (or YAML when asked), lists, Tables, Status.

kubectl asks for lists `as=Table` and prints the server's columns; other
clients get the plain objects. The media type is negotiated from `Accept`
the way kube-apiserver does it, falling back to JSON.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from starlette.responses import Response

from api.resources import ResourceInfo

from . import tables
from .errors import ApiError


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def wants_yaml(accept: str) -> bool:
    types = [part.split(";")[0].strip() for part in accept.split(",")]
    return bool(types) and types[0] in ("application/yaml", "application/x-yaml")


def send(
    obj: Any, code: int = 200, *, accept: str = "", warnings: list[str] | None = None
) -> Response:
    headers = {}
    if warnings:
        # Kubernetes' warning header: code 299, agent "-", quoted text.
        headers["Warning"] = ", ".join(
            '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in warnings
        )
    if accept and wants_yaml(accept):
        body = yaml.safe_dump(obj, sort_keys=False).encode()
        return Response(body, code, headers, media_type="application/yaml")
    return Response(_dumps(obj), code, headers, media_type="application/json")


def send_error(error: ApiError) -> Response:
    return Response(
        _dumps(error.status()), error.code, error.headers, media_type="application/json"
    )


def success_status(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """What a DELETE of a kind without ReturnDeletedObject answers, as Kubernetes does."""
    meta = obj.get("metadata", {})
    details: dict[str, Any] = {"name": meta.get("name", ""), "kind": info.plural}
    if info.group:
        details["group"] = info.group
    if meta.get("uid"):
        details["uid"] = meta["uid"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    }


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
    for item in items:
        # Items in a list carry no kind/apiVersion in Kubernetes' JSON.
        item.pop("kind", None)
        item.pop("apiVersion", None)
    return {
        "kind": info.list_kind,
        "apiVersion": info.api_version,
        "metadata": meta,
        "items": items,
    }


def table(
    info: ResourceInfo,
    objects: list[dict[str, Any]],
    include_object: str,
    revision: int = 0,
    continue_token: str = "",
    remaining: int | None = None,
) -> dict[str, Any]:
    for obj in objects:
        obj.setdefault("kind", info.kind)
        obj.setdefault("apiVersion", info.api_version)
    return tables.table_for(
        group=info.group,
        kind=info.kind,
        objects=objects,
        include_object=include_object or "Metadata",
        resource_version=str(revision) if revision else "",
        continue_token=continue_token,
        remaining=remaining,
    )
