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
    rows = []
    for obj in objects:
        name = (obj.get("metadata") or {}).get("name", "")
        row: dict[str, Any] = {"cells": [name, *(_cell(c, obj, now) for c in columns)]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    definitions = [
        {"name": "Name", "type": "string", "format": "name", "description": tables.NAME[3],
         "priority": 0},
        *(
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            }
            for c in columns
        ),
    ]  # fmt: skip
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }


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
