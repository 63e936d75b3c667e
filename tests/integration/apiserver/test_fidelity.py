"""API details users and their tools notice, checked with the real kubectl (issue 15)."""

from __future__ import annotations

import json
from typing import Any

import httpx

CONFIGMAP = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: upgrade
data:
  a: "1"
  b: "2"
"""


def test_server_side_apply_takes_over_client_side_apply(
    apiserver: Any, namespace: str, kubectl_binary: str
) -> None:
    """The documented client-side -> server-side upgrade: no conflict, kubectl owns the fields."""
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=CONFIGMAP)
    changed = CONFIGMAP.replace('a: "1"', 'a: "10"')
    out = apiserver.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=changed)
    assert "configmap/upgrade serverside-applied" in out
    cm = json.loads(
        apiserver.kubectl(
            "get", "cm", "upgrade", "-n", namespace, "-o", "json", "--show-managed-fields"
        )
    )
    assert cm["data"] == {"a": "10", "b": "2"}
    owners = {e["manager"]: e for e in cm["metadata"]["managedFields"]}
    assert "f:a" in owners["kubectl"]["fieldsV1"]["f:data"]
    csa = owners.get("kubectl-client-side-apply", {}).get("fieldsV1", {}).get("f:data", {})
    assert "f:a" not in csa


def test_server_side_apply_by_another_manager_still_conflicts(
    apiserver: Any, namespace: str
) -> None:
    """Only kubectl's own manager upgrades; any other name is the opt-out and conflicts."""
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=CONFIGMAP)
    changed = CONFIGMAP.replace('a: "1"', 'a: "10"')
    out = apiserver.kubectl(
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "-n",
        namespace,
        "-f",
        "-",
        input=changed,
        check=False,
    )
    assert 'conflict with "kubectl-client-side-apply"' in out
    assert ".data.a" in out


def test_status_fields_in_kubernetes_order(api: httpx.Client, namespace: str) -> None:
    r = api.get(f"/api/v1/namespaces/{namespace}/configmaps/absent")
    assert r.status_code == 404
    assert list(r.json()) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "message",
        "reason",
        "details",
        "code",
    ]
    assert list(r.json()["details"]) == ["name", "kind"]
    r = api.post(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        json={
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "bad"},
            "spec": {},
        },
    )
    assert r.status_code == 422
    assert list(r.json())[-2:] == ["details", "code"]
    assert list(r.json()["details"]) == ["name", "group", "kind", "causes"]
    text = r.text
    assert text.index('"kind":"Status"') < text.index('"apiVersion"') < text.index('"code"')


def test_applying_a_kind_the_server_does_not_serve(apiserver: Any, kubectl_binary: str) -> None:
    doc = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"
    for verb in ("apply", "create"):
        out = apiserver.kubectl(verb, "-f", "-", input=doc, check=False)
        assert 'no matches for kind "Widget" in version "example.com/v1"' in out, out


def test_openapi_v2_protobuf_is_read_by_kubectl(
    apiserver: Any, namespace: str, kubectl_binary: str
) -> None:
    """kubectl validates a `List` and explains with v2 models from the protobuf document."""
    explained = apiserver.kubectl(
        "explain", "deployment.spec.replicas", "--output=plaintext-openapiv2"
    )
    assert "replicas" in explained and "<integer>" in explained
    items = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "in-list"},
                "data": {"a": "1"},
            },
        ],
    }
    out = apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(items))
    assert "configmap/in-list created" in out
    bad = json.loads(json.dumps(items))
    bad["items"][0]["dataa"] = {"a": "1"}
    out = apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False)
    assert "dataa" in out


def test_explain_shows_int_or_string_and_each_description_once(
    apiserver: Any, kubectl_binary: str
) -> None:
    out = apiserver.kubectl("explain", "deployment.spec.strategy.rollingUpdate")
    assert "maxSurge\t<IntOrString>" in out
    assert "maxUnavailable\t<IntOrString>" in out
    description = out.split("DESCRIPTION:")[1].split("FIELDS:")[0]
    lines = [line.strip() for line in description.splitlines() if line.strip()]
    assert lines and len(lines) == len(set(lines)), description


def test_apiservices_list_the_groups_served_here(apiserver: Any, kubectl_binary: str) -> None:
    out = apiserver.kubectl("get", "apiservices")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    rows = {line.split()[0]: line.split()[1:3] for line in lines[1:]}
    for name in ("v1.", "v1.apps", "v1.batch", "v2.autoscaling", "v1beta1.metrics.k8s.io"):
        assert rows.get(name) == ["Local", "True"], out
    svc = json.loads(apiserver.kubectl("get", "apiservice", "v1.apps", "-o", "json"))
    assert (svc["spec"]["group"], svc["spec"]["version"]) == ("apps", "v1")
    (cond,) = svc["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Available", "True", "Local")


def test_an_apiservice_is_named_after_its_version_and_group(api: httpx.Client) -> None:
    body = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1.wrong.example.com"},
        "spec": {
            "group": "example.com",
            "version": "v1",
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }
    r = api.post("/apis/apiregistration.k8s.io/v1/apiservices", json=body)
    assert r.status_code == 422, r.text
    assert 'must be `spec.version+"."+spec.group`: "v1.example.com"' in r.json()["message"]
    assert r.json()["details"]["causes"][0]["field"] == "metadata.name"
