"""The rules of custom resources, table-tested: a definition's validity, and a custom
object's pruning, defaulting and validation against its structural schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from api import crd, resources
from apiserver.crd.controller import decide, served

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {}}},
                },
                "nested": {
                    "type": "object",
                    "default": {},
                    "properties": {"level": {"type": "string", "default": "info"}},
                },
            },
        }
    },
}


def definition(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": SCHEMA},
                }
            ],
            **spec,
        },
    }


def causes(errors: list[Any]) -> dict[str, str]:
    return {e.field: e.message() for e in errors}


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"replicas": 9}, "spec.replicas", "should be less than or equal to 5"),
        ({"replicas": 0}, "spec.replicas", "should be greater than or equal to 1"),
        ({"replicas": "2"}, "spec.replicas", 'must be of type integer: "string"'),
        (
            {"mode": "odd"},
            "spec.mode",
            'Unsupported value: "odd": supported values: "fast", "slow"',
        ),
        ({"name": "UP"}, "spec.name", "should match '^[a-z]+$'"),
        ({"name": "abcdefghij"}, "spec.name", "Too long: may not be more than 8 bytes"),
        ({"port": 1.5}, "spec.port", "must be of type integer,string"),
        ({"tags": ["a", "b", "c"]}, "spec.tags", "Too many: 3: must have at most 2 items"),
        ({"labels": {"a": 1}}, "spec.labels.a", 'must be of type string: "integer"'),
        ({"template": {"spec": {}}}, "spec.template.apiVersion", "Required value"),
        (
            {"ports": [{"name": "a"}, {"name": "a"}]},
            "spec.ports[1]",
            'Duplicate value: map[string]interface {}{"name":"a"}',
        ),
    ],
)
def test_invalid_values(spec: dict[str, Any], field: str, message: str) -> None:
    obj = {"spec": {"name": "ok", **spec}}
    found = causes(crd.validate(SCHEMA, obj))
    assert field in found, found
    assert message in found[field]


def test_valid_object_and_required() -> None:
    good = {"spec": {"name": "ok", "port": "http", "note": None, "free": {"x": [1]}}}
    assert crd.validate(SCHEMA, good) == []
    assert causes(crd.validate(SCHEMA, {"spec": {}})) == {"spec.name": "Required value"}
    assert "spec.port" not in causes(crd.validate(SCHEMA, {"spec": {"name": "a", "port": 80}}))


def test_prune_keeps_what_the_schema_describes() -> None:
    obj = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {
            "name": "a",
            "bogus": 1,
            "free": {"anything": {"goes": True}},
            "labels": {"x": "y"},
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p", "uid": "dropped"},
                "spec": {"unknown": 1},
                "other": 2,
            },
        },
        "top": 1,
    }
    dropped = crd.prune(SCHEMA, obj)
    assert sorted(dropped) == sorted(
        [
            "spec.bogus",
            "spec.template.metadata.uid",
            "spec.template.spec.unknown",
            "spec.template.other",
            "top",
        ]
    )
    assert obj["spec"]["free"] == {"anything": {"goes": True}}
    assert obj["metadata"] == {"name": "w", "labels": {"a": "b"}}
    assert obj["spec"]["template"]["kind"] == "Pod"


def test_defaults_fill_absent_and_null_fields() -> None:
    obj: dict[str, Any] = {"spec": {"name": "a", "replicas": None, "note": None}}
    crd.apply_defaults(SCHEMA, obj)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["note"] is None  # nullable: kept
    assert obj["spec"]["nested"] == {"level": "info"}  # a default object, defaulted inside


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["spec"].update(group="nodots"), "spec.group"),
        (lambda d: d["metadata"].update(name="other.example.com"), "metadata.name"),
        (lambda d: d["spec"].update(scope="Global"), "spec.scope"),
        (lambda d: d["spec"]["versions"][0].update(storage=False), "spec.versions"),
        (
            lambda d: d["spec"]["versions"][0].pop("schema"),
            "spec.versions[0].schema.openAPIV3Schema",
        ),
        (
            lambda d: d["spec"]["versions"][0]["schema"]["openAPIV3Schema"].update(type="string"),
            "spec.versions[0].schema.openAPIV3Schema.type",
        ),
        (lambda d: d["spec"]["names"].update(kind=""), "spec.names.kind"),
        (
            lambda d: d["spec"].update(conversion={"strategy": "Webhook"}),
            "spec.conversion.strategy",
        ),
    ],
)
def test_invalid_definitions(change: Any, field: str) -> None:
    d = copy.deepcopy(definition())
    assert crd.validate_crd(d) == []
    change(d)
    assert field in causes(crd.validate_crd(d))


def test_defaulted_definition_and_its_resource_table_entries() -> None:
    d = definition()
    crd.default_crd(d)
    assert d["spec"]["names"]["singular"] == "widget"
    assert d["spec"]["names"]["listKind"] == "WidgetList"
    assert d["spec"]["conversion"] == {"strategy": "None"}
    assert served({"w": d}) == []  # not Established yet
    d["status"] = decide(d, [], "2026-01-01T00:00:00Z")
    conditions = {c["type"]: c["status"] for c in d["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert d["status"]["storedVersions"] == ["v1"]
    (info,) = served({"w": d})
    assert (info.group, info.version, info.plural, info.namespaced) == (
        "example.com", "v1", "widgets", True,
    )  # fmt: skip
    assert info.storage == "example.com/widgets"
    resources.set_custom([info])
    try:
        assert resources.lookup("example.com", "v1", "widgets") is info
        assert resources.by_kind("example.com/v1", "Widget") is info
        assert resources.lookup("", "v1", "pods") is not None
    finally:
        resources.set_custom([])
    assert resources.lookup("example.com", "v1", "widgets") is None


def test_names_taken_by_another_definition_are_not_accepted() -> None:
    first = definition()
    first["status"] = decide(first, [], "t")
    second = definition()
    second["metadata"]["name"] = "gadgets.example.com"
    second["spec"]["names"] = {"plural": "gadgets", "kind": "Widget"}
    status = decide(second, [first], "t")
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"NamesAccepted": "False", "Established": "False"}


def test_version_priority_orders_like_kubernetes() -> None:
    versions = ["v1alpha1", "v1beta1", "v2", "foo", "v1", "v1beta2"]
    assert sorted(versions, key=resources.version_priority) == [
        "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.replicas", 3),
        ("{.status.conditions[0].type}", "Ready"),
        (".status.conditions[1].type", None),
        (".metadata.labels['app']", "web"),
        (".spec.missing", None),
    ],
)
def test_json_path(path: str, expected: Any) -> None:
    obj = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"replicas": 3},
        "status": {"conditions": [{"type": "Ready"}]},
    }
    assert crd.json_path(obj, path) == expected
