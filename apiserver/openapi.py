"""OpenAPI v2 and v3 documents, generated from the kind descriptions in `api/`.

kubectl reads them for two things: `kubectl explain` (the field tree and its
descriptions, under Kubernetes' definition names such as
`io.k8s.api.core.v1.PodSpec`), and deciding whether the server validates
fields itself — it does when the PATCH operation of a kind lists a
`fieldValidation` query parameter, and then kubectl sends
`fieldValidation=Strict` instead of validating client-side.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache
from typing import Any

from api import resources
from api.kinds.apps import Scale
from api.resources import ResourceInfo
from api.schema import Schema

from .protobuf import openapiv2 as openapiv2_pb

QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
TIME = "io.k8s.apimachinery.pkg.apis.meta.v1.Time"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"


class _Builder:
    """Turns Schemas into OpenAPI schemas, collecting named definitions on the way."""

    def __init__(self, v3: bool) -> None:
        self.v3 = v3
        self.definitions: dict[str, dict[str, Any]] = {}

    def ref(self, name: str) -> str:
        return f"#/components/schemas/{name}" if self.v3 else f"#/definitions/{name}"

    def named(self, name: str, body: dict[str, Any], description: str) -> dict[str, Any]:
        """A reference to a definition, with the field's own description beside it (left
        out when it only repeats the definition's: `kubectl explain` prints both)."""
        self.definitions.setdefault(name, body)
        if description == self.definitions[name].get("description"):
            description = ""
        out: dict[str, Any] = {}
        if self.v3:
            out["allOf"] = [{"$ref": self.ref(name)}]
            out["default"] = {}
        else:
            out["$ref"] = self.ref(name)
        if description:
            out["description"] = description
        return out

    def schema(self, s: Schema, gvk: dict[str, str] | None = None) -> dict[str, Any]:
        if s.type == "object" and s.ref:
            if s.ref not in self.definitions:
                self.definitions[s.ref] = {}  # reserve the name before recursing
                self.definitions[s.ref] = self.object_body(s, gvk)
            elif gvk:
                self.definitions[s.ref]["x-kubernetes-group-version-kind"] = [gvk]
            return self.named(s.ref, self.definitions[s.ref], s.description)
        if s.type == "object":
            return self.object_body(s, gvk)
        if s.type == "quantity":
            return self.named(
                QUANTITY,
                {"type": "string", "description": "A quantity such as 500m, 1.5 or 128Mi."},
                s.description,
            )
        if s.type == "time":
            return self.named(
                TIME,
                {"type": "string", "format": "date-time", "description": "An RFC 3339 time."},
                s.description,
            )
        if s.type == "int-or-string":
            # As kube-openapi writes it: v2 says string, v3 one of integer or string
            # (no `type`, which is what makes `kubectl explain` print <IntOrString>).
            body: dict[str, Any] = {
                "description": "An integer or a string.",
                "format": "int-or-string",
            }
            if self.v3:
                body["oneOf"] = [{"type": "integer"}, {"type": "string"}]
            else:
                body["type"] = "string"
            return self.named(INT_OR_STRING, body, s.description)
        out: dict[str, Any] = {}
        if s.description:
            out["description"] = s.description
        if s.type == "array":
            out["type"] = "array"
            out["items"] = self.schema(s.items) if s.items else {}
            if s.list_type:
                out["x-kubernetes-list-type"] = s.list_type
            if s.merge_key:
                out["x-kubernetes-list-map-keys"] = [s.merge_key]
                out["x-kubernetes-patch-merge-key"] = s.merge_key
            if s.patch_strategy:
                out["x-kubernetes-patch-strategy"] = s.patch_strategy
        elif s.type == "map":
            out["type"] = "object"
            out["additionalProperties"] = self.schema(s.values) if s.values else {}
        elif s.type == "any":
            out["type"] = "object"
            out["x-kubernetes-preserve-unknown-fields"] = True
        else:
            out["type"] = s.type
            if s.format:
                out["format"] = s.format
            if s.enum:
                out["enum"] = list(s.enum)
        return out

    def object_body(self, s: Schema, gvk: dict[str, str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "object"}
        if s.description:
            body["description"] = s.description
        body["properties"] = {name: self.schema(sub) for name, sub in s.fields.items()}
        if s.required:
            body["required"] = list(s.required)
        if gvk:
            body["x-kubernetes-group-version-kind"] = [gvk]
        return body


def _gvk(info: ResourceInfo) -> dict[str, str]:
    return {"group": info.group, "version": info.version, "kind": info.kind}


def _param(
    name: str, description: str, where: str, v3: bool, kind: str = "string", required: bool = False
) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "in": where, "description": description}
    if v3:
        p["schema"] = {"type": kind, "uniqueItems": True}
    else:
        p["type"] = kind
        p["uniqueItems"] = True
    if required:
        p["required"] = True
    return p


def _write_params(v3: bool) -> list[dict[str, Any]]:
    return [
        _param("dryRun", "When present (All), the write is validated but not stored.", "query", v3),
        _param(
            "fieldManager", "Name of the actor making the change, for managedFields.", "query", v3
        ),
        _param(
            "fieldValidation",
            "Ignore, Warn or Strict: what to do with unknown or duplicate fields.",
            "query",
            v3,
        ),
    ]


def _list_params(v3: bool) -> list[dict[str, Any]]:
    return [
        _param("labelSelector", "Only objects whose labels match.", "query", v3),
        _param("fieldSelector", "Only objects whose fields match.", "query", v3),
        _param("limit", "At most this many items; continue for more.", "query", v3, "integer"),
        _param("continue", "Token from the previous page.", "query", v3),
        _param(
            "resourceVersion", "Where to start a watch, or how fresh a list must be.", "query", v3
        ),
        _param("watch", "Stream changes instead of listing.", "query", v3, "boolean"),
        _param("timeoutSeconds", "End a watch after this long.", "query", v3, "integer"),
        _param("allowWatchBookmarks", "Send BOOKMARK events.", "query", v3, "boolean"),
    ]


def _operation(
    b: _Builder,
    info: ResourceInfo,
    action: str,
    ref_schema: dict[str, Any],
    params: list[dict[str, Any]],
    gvk: dict[str, str],
    *,
    body: dict[str, Any] | None = None,
    code: str = "200",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "description": f"{action} {info.kind}",
        "operationId": f"{action}{info.kind}",
        "tags": [f"{info.group or 'core'}_{info.version}"],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": list(params),
    }
    if b.v3:
        op["responses"] = {
            code: {"description": "OK", "content": {"application/json": {"schema": ref_schema}}}
        }
        if body is not None:
            op["requestBody"] = {"content": {"*/*": {"schema": body}}, "required": True}
    else:
        op["responses"] = {code: {"description": "OK", "schema": ref_schema}}
        if body is not None:
            op["parameters"].append(
                {"name": "body", "in": "body", "required": True, "schema": body}
            )
    return op


def _paths_for(b: _Builder, info: ResourceInfo) -> dict[str, Any]:
    gv = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    base = (
        f"{gv}/namespaces/{{namespace}}/{info.plural}"
        if info.namespaced
        else (f"{gv}/{info.plural}")
    )
    v3 = b.v3
    gvk = _gvk(info)
    obj_ref = {"$ref": b.ref(info.schema.ref)}
    patch_body = {"type": "object"}
    path_params = (
        [_param("namespace", "The namespace.", "path", v3, required=True)]
        if (info.namespaced)
        else []
    )
    name_param = _param("name", f"Name of the {info.kind}.", "path", v3, required=True)
    paths: dict[str, Any] = {
        base: {
            "parameters": path_params,
            "get": _operation(b, info, "list", {"type": "object"}, _list_params(v3), gvk),
            "post": _operation(
                b, info, "post", obj_ref, _write_params(v3), gvk, body=obj_ref, code="201"
            ),
        },
        f"{base}/{{name}}": {
            "parameters": [*path_params, name_param],
            "get": _operation(b, info, "get", obj_ref, [], gvk),
            "put": _operation(b, info, "put", obj_ref, _write_params(v3), gvk, body=obj_ref),
            "patch": _operation(
                b,
                info,
                "patch",
                obj_ref,
                [*_write_params(v3), _param("force", "Force apply.", "query", v3, "boolean")],
                gvk,
                body=patch_body,
            ),
            "delete": _operation(
                b,
                info,
                "delete",
                {"$ref": b.ref(STATUS)},
                [
                    _param(
                        "gracePeriodSeconds", "Seconds before deletion.", "query", v3, "integer"
                    ),
                    _param("propagationPolicy", "Orphan, Background or Foreground.", "query", v3),
                    _param("dryRun", "All: do not delete.", "query", v3),
                ],
                gvk,
            ),
        },
    }
    if "deletecollection" in info.verbs:
        paths[base]["delete"] = _operation(
            b, info, "deletecollection", {"$ref": b.ref(STATUS)}, _list_params(v3), gvk
        )
    for sub in ("status", "scale"):
        if sub not in info.subresources:
            continue
        sub_gvk = (
            gvk if sub == "status" else {"group": "autoscaling", "version": "v1", "kind": "Scale"}
        )
        ref = obj_ref if sub == "status" else {"$ref": b.ref(Scale.ref)}
        paths[f"{base}/{{name}}/{sub}"] = {
            "parameters": [*path_params, name_param],
            "get": _operation(b, info, "get", ref, [], sub_gvk),
            "put": _operation(b, info, "put", ref, _write_params(v3), sub_gvk, body=ref),
            "patch": _operation(b, info, "patch", ref, _write_params(v3), sub_gvk, body=patch_body),
        }
    return paths


def _status_definition() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The result of an operation that returns no object: success or why not.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "status": {"type": "string", "description": "Success or Failure."},
            "message": {"type": "string"},
            "reason": {"type": "string"},
            "code": {"type": "integer", "format": "int32"},
            "details": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Status"}],
    }


def _document(infos: list[ResourceInfo], v3: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    b = _Builder(v3)
    paths: dict[str, Any] = {}
    for info in infos:
        b.schema(info.schema, _gvk(info))
        if "scale" in info.subresources:
            b.schema(Scale, {"group": "autoscaling", "version": "v1", "kind": "Scale"})
        paths.update(_paths_for(b, info))
    b.definitions[STATUS] = _status_definition()
    return paths, b.definitions


def _served() -> list[ResourceInfo]:
    """Every kind served; a custom resource with its schema as `kubectl explain` shows it."""
    return [
        dataclasses.replace(r, schema=r.custom.explain) if r.custom is not None else r
        for r in resources.all_resources()
    ]


def openapi_v2() -> dict[str, Any]:
    return _openapi_v2(resources.generation())


@lru_cache(maxsize=4)
def _openapi_v2(_generation: int) -> dict[str, Any]:
    paths, definitions = _document(_served(), v3=False)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-skiff"},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}
        },
        "security": [{"BearerToken": []}],
    }


def openapi_v2_protobuf() -> bytes:
    """The v2 document in gnostic's protobuf form, the one kubectl asks for."""
    return _openapi_v2_protobuf(resources.generation())


@lru_cache(maxsize=4)
def _openapi_v2_protobuf(_generation: int) -> bytes:
    return openapiv2_pb.encode(openapi_v2())


def openapi_v3_document(group: str, version: str) -> dict[str, Any] | None:
    return _openapi_v3_document(group, version, resources.generation())


@lru_cache(maxsize=512)
def _openapi_v3_document(group: str, version: str, _generation: int) -> dict[str, Any] | None:
    infos = [r for r in _served() if r.group == group and r.version == version]
    if not infos:
        return None
    paths, schemas = _document(infos, v3=True)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-skiff"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}
            },
        },
    }


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()


def openapi_v3_index() -> dict[str, Any]:
    return _openapi_v3_index(resources.generation())


@lru_cache(maxsize=4)
def _openapi_v3_index(_generation: int) -> dict[str, Any]:
    entries: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    for r in resources.all_resources():
        if (r.group, r.version) in seen:
            continue
        seen.add((r.group, r.version))
        key = f"apis/{r.group}/{r.version}" if r.group else f"api/{r.version}"
        doc = openapi_v3_document(r.group, r.version)
        assert doc is not None
        entries[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(doc)}"}
    return {"paths": entries}
