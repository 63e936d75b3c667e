"""A small declarative schema language for Kubernetes kinds.

Each kind is described once with these constructors; the apiserver derives
from the description the unknown-field check (`fieldValidation`), JSON type
checks, and the OpenAPI documents that `kubectl apply` validates against and
`kubectl explain` prints.

    Container = obj("io.k8s.api.core.v1.Container", "A process to run in a pod.",
        name=string("Unique name of the container in the pod.", required=True),
        image=string("The image to run, e.g. nginx:1.25."),
        ports=arr(ContainerPort, "Ports the container listens on.", merge_key="containerPort"),
    )
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Schema:
    type: str  # object | array | map | string | integer | number | boolean | int-or-string
    #            | quantity | time | any
    description: str = ""
    fields: dict[str, Schema] = field(default_factory=dict)
    items: Schema | None = None  # arrays
    values: Schema | None = None  # maps
    required: tuple[str, ...] = ()
    enum: tuple[str, ...] = ()
    merge_key: str = ""
    patch_strategy: str = ""
    ref: str = ""  # OpenAPI definition name of an object type
    format: str = ""
    list_type: str = ""  # x-kubernetes-list-type: atomic | set | map

    def described(self, description: str) -> Schema:
        """The same type with a field-specific description."""
        return Schema(**{**self.__dict__, "description": description})


def obj(ref: str, description: str, *, required: tuple[str, ...] = (), **fields: Schema) -> Schema:
    return Schema("object", description, dict(fields), required=required, ref=ref)


def string(description: str = "", *, enum: tuple[str, ...] = (), format: str = "") -> Schema:
    return Schema("string", description, enum=enum, format=format)


def integer(description: str = "", *, format: str = "int32") -> Schema:
    return Schema("integer", description, format=format)


def number(description: str = "") -> Schema:
    return Schema("number", description, format="double")


def boolean(description: str = "") -> Schema:
    return Schema("boolean", description)


def time(description: str = "") -> Schema:
    return Schema("time", description, format="date-time")


def int_or_string(description: str = "") -> Schema:
    return Schema("int-or-string", description, format="int-or-string")


def quantity(description: str = "") -> Schema:
    return Schema("quantity", description)


def any_value(description: str = "", *, shape: str = "object") -> Schema:
    """JSON whose inside skiff does not check (e.g. an opaque config).

    `shape` is still checked ("object", "array", or "" for anything), as the Go
    type behind it would be: a number where a struct belongs is refused, so no
    reader of the stored object (kubectl, a typed client) ever fails on it.
    """
    return Schema("any", description, format=shape)


def arr(item: Schema, description: str = "", *, merge_key: str = "", set_: bool = False) -> Schema:
    strategy = "merge" if merge_key or set_ else ""
    list_type = "map" if merge_key else ("set" if set_ else "atomic")
    return Schema(
        "array",
        description,
        items=item,
        merge_key=merge_key,
        patch_strategy=strategy,
        list_type=list_type,
    )


def map_of(value: Schema, description: str = "") -> Schema:
    return Schema("map", description, values=value)


def strings(description: str = "") -> Schema:
    return arr(string(), description)


def string_map(description: str = "") -> Schema:
    return map_of(string(), description)


# -- walking an object against its schema --------------------------------------------


def _type_ok(schema: Schema, value: Any) -> bool:
    t = schema.type
    if value is None:
        return True  # null means "unset" in Kubernetes JSON
    if t in ("object", "map"):
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t in ("string", "time"):
        return isinstance(value, str)
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t == "boolean":
        return isinstance(value, bool)
    if t in ("int-or-string", "quantity"):
        return isinstance(value, int | float | str) and not isinstance(value, bool)
    return True


JSON_TYPE = {
    "object": "object",
    "map": "object",
    "array": "array",
    "string": "string",
    "time": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "int-or-string": "integer or string",
    "quantity": "string",
    "any": "any",
}


def walk(schema: Schema, value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Problems in `value`: ("unknown", path, None) and ("type", path, value)."""
    if value is None or schema.type == "any":
        return
    if not _type_ok(schema, value):
        yield "type", path, value
        return
    if schema.type == "object":
        for key, sub in value.items():
            child = schema.fields.get(key)
            at = f"{path}.{key}" if path else key
            if child is None:
                yield "unknown", at, None
            else:
                yield from walk(child, sub, at)
    elif schema.type == "map" and schema.values is not None:
        for key, sub in value.items():
            yield from walk(schema.values, sub, f"{path}[{key}]")
    elif schema.type == "array" and schema.items is not None:
        for i, sub in enumerate(value):
            yield from walk(schema.items, sub, f"{path}[{i}]")


def drop_unknown(schema: Schema, value: Any) -> None:
    """Remove every field the schema does not know, in place."""
    if value is None or schema.type == "any":
        return
    if schema.type == "object" and isinstance(value, dict):
        for key in list(value):
            child = schema.fields.get(key)
            if child is None:
                del value[key]
            else:
                drop_unknown(child, value[key])
    elif schema.type == "map" and isinstance(value, dict) and schema.values is not None:
        for sub in value.values():
            drop_unknown(schema.values, sub)
    elif schema.type == "array" and isinstance(value, list) and schema.items is not None:
        for sub in value:
            drop_unknown(schema.items, sub)


def at_path(schema: Schema, dotted: str) -> Schema | None:
    """The schema of a dotted field path (`spec.template.spec.containers`), for explain."""
    node: Schema | None = schema
    for part in [p for p in dotted.split(".") if p]:
        while node is not None and node.type == "array":
            node = node.items
        if node is None or node.type != "object":
            return None
        node = node.fields.get(part)
    return node


# -- what Go's decoder would say about a value ---------------------------------------

# The ranges of Kubernetes' integer formats, as Go's int32 and int64 hold them.
INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def go_type(schema: Schema) -> str:
    """The Go type behind a schema, as `json: cannot unmarshal ... of type T` names it."""
    t = schema.type
    if t == "object":
        if not schema.ref:
            return "map[string]interface {}"
        parts = schema.ref.split(".")
        return f"{parts[-2]}.{parts[-1]}" if len(parts) > 1 else schema.ref
    if t == "array":
        return "[]" + (go_type(schema.items) if schema.items else "interface {}")
    if t == "map":
        return "map[string]" + (go_type(schema.values) if schema.values else "interface {}")
    if t == "any":
        return {"object": "map[string]interface {}", "array": "[]interface {}"}.get(
            schema.format, "interface {}"
        )
    return {
        "string": "string",
        "time": "v1.Time",
        "integer": schema.format or "int32",
        "number": "float64",
        "boolean": "bool",
        "int-or-string": "intstr.IntOrString",
        "quantity": "resource.Quantity",
    }.get(t, "interface {}")


def json_kind(value: Any) -> str:
    """The JSON kind of a decoded value, as Go's decoder words it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def zero_value(schema: Schema) -> Any:
    """What Go leaves in a field when JSON gives it `null` inside a list or map."""
    return {
        "object": {},
        "map": {},
        "array": [],
        "string": "",
        "integer": 0,
        "number": 0,
        "boolean": False,
        "int-or-string": 0,
        "quantity": "0",
    }.get(schema.type)
