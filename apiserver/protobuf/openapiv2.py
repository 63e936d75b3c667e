"""The OpenAPI v2 document in protobuf, as kube-apiserver serves it to kubectl.

kubectl asks `GET /openapi/v2` with `Accept:
application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and decodes the
answer as gnostic's `openapi.v2.Document`; a JSON answer there makes it fail
with "proto: cannot parse invalid wire-format data". The message schemas are
gnostic's own (`openapiv2.binpb`, compiled from github.com/google/gnostic-models
openapiv2/OpenAPIv2.proto at a84a29e, the module kubectl vendors); this module
fills them from the JSON document the way gnostic's compiler reads one:
`$ref` is `_ref`, camelCase keys are snake_case fields, maps are repeated
`Named*` pairs, `x-` keys are vendor extensions carrying YAML, and the
`oneof` wrappers are chosen by what the JSON value is.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

# kube-openapi answers both request forms with the second: Go's mime parser (and so
# client-go) refuses the `@` of the older name kubectl still asks for.
MEDIA_TYPES = (
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
)
MEDIA_TYPE = MEDIA_TYPES[1]
PACKAGE = "openapi.v2."

# Messages that are a JSON object of name -> value: (repeated field, value kind).
_MAPS = {
    "Definitions": "additional_properties",
    "Properties": "additional_properties",
    "ParameterDefinitions": "additional_properties",
    "ResponseDefinitions": "additional_properties",
    "SecurityDefinitions": "additional_properties",
    "SecurityRequirement": "additional_properties",
    "Scopes": "additional_properties",
    "Headers": "additional_properties",
    "Examples": "additional_properties",
    "Paths": "path",
    "Responses": "response_code",
}
_NON_BODY = {
    "header": "header_parameter_sub_schema",
    "formData": "form_data_parameter_sub_schema",
    "query": "query_parameter_sub_schema",
    "path": "path_parameter_sub_schema",
}
_SECURITY = {
    "basic": "basic_authentication_security",
    "apiKey": "api_key_security",
}


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    files = descriptor_pb2.FileDescriptorSet.FromString(
        Path(__file__).with_name("openapiv2.binpb").read_bytes()
    )
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return pool


def _snake(key: str) -> str:
    if key == "$ref":
        return "_ref"
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()


def _fill(msg: Message, value: Any) -> None:
    """Fill `msg` (an openapi.v2 message) from the JSON value of that OpenAPI node."""
    d: Descriptor = msg.DESCRIPTOR
    name = d.name
    if name == "Any":
        msg.yaml = _yaml(value)
        return
    if name in ("TypeItem", "StringArray"):
        msg.value.extend(value if isinstance(value, list) else [value])
        return
    if name == "ItemsItem":
        for item in value if isinstance(value, list) else [value]:
            _fill(msg.schema.add(), item)
        return
    if name == "AdditionalPropertiesItem":
        if isinstance(value, bool):
            msg.boolean = value
        else:
            _fill(msg.schema, value)
        return
    if name in ("ParametersItem", "ResponseValue"):
        if "$ref" in value:
            _fill(msg.json_reference, value)
        else:
            _fill(msg.parameter if name == "ParametersItem" else msg.response, value)
        return
    if name == "Parameter":
        if value.get("in") == "body":
            _fill(msg.body_parameter, value)
        else:
            _fill(msg.non_body_parameter, value)
        return
    if name == "NonBodyParameter":
        _fill(getattr(msg, _NON_BODY[value["in"]]), value)
        return
    if name == "SecurityDefinitionsItem":
        _fill(getattr(msg, _SECURITY[value["type"]]), value)
        return
    if name == "SchemaItem":
        _fill(msg.file_schema if value.get("type") == "file" else msg.schema, value)
        return
    if name in _MAPS:
        pairs = getattr(msg, _MAPS[name])
        for key, item in value.items():
            if key.startswith("x-") and "vendor_extension" in d.fields_by_name:
                _extension(msg, key, item)
                continue
            pair = pairs.add()
            pair.name = key
            _fill(pair.value, item)
        return
    for key, item in value.items():
        if key.startswith("x-"):
            if "vendor_extension" in d.fields_by_name:
                _extension(msg, key, item)
            continue
        field = d.fields_by_name.get(_snake(key))
        if field is None:
            raise ValueError(f"openapi.v2.{name} has no field for {key!r}")
        _set(msg, field, item)


def _extension(msg: Message, key: str, item: Any) -> None:
    pair = msg.vendor_extension.add()  # type: ignore[attr-defined]
    pair.name = key
    pair.value.yaml = _yaml(item)


def _set(msg: Message, field: FieldDescriptor, item: Any) -> None:
    repeated = field.is_repeated
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if repeated:
            for x in item:
                _fill(getattr(msg, field.name).add(), x)
        else:
            _fill(getattr(msg, field.name), item)
    elif repeated:
        getattr(msg, field.name).extend(item)
    else:
        setattr(msg, field.name, item)


def encode(document: dict[str, Any]) -> bytes:
    """The protobuf bytes of an OpenAPI v2 (swagger 2.0) JSON document."""
    cls = message_factory.GetMessageClass(_pool().FindMessageTypeByName(PACKAGE + "Document"))
    msg = cls()
    _fill(msg, document)
    return msg.SerializeToString()
