"""Reading Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`).

kubectl's typed commands (`create deployment`, `create configmap`, `expose`,
...) send their bodies as protobuf, not JSON. A body is the magic `k8s\\0`
followed by a `runtime.Unknown` envelope naming apiVersion and kind, whose
`raw` bytes are the object's own message. The message schemas are
Kubernetes' own, read out of kubectl (`extract_descriptors.py`); this module
turns a message into the same JSON-shaped dict a JSON body would have given.
Responses stay JSON, which every client also accepts.
"""

from __future__ import annotations

import base64
import datetime
import json
from functools import cache
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_META = "k8s.io.apimachinery.pkg.apis.meta.v1."


class ProtobufError(ValueError):
    """The body is not a Kubernetes protobuf object we can read."""


@cache
def _pool() -> descriptor_pool.DescriptorPool:
    files = descriptor_pb2.FileDescriptorSet.FromString(
        Path(__file__).with_name("descriptors.binpb").read_bytes()
    )
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    return pool


def _message_class(full_name: str) -> type[Message]:
    try:
        descriptor = _pool().FindMessageTypeByName(full_name)
    except KeyError as e:
        raise ProtobufError(f"no protobuf schema for {full_name}") from e
    return message_factory.GetMessageClass(descriptor)


def _package(api_version: str) -> str:
    """`apps/v1` -> `k8s.io.api.apps.v1`; `v1` -> `k8s.io.api.core.v1`."""
    group, _, version = api_version.rpartition("/")
    group = group.split(".")[0] if group else "core"
    return f"k8s.io.api.{group}.{version}"


def decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf body does not start with the Kubernetes magic number")
    try:
        envelope = _message_class("k8s.io.apimachinery.pkg.runtime.Unknown").FromString(
            body[len(MAGIC) :]
        )
    except DecodeError as e:
        raise ProtobufError(f"malformed protobuf envelope: {e}") from e
    type_meta = envelope.typeMeta  # type: ignore[attr-defined]
    api_version, kind = type_meta.apiVersion, type_meta.kind
    name = (
        f"{_META}{kind}"
        if kind in ("DeleteOptions", "Status")
        else (f"{_package(api_version)}.{kind}")
    )
    try:
        message = _message_class(name).FromString(envelope.raw)  # type: ignore[attr-defined]
    except DecodeError as e:
        raise ProtobufError(f"malformed protobuf {kind}: {e}") from e
    obj = _to_dict(message)
    obj["apiVersion"], obj["kind"] = api_version, kind
    return obj


# Go structs embedded with an empty JSON name (`VolumeSource \`json:""\``): in protobuf
# a field of their own, in JSON their fields sit in the parent's object. Every
# such embedding among the stable types of k8s.io/api (core/v1, networking/v1,
# admissionregistration/v1); read as a field they became `volumeSource: {...}`,
# and the volume of a `kubectl debug --copy-to` pod or node lost its source.
_CORE = "k8s.io.api.core.v1."
INLINE = frozenset(
    {
        (f"{_CORE}Volume", "volumeSource"),
        (f"{_CORE}PersistentVolumeSpec", "persistentVolumeSource"),
        (f"{_CORE}Probe", "handler"),
        (f"{_CORE}EphemeralContainer", "ephemeralContainerCommon"),
        *(
            (f"{_CORE}{kind}", "localObjectReference")
            for kind in (
                "ConfigMapEnvSource",
                "ConfigMapKeySelector",
                "ConfigMapProjection",
                "ConfigMapVolumeSource",
                "SecretEnvSource",
                "SecretKeySelector",
                "SecretProjection",
            )
        ),
        ("k8s.io.api.networking.v1.IngressRule", "ingressRuleValue"),
        ("k8s.io.api.admissionregistration.v1.RuleWithOperations", "rule"),
        ("k8s.io.api.admissionregistration.v1.NamedRuleWithOperations", "ruleWithOperations"),
    }
)

GO_ZERO_TIME = -62135596800  # time.Time{} in Unix seconds: Go's "unset"


def _time(message: Message) -> str | None:
    seconds = getattr(message, "seconds", 0)
    nanos = getattr(message, "nanos", 0)
    if seconds <= GO_ZERO_TIME or (seconds == 0 and nanos == 0):
        return None  # Go's zero Time, however it was encoded: unset
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if message.DESCRIPTOR.name == "MicroTime":
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos // 1000:06d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _special(message: Message) -> tuple[bool, Any]:
    name = message.DESCRIPTOR.full_name
    if name in (f"{_META}Time", f"{_META}MicroTime"):
        return True, _time(message)
    if name == "k8s.io.apimachinery.pkg.util.intstr.IntOrString":
        return True, (message.strVal if message.type == 1 else message.intVal)  # type: ignore[attr-defined]
    if name == "k8s.io.apimachinery.pkg.api.resource.Quantity":
        return True, message.string  # type: ignore[attr-defined]
    if name == "k8s.io.apimachinery.pkg.runtime.RawExtension":
        raw = message.raw  # type: ignore[attr-defined]
        return True, json.loads(raw) if raw else None
    if name == f"{_META}FieldsV1":
        raw = message.Raw  # type: ignore[attr-defined]
        return True, json.loads(raw) if raw else {}
    return False, None


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        special, converted = _special(value)
        return converted if special else _to_dict(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def _to_dict(message: Message) -> dict[str, Any]:
    descriptor: Descriptor = message.DESCRIPTOR
    special, converted = _special(message)
    if special:
        return converted
    out: dict[str, Any] = {}
    for field in descriptor.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if value:
                value_field = field.message_type.fields_by_name["value"]
                out[field.json_name] = {k: _value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            if value:
                out[field.json_name] = [_value(field, v) for v in value]
        elif message.HasField(field.name):
            if value == "" and field.type == FieldDescriptor.TYPE_STRING:
                continue  # Go writes every string field; "" means unset, as in JSON
            if (descriptor.full_name, field.name) in INLINE:
                out.update(_to_dict(value))
            else:
                out[field.json_name] = _value(field, value)
    return out
