"""Defaulting and validation of the workload kinds, as Kubernetes words them."""

from __future__ import annotations

from typing import Any

import pytest

from api import defaults, resources, validation


def info(group: str, version: str, plural: str) -> resources.ResourceInfo:
    found = resources.lookup(group, version, plural)
    assert found is not None
    return found


def template(restart: str = "Never") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "busybox"}]},
    }


def problems(group: str, plural: str, obj: dict[str, Any], version: str = "v1") -> dict[str, str]:
    i = info(group, version, plural)
    defaults.apply_defaults(i, obj)
    return {e.field: e.detail for e in validation.validate_create(i, obj)}


def test_job_defaults() -> None:
    job = {"metadata": {"name": "j"}, "spec": {"template": template()}}
    defaults.apply_defaults(info("batch", "v1", "jobs"), job)
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"


@pytest.mark.parametrize(
    ("spec", "field", "detail"),
    [
        (
            {"template": template("Always")},
            "spec.template.spec.restartPolicy",
            'supported values: "OnFailure", "Never"',
        ),
        (
            {"template": template(), "completionMode": "Indexed"},
            "spec.completions",
            "when completion mode is Indexed",
        ),
        (
            {"template": template(), "parallelism": -1},
            "spec.parallelism",
            "must be greater than or equal to 0",
        ),
        (
            {
                "template": template("OnFailure"),
                "podFailurePolicy": {
                    "rules": [
                        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}
                    ]
                },
            },
            "spec.template.spec.restartPolicy",
            'only "Never" is supported when podFailurePolicy is specified',
        ),
    ],
)
def test_job_validation(spec: dict[str, Any], field: str, detail: str) -> None:
    if spec.get("completionMode") == "Indexed":
        spec["parallelism"] = 2  # so that completions is not defaulted
    assert problems("batch", "jobs", {"metadata": {"name": "j"}, "spec": spec})[field] == detail


@pytest.mark.parametrize(
    ("schedule", "zone", "field"),
    [("61 * * * *", None, "spec.schedule"), ("@hourly", "Mars/Olympus", "spec.timeZone")],
)
def test_cronjob_validation(schedule: str, zone: str | None, field: str) -> None:
    spec: dict[str, Any] = {"schedule": schedule, "jobTemplate": {"spec": {"template": template()}}}
    if zone:
        spec["timeZone"] = zone
    assert field in problems("batch", "cronjobs", {"metadata": {"name": "c"}, "spec": spec})


def test_daemonset_and_statefulset_defaults() -> None:
    ds = {
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template("Always")},
    }
    assert problems("apps", "daemonsets", ds) == {}
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    sts = {
        "metadata": {"name": "s"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": template("Always"),
            "volumeClaimTemplates": [
                {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
            ],
        },
    }
    assert problems("apps", "statefulsets", sts) == {}
    spec = sts["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady" and spec["replicas"] == 1
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }


def test_statefulset_spec_is_mostly_immutable() -> None:
    i = info("apps", "v1", "statefulsets")
    old = {
        "metadata": {"name": "s"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": template("Always"),
            "serviceName": "a",
        },
    }
    new = {**old, "spec": {**old["spec"], "serviceName": "b"}}
    errs = validation.validate_update(i, new, old)
    assert any(
        e.field == "spec" and "updates to statefulset spec for fields other than" in e.detail
        for e in errs
    )


def test_replication_controller_selector_from_template() -> None:
    rc = {"metadata": {"name": "r"}, "spec": {"template": template("Always")}}
    assert problems("", "replicationcontrollers", rc) == {}
    assert rc["spec"]["selector"] == {"app": "x"} and rc["metadata"]["labels"] == {"app": "x"}


def test_hpa_limits() -> None:
    hpa = {
        "metadata": {"name": "h"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "w"},
            "minReplicas": 3,
            "maxReplicas": 2,
        },
    }
    assert problems("autoscaling", "horizontalpodautoscalers", hpa, "v2") == {
        "spec.maxReplicas": "must be greater than or equal to `minReplicas`"
    }
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
