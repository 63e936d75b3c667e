"""`kubectl get` for a custom resource: Name, the version's additionalPrinterColumns
(an Age column when it lists none), as kube-apiserver's table convertor prints them."""

from __future__ import annotations

import datetime
import json
from typing import Any

from api import crd
from api.resources import ResourceInfo

from .. import tables

DEFAULT_COLUMNS = (crd.Column("Age", "date", ".metadata.creationTimestamp", tables.AGE[3]),)


def _cell(column: crd.Column, obj: dict[str, Any], now: datetime.datetime) -> Any:
    value = crd.json_path(obj, column.json_path)
    if value is None:
        return None
    if column.type == "date":
        return tables.age(value, now) if isinstance(value, str) else None
    if column.type == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if column.type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column.type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def table(
    info: ResourceInfo,
    objects: list[dict[str, Any]],
    include_object: str,
    resource_version: str = "",
    continue_token: str = "",
    remaining: int | None = None,
) -> dict[str, Any]:
    custom: crd.CustomVersion = info.custom
    columns = custom.columns or DEFAULT_COLUMNS
    now = datetime.datetime.now(datetime.UTC)
    rows = [
        (obj, [(obj.get("metadata") or {}).get("name", ""), *(_cell(c, obj, now) for c in columns)])
        for obj in objects
    ]
    definitions = [
        tables.column("Name", "string", 0, tables.NAME[3], "name"),
        *(tables.column(c.name, c.type, c.priority, c.description, c.format) for c in columns),
    ]
    return tables.table(
        definitions, rows, include_object, resource_version, continue_token, remaining
    )


def _definition_row(definition: dict[str, Any], _now: datetime.datetime) -> tables.Row:
    meta = definition.get("metadata") or {}
    return [meta.get("name", ""), meta.get("creationTimestamp", "")]


# `kubectl get crd`: NAME and CREATED AT (a timestamp, not an age), as Kubernetes prints it.
tables.PRINTERS[("apiextensions.k8s.io", "CustomResourceDefinition")] = (
    [
        tables.NAME,
        ("Created At", "date", 0, "The time the definition was created."),
    ],
    _definition_row,
)
