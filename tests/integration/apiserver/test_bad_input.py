"""Bad input: a Kubernetes Status with the right code and causes, and nothing stored."""

from __future__ import annotations

from typing import Any

import httpx

YAML = {"Content-Type": "application/yaml"}


def assert_status(r: httpx.Response, code: int, reason: str) -> dict[str, Any]:
    assert r.status_code == code, r.text
    body = r.json()
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    assert "Traceback" not in r.text
    return body


def test_invalid_object_names_every_bad_field(api: httpx.Client, namespace: str) -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "replicas": -1,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "b"}},
                "spec": {"containers": [{"name": "c"}]},
            },
        },
    }
    r = api.post(f"/apis/apps/v1/namespaces/{namespace}/deployments", json=bad)
    body = assert_status(r, 422, "Invalid")
    fields = {c["field"] for c in body["details"]["causes"]}
    assert {
        "metadata.name",
        "spec.replicas",
        "spec.template.metadata.labels",
        "spec.template.spec.containers[0].image",
    } <= fields
    assert body["details"]["name"] == "Bad_Name"
    assert body["details"]["kind"] == "Deployment"
    assert body["message"].startswith('Deployment.apps "Bad_Name" is invalid: ')
    listed = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").json()
    assert listed["items"] == []


def test_malformed_json_and_yaml_are_400(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    assert_status(
        api.post(
            url, content=b'{"metadata": {"name": "x"', headers={"Content-Type": "application/json"}
        ),
        400,
        "BadRequest",
    )
    assert_status(api.post(url, content=b"metadata: [unclosed", headers=YAML), 400, "BadRequest")
    assert_status(
        api.post(url, content=b"[1, 2]", headers={"Content-Type": "application/json"}),
        400,
        "BadRequest",
    )
    ok = api.post(url, content=b"metadata:\n  name: from-yaml\ndata:\n  a: b\n", headers=YAML)
    assert ok.status_code == 201, ok.text
    names = [i["metadata"]["name"] for i in api.get(url).json()["items"]]
    assert names == ["from-yaml"]


def test_body_over_3mib_is_413(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    huge = {"metadata": {"name": "huge"}, "data": {"blob": "x" * (3 * 1024 * 1024 + 10)}}
    assert_status(api.post(url, json=huge), 413, "RequestEntityTooLarge")
    assert api.get(f"{url}/huge").status_code == 404


def test_unknown_paths_and_kinds_are_404(api: httpx.Client, namespace: str) -> None:
    assert_status(api.get("/api/v1/namespaces/default/widgets"), 404, "NotFound")
    assert_status(api.get("/apis/nope.example.com/v1/things"), 404, "NotFound")
    assert_status(api.get("/no/such/path"), 404, "NotFound")
    assert_status(api.get("/api/v1/nodes/a/b/c/d"), 404, "NotFound")
    missing = assert_status(api.get(f"/api/v1/namespaces/{namespace}/pods/ghost"), 404, "NotFound")
    assert missing["message"] == 'pods "ghost" not found'
    assert missing["details"] == {"name": "ghost", "kind": "pods"}


def test_wrong_kind_in_body_is_400(api: httpx.Client, namespace: str) -> None:
    r = api.post(
        f"/api/v1/namespaces/{namespace}/configmaps",
        json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}},
    )
    assert_status(r, 400, "BadRequest")


def test_unknown_fields_strict_is_400_warn_drops(api: httpx.Client, namespace: str) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"metadata": {"name": "u"}, "data": {}, "colour": "blue"}
    strict = api.post(url, params={"fieldValidation": "Strict"}, json=body)
    assert_status(strict, 400, "BadRequest")
    assert 'unknown field "colour"' in strict.json()["message"]
    assert api.get(f"{url}/u").status_code == 404
    warned = api.post(url, params={"fieldValidation": "Warn"}, json=body)
    assert warned.status_code == 201
    assert 'unknown field \\"colour\\"' in warned.headers["Warning"]
    assert "colour" not in warned.json()


def test_invalid_update_changes_nothing(api: httpx.Client, namespace: str, build: Any) -> None:
    url = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    created = api.post(url, json=build.deployment("keep")).json()
    changed = dict(created)
    changed["spec"] = {**created["spec"], "selector": {"matchLabels": {"app": "other"}}}
    r = api.put(f"{url}/keep", json=changed)
    body = assert_status(r, 422, "Invalid")
    assert "spec.selector" in {c["field"] for c in body["details"]["causes"]}
    after = api.get(f"{url}/keep").json()
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_method_not_allowed(api: httpx.Client) -> None:
    assert_status(api.put("/api/v1/namespaces/default/pods", json={}), 405, "MethodNotAllowed")


def test_duplicate_fields_refused_when_strict_warned_otherwise(
    api: httpx.Client, namespace: str
) -> None:
    url = f"/api/v1/namespaces/{namespace}/configmaps"
    body = b'{"metadata": {"name": "dup", "name": "dup2"}, "data": {}}'
    json_type = {"Content-Type": "application/json"}
    strict = api.post(url, params={"fieldValidation": "Strict"}, content=body, headers=json_type)
    assert_status(strict, 400, "BadRequest")
    assert 'duplicate field "name"' in strict.json()["message"]
    assert api.get(f"{url}/dup2").status_code == 404
    warned = api.post(url, params={"fieldValidation": "Warn"}, content=body, headers=json_type)
    assert warned.status_code == 201
    assert "duplicate field" in warned.headers["Warning"]
