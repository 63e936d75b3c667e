"""Custom resources: what a CustomResourceDefinition means for the objects of its kind.

All pure functions over plain JSON, so they are table-tested without a server:

- `validate_crd` / `default_crd`: the definition itself, as kube-apiserver checks it;
- `infos_for(crd)`: the `ResourceInfo` of every served version, which the
  apiserver adds to its resource table once the definition is Established;
- `prune`, `apply_defaults`, `validate`: a custom object against its version's
  structural schema (`openAPIV3Schema`), in Kubernetes' order and wording;
- `json_path`: the simple JSONPath of printer columns and scale paths.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import FieldError, GoValue, invalid, not_supported, required
from .kinds.meta import ObjectMeta
from .resources import ALL_VERBS, ResourceInfo
from .schema import Schema, any_value, obj, string

GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
ROOT_FIELDS = ("apiVersion", "kind", "metadata")
JSON_TYPES = ("object", "array", "string", "integer", "number", "boolean")
COLUMN_TYPES = ("integer", "number", "string", "boolean", "date")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0
    format: str = ""


@dataclass(frozen=True, eq=False)
class CustomVersion:
    """What the apiserver needs of one served version of a custom resource."""

    crd_name: str
    schema: dict[str, Any] = field(default_factory=dict)
    explain: Schema = field(default_factory=lambda: Schema("object"))
    storage_version: str = ""
    columns: tuple[Column, ...] = ()
    spec_replicas_path: str = ""  # scale subresource; "" when it has none
    status_replicas_path: str = ""
    label_selector_path: str = ""
    deprecated: bool = False
    deprecation_warning: str = ""
    terminating: bool = False  # the definition is being deleted: no new objects


# -- the definition ----------------------------------------------------------------------


def default_crd(crd: dict[str, Any]) -> None:
    """The defaults kube-apiserver fills into a definition on create and update."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    conversion = spec.setdefault("conversion", {"strategy": "None"})
    if isinstance(conversion, dict):
        conversion.setdefault("strategy", "None")


def validate_crd(crd: dict[str, Any]) -> list[FieldError]:
    """What makes kube-apiserver refuse a definition, worded as it words it."""
    out: list[FieldError] = []
    spec = crd.get("spec") or {}
    meta = crd.get("metadata") or {}
    group = spec.get("group") or ""
    names = spec.get("names") or {}
    plural = names.get("plural") or ""
    if not group:
        out.append(required("spec.group"))
    elif "." not in group:
        out.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    elif not _DNS_SUBDOMAIN.match(group):
        out.append(invalid("spec.group", group, "a lowercase RFC 1123 subdomain must consist "
                           "of lower case alphanumeric characters, '-' or '.'"))  # fmt: skip
    if not plural:
        out.append(required("spec.names.plural"))
    elif not _DNS_LABEL.match(plural):
        out.append(invalid("spec.names.plural", plural, "a lowercase RFC 1123 label must "
                           "consist of lower case alphanumeric characters or '-'"))  # fmt: skip
    for key in ("singular",):
        value = names.get(key) or ""
        if value and not _DNS_LABEL.match(value):
            out.append(invalid(f"spec.names.{key}", value, "a lowercase RFC 1123 label must "
                               "consist of lower case alphanumeric characters or '-'"))  # fmt: skip
    for key in ("kind", "listKind"):
        value = names.get(key) or ""
        if key == "kind" and not value:
            out.append(required("spec.names.kind"))
        elif value and not _KIND.match(value):
            out.append(invalid(f"spec.names.{key}", value, "may have mixed case, but should "
                               "otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?"))  # fmt: skip
    if plural and group and meta.get("name") and meta["name"] != f"{plural}.{group}":
        out.append(
            invalid("metadata.name", meta["name"], 'must be spec.names.plural+"."+spec.group')
        )
    scope = spec.get("scope")
    if not scope:
        out.append(required("spec.scope"))
    elif scope not in ("Namespaced", "Cluster"):
        out.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    strategy = (spec.get("conversion") or {}).get("strategy", "None")
    if strategy not in ("None", "Webhook"):
        out.append(not_supported("spec.conversion.strategy", strategy, ["None", "Webhook"]))
    elif strategy == "Webhook":
        out.append(
            FieldError(
                "spec.conversion.strategy",
                "FieldValueForbidden",
                "conversion webhooks are not supported by this server; use None",
            )
        )
    if spec.get("preserveUnknownFields"):
        out.append(invalid("spec.preserveUnknownFields", True, "must be false in order to use "
                           "defaults in the schema"))  # fmt: skip
    versions = spec.get("versions") or []
    if not versions:
        out.append(required("spec.versions", "must have exactly one version marked as storage "
                            "version"))  # fmt: skip
        return out
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        out.append(
            invalid(
                "spec.versions",
                [v.get("name") for v in storage],
                "must have exactly one version marked as storage version",
            )
        )
    seen: set[str] = set()
    for i, version in enumerate(versions):
        at = f"spec.versions[{i}]"
        name = version.get("name") or ""
        if not name:
            out.append(required(f"{at}.name"))
        elif not _DNS_LABEL.match(name):
            out.append(invalid(f"{at}.name", name, "a DNS-1035 label must consist of lower "
                               "case alphanumeric characters or '-'"))  # fmt: skip
        elif name in seen:
            out.append(FieldError(f"{at}.name", "FieldValueDuplicate", value=name))
        seen.add(name)
        schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or None
        if schema is None:
            out.append(required(f"{at}.schema.openAPIV3Schema", "schemas are required"))
        else:
            out += _structural(schema, f"{at}.schema.openAPIV3Schema", root=True)
        scale = (version.get("subresources") or {}).get("scale")
        if isinstance(scale, dict):
            for key in ("specReplicasPath", "statusReplicasPath"):
                path = scale.get(key) or ""
                prefix = ".spec." if key == "specReplicasPath" else ".status."
                if not path:
                    out.append(required(f"{at}.subresources.scale.{key}"))
                elif not path.startswith(prefix):
                    under = prefix.rstrip(".")
                    out.append(invalid(f"{at}.subresources.scale.{key}", path,
                                       f"should be a json path under {under}"))  # fmt: skip
        for j, column in enumerate(version.get("additionalPrinterColumns") or []):
            cat = f"{at}.additionalPrinterColumns[{j}]"
            if not column.get("name"):
                out.append(required(f"{cat}.name"))
            if column.get("type") not in COLUMN_TYPES:
                out.append(not_supported(f"{cat}.type", column.get("type"), list(COLUMN_TYPES)))
            if not column.get("jsonPath"):
                out.append(required(f"{cat}.jsonPath"))
    return out


def _structural(schema: Any, path: str, *, root: bool = False) -> list[FieldError]:
    """Structural-schema rules: every level says its type (or preserves/int-or-string)."""
    if not isinstance(schema, dict):
        return [invalid(path, schema, "must be an object")]
    out: list[FieldError] = []
    t = schema.get("type")
    special = schema.get("x-kubernetes-int-or-string") or schema.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if t is None and not special:
        out.append(required(f"{path}.type", "must not be empty for specified object fields"))
    elif t is not None and t not in JSON_TYPES:
        out.append(not_supported(f"{path}.type", t, list(JSON_TYPES)))
    if root and t not in (None, "object"):
        out.append(invalid(f"{path}.type", t, "must be object at the root"))
    if "pattern" in schema:
        try:
            re.compile(str(schema["pattern"]))
        except re.error as e:
            out.append(invalid(f"{path}.pattern", schema["pattern"], f"must be a valid regex: {e}"))
    for key, sub in (schema.get("properties") or {}).items():
        if root and key == "metadata":
            continue
        out += _structural(sub, f"{path}.properties[{key}]")
    if isinstance(schema.get("items"), dict):
        out += _structural(schema["items"], f"{path}.items")
    elif t == "array":
        out.append(required(f"{path}.items", "must be specified"))
    if isinstance(schema.get("additionalProperties"), dict):
        out += _structural(schema["additionalProperties"], f"{path}.additionalProperties")
    return out


# -- the resource table entries -----------------------------------------------------------


def storage_version(crd: dict[str, Any]) -> str:
    for version in (crd.get("spec") or {}).get("versions") or []:
        if version.get("storage"):
            return str(version.get("name"))
    return ""


def _explain_schema(schema: dict[str, Any], ref: str = "") -> Schema:
    """The schema language's view of a version schema (explain, OpenAPI, merge keys)."""
    t = schema.get("type")
    description = str(schema.get("description") or "")
    if schema.get("x-kubernetes-int-or-string"):
        return Schema("int-or-string", description, format="int-or-string")
    if t == "object" and "properties" in schema:
        fields = {k: _explain_schema(v) for k, v in (schema.get("properties") or {}).items()}
        return Schema(
            "object", description, fields, required=tuple(schema.get("required") or ()), ref=ref
        )
    if t == "object" and isinstance(schema.get("additionalProperties"), dict):
        return Schema("map", description, values=_explain_schema(schema["additionalProperties"]))
    if t == "array" and isinstance(schema.get("items"), dict):
        return Schema("array", description, items=_explain_schema(schema["items"]))
    if t in ("string", "integer", "number", "boolean"):
        enum = tuple(str(e) for e in schema.get("enum") or () if isinstance(e, str))
        return Schema(t, description, enum=enum, format=str(schema.get("format") or ""))
    return any_value(description, shape="object" if t == "object" else "array" if t else "")


def served_schema(schema: dict[str, Any]) -> Schema:
    """The schema the generic apiserver paths check: apiVersion, kind, metadata and every
    other top-level field as opaque, since `validate` checks those in Kubernetes' words."""
    fields: dict[str, Schema] = {
        "apiVersion": string("The versioned schema of this object."),
        "kind": string("The kind of this object."),
        "metadata": ObjectMeta.described("Standard object metadata."),
    }
    for key in schema.get("properties") or {}:
        if key not in fields:
            fields[key] = any_value("", shape="")
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return any_value("", shape="object")
    return obj("", str(schema.get("description") or ""), **fields)


def explain_schema(crd: dict[str, Any], version: str) -> Schema:
    """A version's schema for `kubectl explain`, with metadata filled in."""
    spec = crd.get("spec") or {}
    for v in spec.get("versions") or []:
        if v.get("name") == version:
            schema = (v.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
            root = _explain_schema(schema)
            names = spec.get("names") or {}
            fields = {
                "apiVersion": string("APIVersion defines the versioned schema of this object."),
                "kind": string("Kind is a string value representing the REST resource."),
                "metadata": ObjectMeta.described("Standard object's metadata."),
                **{k: f for k, f in root.fields.items() if k not in ROOT_FIELDS},
            }
            ref = ".".join(reversed(spec.get("group", "").split("."))) + f".{version}."
            return Schema(
                "object",
                root.description,
                fields,
                required=root.required,
                ref=ref + str(names.get("kind", "")),
            )
    return Schema("object")


def infos_for(crd: dict[str, Any]) -> list[ResourceInfo]:
    """Every served version of the definition, as the apiserver's resource table holds it."""
    spec = crd.get("spec") or {}
    names = (crd.get("status") or {}).get("acceptedNames") or spec.get("names") or {}
    group = str(spec.get("group") or "")
    store = storage_version(crd)
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served"):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema") or {"type": "object"}
        subresources = version.get("subresources") or {}
        subs = set()
        if "status" in subresources and subresources["status"] is not None:
            subs.add("status")
        scale = subresources.get("scale") or {}
        if scale:
            subs.add("scale")
        columns = tuple(
            Column(
                name=str(c.get("name", "")),
                type=str(c.get("type", "string")),
                json_path=str(c.get("jsonPath", "")),
                description=str(c.get("description", "")),
                priority=int(c.get("priority") or 0),
                format=str(c.get("format") or ""),
            )
            for c in version.get("additionalPrinterColumns") or []
        )
        custom = CustomVersion(
            crd_name=str((crd.get("metadata") or {}).get("name", "")),
            schema=schema,
            explain=explain_schema(crd, str(version.get("name"))),
            storage_version=store,
            columns=columns,
            spec_replicas_path=str(scale.get("specReplicasPath") or ""),
            status_replicas_path=str(scale.get("statusReplicasPath") or ""),
            label_selector_path=str(scale.get("labelSelectorPath") or ""),
            deprecated=bool(version.get("deprecated")),
            deprecation_warning=str(version.get("deprecationWarning") or ""),
            terminating=bool((crd.get("metadata") or {}).get("deletionTimestamp")),
        )
        kind = str(names.get("kind", ""))
        out.append(
            ResourceInfo(
                group,
                str(version.get("name")),
                kind,
                str(names.get("plural", "")),
                str(names.get("singular") or kind.lower()),
                spec.get("scope") == "Namespaced",
                served_schema(schema),
                tuple(names.get("shortNames") or ()),
                tuple(names.get("categories") or ()),
                frozenset(subs),
                ALL_VERBS,
                storage=f"{group}/{names.get('plural', '')}",
                custom=custom,
            )
        )
    return out


def condition(crd: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (crd.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def is_established(crd: dict[str, Any]) -> bool:
    c = condition(crd, "Established")
    return c is not None and c.get("status") == "True"


def names_conflict(crd: dict[str, Any], others: list[dict[str, Any]]) -> str:
    """Why the definition's names cannot be accepted ("" when they can): another
    established definition of the same group already serves that plural or kind."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    for other in others:
        if (other.get("metadata") or {}).get("name") == (crd.get("metadata") or {}).get("name"):
            continue
        ospec = other.get("spec") or {}
        if ospec.get("group") != spec.get("group"):
            continue
        taken = (other.get("status") or {}).get("acceptedNames") or {}
        if taken.get("plural") and taken.get("plural") == names.get("plural"):
            return f'"{names.get("plural")}" is already in use'
        if taken.get("kind") and taken.get("kind") == names.get("kind"):
            return f'"{names.get("kind")}" is already in use'
    return ""


# -- custom objects: prune, default, validate ----------------------------------------------


def _types(schema: dict[str, Any]) -> str:
    return str(schema.get("type") or "")


def prune(schema: dict[str, Any], value: Any, path: str = "", *, root: bool = True) -> list[str]:
    """Drop every field the schema does not describe, in place; the dropped paths.

    apiVersion, kind and metadata stay at the root and in embedded resources;
    `x-kubernetes-preserve-unknown-fields` keeps everything below it.
    """
    dropped: list[str] = []
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return dropped
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        embedded = root or bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            at = f"{path}.{key}" if path else key
            if embedded and key in ROOT_FIELDS:
                if key == "metadata" and not root and isinstance(value[key], dict):
                    _prune_meta(value[key], at, dropped)
                continue
            if props is not None and key in props:
                dropped += prune(props[key], value[key], at, root=False)
            elif isinstance(extra, dict):
                dropped += prune(extra, value[key], at, root=False)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                del value[key]
                dropped.append(at)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            dropped += prune(schema["items"], item, f"{path}[{i}]", root=False)
    return dropped


_META_FIELDS = ("name", "namespace", "labels", "annotations", "generateName", "finalizers")


def _prune_meta(meta: dict[str, Any], path: str, dropped: list[str]) -> None:
    """Embedded objects keep only the metadata fields a client may set."""
    for key in list(meta):
        if key not in _META_FIELDS:
            del meta[key]
            dropped.append(f"{path}.{key}")


def apply_defaults(schema: dict[str, Any], value: Any) -> None:
    """Fill `default`s in place where a field is absent (or null and not nullable)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if not isinstance(sub, dict):
                continue
            if key in value and value[key] is None and not sub.get("nullable"):
                if "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                else:
                    del value[key]  # a null for a non-nullable field means "unset"
            elif key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, sub in value.items():
                if key not in props:
                    apply_defaults(extra, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(schema["items"], item)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(t: str, value: Any) -> bool:
    actual = _json_type(value)
    return actual == t or (t == "number" and actual == "integer")


def _num(n: Any) -> str:
    return str(int(n)) if isinstance(n, float) and n.is_integer() else str(n)


def validate(schema: dict[str, Any], value: Any, path: str = "") -> list[FieldError]:
    """Every way `value` breaks the schema, as kube-apiserver's CRD validation words it."""
    out: list[FieldError] = []
    _validate(schema, value, path, out, root=True)
    return out


def _validate(
    schema: dict[str, Any], value: Any, path: str, out: list[FieldError], *, root: bool = False
) -> None:
    at = path or "<root>"
    if value is None:
        if not schema.get("nullable") and not root:
            t = _types(schema) or "object"
            out.append(invalid(at, "null", f'{at} in body must be of type {t}: "null"'))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if _json_type(value) not in ("integer", "string"):
            out.append(invalid(at, _json_type(value), f"{at} in body must be of type "
                               f"integer,string: \"{_json_type(value)}\""))  # fmt: skip
            return
    else:
        t = _types(schema)
        if t and not _type_ok(t, value):
            kind = _json_type(value)
            out.append(invalid(at, kind, f'{at} in body must be of type {t}: "{kind}"'))
            return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        out.append(not_supported(at, value, [e for e in enum]))
    if isinstance(value, int | float) and not isinstance(value, bool):
        _numbers(schema, value, at, out)
    if isinstance(value, str):
        _strings(schema, value, at, out)
    if isinstance(value, list):
        _arrays(schema, value, path, at, out)
    if isinstance(value, dict):
        _objects(schema, value, path, at, out, root=root)


def _numbers(schema: dict[str, Any], value: float, at: str, out: list[FieldError]) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None:
        if schema.get("exclusiveMinimum") and value <= low:
            out.append(invalid(at, value, f"{at} in body should be greater than {_num(low)}"))
        elif value < low:
            out.append(invalid(at, value, f"{at} in body should be greater than or equal "
                               f"to {_num(low)}"))  # fmt: skip
    if high is not None:
        if schema.get("exclusiveMaximum") and value >= high:
            out.append(invalid(at, value, f"{at} in body should be less than {_num(high)}"))
        elif value > high:
            out.append(invalid(at, value, f"{at} in body should be less than or equal "
                               f"to {_num(high)}"))  # fmt: skip
    step = schema.get("multipleOf")
    if step and (value / step) != int(value / step):
        out.append(invalid(at, value, f"{at} in body should be a multiple of {_num(step)}"))


def _strings(schema: dict[str, Any], value: str, at: str, out: list[FieldError]) -> None:
    if schema.get("maxLength") is not None and len(value) > schema["maxLength"]:
        out.append(FieldError(at, "FieldValueTooLong", f"may not be more than "
                              f"{schema['maxLength']} bytes", value))  # fmt: skip
    if schema.get("minLength") is not None and len(value) < schema["minLength"]:
        out.append(invalid(at, value, f"{at} in body should be at least "
                           f"{schema['minLength']} chars long"))  # fmt: skip
    pattern = schema.get("pattern")
    if pattern is not None and re.search(str(pattern), value) is None:
        out.append(invalid(at, value, f"{at} in body should match '{pattern}'"))


def _arrays(
    schema: dict[str, Any], value: list[Any], path: str, at: str, out: list[FieldError]
) -> None:
    if schema.get("maxItems") is not None and len(value) > schema["maxItems"]:
        out.append(FieldError(at, "FieldValueTooMany", f"{len(value)}: must have at most "
                              f"{schema['maxItems']} items", len(value)))  # fmt: skip
    if schema.get("minItems") is not None and len(value) < schema["minItems"]:
        out.append(invalid(at, len(value), f"{at} in body should have at least "
                           f"{schema['minItems']} items"))  # fmt: skip
    if schema.get("x-kubernetes-list-type") == "set" or schema.get("uniqueItems"):
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                out.append(FieldError(f"{path}[{i}]", "FieldValueDuplicate", value=item))
            seen.append(item)
    keys = schema.get("x-kubernetes-list-map-keys") or []
    if schema.get("x-kubernetes-list-type") == "map" and keys:
        seen_keys: list[tuple[Any, ...]] = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = tuple(item.get(k) for k in keys)
            if key in seen_keys:
                out.append(FieldError(f"{path}[{i}]", "FieldValueDuplicate",
                                      value=GoValue(_map_key(keys, key))))  # fmt: skip
            seen_keys.append(key)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(items, item, f"{path}[{i}]", out)


def _map_key(names: list[str], values: tuple[Any, ...]) -> str:
    """A list-map item's key as Kubernetes prints it: map[string]interface {}{"name":"a"}."""
    inner = ", ".join(
        f"{json.dumps(n)}:{json.dumps(v)}" for n, v in zip(names, values, strict=True)
    )
    return "map[string]interface {}{" + inner + "}"


def _objects(
    schema: dict[str, Any],
    value: dict[str, Any],
    path: str,
    at: str,
    out: list[FieldError],
    *,
    root: bool,
) -> None:
    for name in schema.get("required") or []:
        if name not in value:
            out.append(required(f"{path}.{name}" if path else name))
    if schema.get("maxProperties") is not None and len(value) > schema["maxProperties"]:
        out.append(FieldError(at, "FieldValueTooMany", f"{len(value)}: must have at most "
                              f"{schema['maxProperties']} items", len(value)))  # fmt: skip
    if schema.get("minProperties") is not None and len(value) < schema["minProperties"]:
        out.append(invalid(at, len(value), f"{at} in body should have at least "
                           f"{schema['minProperties']} properties"))  # fmt: skip
    if schema.get("x-kubernetes-embedded-resource"):
        for key in ("apiVersion", "kind"):
            if not value.get(key):
                out.append(required(f"{path}.{key}" if path else key, "must not be empty"))
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, sub in value.items():
        child = f"{path}.{key}" if path else key
        if root and key in ROOT_FIELDS:
            continue  # checked as every kind's are
        if key in props and isinstance(props[key], dict):
            _validate(props[key], sub, child, out)
        elif isinstance(extra, dict):
            _validate(extra, sub, child, out)


# -- JSONPath of printer columns and scale ---------------------------------------------------

_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\['([^']*)'\]")


def json_path(obj: Any, path: str) -> Any:
    """The value at a simple JSONPath (`.spec.replicas`, `.status.conditions[0].type`,
    `{.metadata.name}`), or None when any step is missing."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    node = obj
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return None
        key, index, quoted = m.groups()
        if index is not None:
            if not isinstance(node, list) or int(index) >= len(node):
                return None
            node = node[int(index)]
        else:
            name = key if key is not None else quoted
            if not isinstance(node, dict) or name not in node:
                return None
            node = node[name]
        pos = m.end()
    return node


def set_json_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set a `.a.b.c` path, making the objects on the way."""
    parts = [p for p in path.strip().split(".") if p]
    node = obj
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value
