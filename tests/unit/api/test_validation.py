"""Validation messages, exactly as Kubernetes words them."""

from __future__ import annotations

import copy
from typing import Any

from api import defaults, validation
from api.resources import lookup

DEPLOYMENTS = lookup("apps", "v1", "deployments")
PODS = lookup("", "v1", "pods")
SERVICES = lookup("", "v1", "services")
NAMESPACES = lookup("", "v1", "namespaces")


def deployment(**spec: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
        },
    }
    d["spec"].update(spec)
    return d


def messages(info: Any, obj: dict[str, Any]) -> list[str]:
    defaults.apply_defaults(info, obj)
    return [str(e) for e in validation.validate_create(info, obj)]


def test_valid_deployment_has_no_errors() -> None:
    assert messages(DEPLOYMENTS, deployment()) == []


def test_negative_replicas() -> None:
    assert messages(DEPLOYMENTS, deployment(replicas=-1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    ]


def test_selector_must_match_template() -> None:
    d = deployment(selector={"matchLabels": {"app": "other"}})
    assert messages(DEPLOYMENTS, d) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"
    ]


def test_surge_and_unavailable_both_zero() -> None:
    d = deployment(
        strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
    )
    assert messages(DEPLOYMENTS, d) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: "
        "may not be 0 when `maxSurge` is 0"
    ]


def test_names() -> None:
    bad = deployment()
    bad["metadata"]["name"] = "Web"
    assert messages(DEPLOYMENTS, bad)[0].startswith(
        'metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain must consist of'
    )
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}
    assert messages(NAMESPACES, ns)[0].startswith(
        'metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label'
    )
    svc = {"metadata": {"name": "1abc"}, "spec": {"ports": [{"port": 80}]}}
    assert messages(SERVICES, svc)[0].startswith(
        'metadata.name: Invalid value: "1abc": a DNS-1035 label'
    )


def test_pod_rules() -> None:
    pod = {
        "metadata": {"name": "p", "labels": {"bad key!": "x"}},
        "spec": {
            "restartPolicy": "Sometimes",
            "containers": [
                {
                    "name": "a",
                    "image": "x",
                    "ports": [{"containerPort": 70000}],
                    "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
                },
                {"name": "a"},
            ],
        },
    }
    got = messages(PODS, pod)
    assert (
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
        '"Always", "OnFailure", "Never"' in got
    )
    assert (
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: "
        "must be between 1 and 65535, inclusive" in got
    )
    assert 'spec.containers[1].name: Duplicate value: "a"' in got
    assert "spec.containers[1].image: Required value" in got
    assert (
        'spec.containers[0].resources.requests: Invalid value: "2": '
        "must be less than or equal to cpu limit of 1" in got
    )
    assert any(m.startswith('metadata.labels: Invalid value: "bad key!"') for m in got)


def test_wrong_types_are_named() -> None:
    got = messages(DEPLOYMENTS, deployment(replicas="three"))
    assert got == ['spec.replicas: Invalid value: "three": must be of type integer']


def test_pod_spec_is_immutable_but_image_is_not() -> None:
    old = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x:1"}]}}
    defaults.apply_defaults(PODS, old)
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "x:2"
    assert validation.validate_update(PODS, new, old) == []
    new["spec"]["containers"][0]["command"] = ["sh"]
    errors = validation.validate_update(PODS, new, old)
    assert [e.field for e in errors] == ["spec"]
    assert errors[0].message().startswith("Forbidden: pod updates may not change fields")


def test_deployment_selector_is_immutable() -> None:
    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "web", "x": "y"}})
    new["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    errors = validation.validate_update(DEPLOYMENTS, new, old)
    assert [(e.field, e.detail) for e in errors] == [("spec.selector", "field is immutable")]


def test_unknown_fields_are_found_with_full_paths() -> None:
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    d["spec"]["colour"] = "blue"
    assert validation.unknown_fields(DEPLOYMENTS, d) == [
        "spec.template.spec.containers[0].imagee",
        "spec.colour",
    ]
    validation.drop_unknown_fields(DEPLOYMENTS, d)
    assert validation.unknown_fields(DEPLOYMENTS, d) == []


def test_defaults_match_kubernetes() -> None:
    d = deployment()
    defaults.apply_defaults(DEPLOYMENTS, d)
    spec = d["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["terminationGracePeriodSeconds"] == 30
    assert pod_spec["containers"][0]["imagePullPolicy"] == "Always"  # no tag means latest
    svc = {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}
    defaults.apply_defaults(SERVICES, svc)
    assert svc["spec"]["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    assert svc["spec"]["type"] == "ClusterIP"
