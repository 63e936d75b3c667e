"""CustomResourceDefinitions against a real apiserver and etcd, driven by the real kubectl."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ApiServerProcess
from tests.polling import eventually

DEADLINE = 30.0


def crd_manifest(group: str, *, scope: str = "Namespaced") -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "required": ["cronSpec"],
        "properties": {
            "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
            "image": {"type": "string", "description": "The image the job runs."},
            "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
            "size": {"type": "string", "enum": ["small", "large"]},
            "port": {"x-kubernetes-int-or-string": True},
            "note": {"type": "string", "nullable": True},
            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "selector": {"type": "string"},
        },
    }
    version = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "description": "A cron tab.",
                "properties": {
                    "spec": spec_schema,
                    "status": {
                        "type": "object",
                        "properties": {
                            "replicas": {"type": "integer"},
                            "selector": {"type": "string"},
                            "phase": {"type": "string"},
                        },
                    },
                },
            }
        },
        "subresources": {
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        "additionalPrinterColumns": [
            {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
    }
    beta = json.loads(json.dumps(version))
    beta.update(
        name="v1beta1", storage=False, deprecated=True, deprecationWarning="v1beta1 is going away"
    )
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"crontabs.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "plural": "crontabs",
                "singular": "crontab",
                "kind": "CronTab",
                "shortNames": ["ct"],
            },
            "versions": [version, beta],
        },
    }


@pytest.fixture
def group(apiserver: ApiServerProcess, api: httpx.Client) -> Iterator[str]:
    """A CRD of a group of its own, Established; deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:8]}.example.com"
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd_manifest(name)))
    apiserver.kubectl(
        "wait", "--for=condition=Established", f"crd/crontabs.{name}", "--timeout=30s"
    )
    yield name
    api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.{name}")


def cron_tab(group: str, name: str, **spec: Any) -> str:
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "CronTab",
        "metadata": {"name": name},
        "spec": {"cronSpec": "*/5 * * * *", "image": "busybox", **spec},
    }
    return yaml.safe_dump(body)


def test_crd_is_established_with_accepted_names(
    apiserver: ApiServerProcess, api: httpx.Client, group: str
) -> None:
    crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.{group}")
    status = crd.json()["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert status["acceptedNames"]["kind"] == "CronTab"
    assert status["storedVersions"] == ["v1"]
    assert "customresourcecleanup.apiextensions.k8s.io" in crd.json()["metadata"]["finalizers"]
    # Discovery: the group prefers v1 over v1beta1, and kubectl finds the kind.
    g = api.get(f"/apis/{group}").json()
    assert g["preferredVersion"]["version"] == "v1"
    out = apiserver.kubectl("api-resources", f"--api-group={group}")
    assert "crontabs" in out and "ct" in out and "CronTab" in out


def test_apply_get_with_printer_columns_and_defaults(
    apiserver: ApiServerProcess,
    group: str,
    namespace: str,
    kubectl_binary: str,
) -> None:
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=cron_tab(group, "nightly"))
    out = apiserver.kubectl("get", f"crontabs.{group}", "-n", namespace)
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert row.split()[:6] == ["nightly", "*/5", "*", "*", "*", "*"]
    assert row.split()[6] == "1"  # the schema's default
    obj = json.loads(
        apiserver.kubectl("get", f"ct.{group}", "nightly", "-n", namespace, "-o", "json")
    )
    assert obj["spec"]["replicas"] == 1
    assert obj["metadata"]["generation"] == 1
    # The same object, served in the other version.
    beta = json.loads(
        apiserver.kubectl(
            "get", f"crontabs.v1beta1.{group}", "nightly", "-n", namespace, "-o", "json"
        )
    )
    assert beta["apiVersion"] == f"{group}/v1beta1"
    # Every request to the deprecated version says so.
    with apiserver.client() as api:
        r = api.get(f"/apis/{group}/v1beta1/namespaces/{namespace}/crontabs/nightly")
        assert r.headers.get_list("warning") == ['299 - "v1beta1 is going away"']
        r = api.get(f"/apis/{group}/v1/namespaces/{namespace}/crontabs/nightly")
        assert "warning" not in r.headers


def test_invalid_object_is_refused_with_field_causes(
    apiserver: ApiServerProcess, api: httpx.Client, group: str, namespace: str
) -> None:
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "CronTab",
        "metadata": {"name": "bad"},
        "spec": {"cronSpec": "never", "replicas": 11, "size": "huge", "port": True},
    }
    r = api.post(f"/apis/{group}/v1/namespaces/{namespace}/crontabs", json=body)
    assert r.status_code == 422, r.text
    causes = {c["field"]: c["message"] for c in r.json()["details"]["causes"]}
    assert "should match" in causes["spec.cronSpec"]
    assert "less than or equal to 10" in causes["spec.replicas"]
    assert causes["spec.size"].startswith('Unsupported value: "huge"')
    assert "must be of type integer,string" in causes["spec.port"]
    del body["spec"]["cronSpec"]
    r = api.post(f"/apis/{group}/v1/namespaces/{namespace}/crontabs", json=body)
    assert {c["field"]: c["reason"] for c in r.json()["details"]["causes"]}["spec.cronSpec"] == (
        "FieldValueRequired"
    )
    # kubectl shows the same.
    bad = cron_tab(group, "bad", replicas=-1)
    out = apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=bad, check=False)
    assert "spec.replicas" in out and "greater than or equal to 0" in out


def test_unknown_fields_are_pruned_or_refused(
    apiserver: ApiServerProcess, api: httpx.Client, group: str, namespace: str
) -> None:
    body = {
        "apiVersion": f"{group}/v1",
        "kind": "CronTab",
        "metadata": {"name": "pruned"},
        "spec": {"cronSpec": "* * * * *", "bogus": 1, "extra": {"kept": {"deep": True}}},
        "topLevel": "x",
    }
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    r = api.post(url, json=body)
    assert r.status_code == 201, r.text
    stored = r.json()
    assert "bogus" not in stored["spec"] and "topLevel" not in stored
    assert stored["spec"]["extra"] == {"kept": {"deep": True}}  # preserve-unknown-fields
    assert any("spec.bogus" in w for w in r.headers.get_list("warning"))
    strict = api.post(url + "?fieldValidation=Strict", json={**body, "metadata": {"name": "s"}})
    assert strict.status_code == 400
    assert 'unknown field "spec.bogus"' in strict.json()["message"]
    out = apiserver.kubectl(
        "apply", "-n", namespace, "-f", "-", input=cron_tab(group, "k", bogus=1), check=False
    )
    assert 'unknown field "spec.bogus"' in out


def test_status_and_scale_subresources(
    apiserver: ApiServerProcess,
    api: httpx.Client,
    group: str,
    namespace: str,
    kubectl_binary: str,
) -> None:
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=cron_tab(group, "web"))
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs/web"
    # The main resource ignores status; /status writes only status.
    obj = api.get(url).json()
    obj["status"] = {"phase": "Running"}
    obj["spec"]["image"] = "nginx"
    updated = api.put(url, json=obj).json()
    assert "status" not in updated and updated["spec"]["image"] == "nginx"
    assert updated["metadata"]["generation"] == 2
    obj = {**updated, "status": {"phase": "Running", "replicas": 1, "selector": "app=web"}}
    obj["spec"] = {**obj["spec"], "image": "ignored"}
    after = api.put(url + "/status", json=obj).json()
    assert after["status"]["phase"] == "Running" and after["spec"]["image"] == "nginx"
    assert after["metadata"]["generation"] == 2
    # kubectl scale writes spec.replicas through /scale.
    apiserver.kubectl("scale", "-n", namespace, f"crontabs.{group}/web", "--replicas=3")
    assert api.get(url).json()["spec"]["replicas"] == 3
    scale = api.get(url + "/scale").json()
    assert scale["spec"]["replicas"] == 3 and scale["status"] == {
        "replicas": 1,
        "selector": "app=web",
    }
    r = api.patch(
        url + "/scale",
        json={"spec": {"replicas": 20}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 422  # the schema's maximum is 10


def test_explain_reads_the_schema(
    apiserver: ApiServerProcess, group: str, kubectl_binary: str
) -> None:
    out = apiserver.kubectl("explain", "crontabs.spec", f"--api-version={group}/v1")
    assert "cronSpec" in out and "replicas" in out and "<string> -required-" in out
    out = apiserver.kubectl("explain", "crontabs.spec.image", f"--api-version={group}/v1")
    assert "The image the job runs." in out
    out = apiserver.kubectl("explain", "crontabs", f"--api-version={group}/v1")
    assert "A cron tab." in out and "metadata" in out


def test_watch_sees_custom_objects(
    apiserver: ApiServerProcess, api: httpx.Client, group: str, namespace: str
) -> None:
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    rv = api.get(url).json()["metadata"]["resourceVersion"]
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=cron_tab(group, "watched"))
    with api.stream(
        "GET", url, params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "5"}
    ) as r:
        for line in r.iter_lines():
            event = json.loads(line)
            assert event["type"] == "ADDED"
            assert event["object"]["metadata"]["name"] == "watched"
            break


def test_cluster_scoped_crd(apiserver: ApiServerProcess, api: httpx.Client) -> None:
    group = f"c{uuid.uuid4().hex[:8]}.example.com"
    manifest = crd_manifest(group, scope="Cluster")
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest))
    try:
        apiserver.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}")
        apiserver.kubectl("apply", "-f", "-", input=cron_tab(group, "global"))
        obj = api.get(f"/apis/{group}/v1/crontabs/global").json()
        assert "namespace" not in obj["metadata"]
        assert "global" in apiserver.kubectl("get", f"crontabs.{group}")
    finally:
        api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.{group}")


def test_deleting_the_crd_removes_its_objects(
    apiserver: ApiServerProcess, api: httpx.Client, namespace: str
) -> None:
    group = f"d{uuid.uuid4().hex[:8]}.example.com"
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd_manifest(group)))
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}")
    for name in ("a", "b"):
        apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=cron_tab(group, name))
    apiserver.kubectl("delete", f"crd/crontabs.{group}", "--timeout=60s")
    crd_url = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.{group}"
    assert api.get(crd_url).status_code == 404
    assert api.get(f"/apis/{group}/v1/namespaces/{namespace}/crontabs").status_code == 404
    # Made again, the kind starts empty: its objects went with it.
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd_manifest(group)))
    try:
        apiserver.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}")
        items = api.get(f"/apis/{group}/v1/namespaces/{namespace}/crontabs").json()["items"]
        assert items == []
    finally:
        api.delete(crd_url)


def test_invalid_crd_is_refused(api: httpx.Client) -> None:
    manifest = crd_manifest("nodots")
    manifest["spec"]["versions"][1]["storage"] = True
    r = api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=manifest)
    assert r.status_code == 422, r.text
    fields = {c["field"] for c in r.json()["details"]["causes"]}
    assert {"spec.group", "spec.versions"} <= fields


def test_deleting_a_namespace_deletes_its_custom_objects(
    control_plane: tuple[ApiServerProcess, Any],
) -> None:
    server, _ = control_plane
    group = f"n{uuid.uuid4().hex[:8]}.example.com"
    ns = f"crd-ns-{uuid.uuid4().hex[:6]}"
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd_manifest(group)))
    with server.client() as api:
        try:
            server.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}")
            server.kubectl("create", "namespace", ns)
            server.kubectl("apply", "-n", ns, "-f", "-", input=cron_tab(group, "inside"))
            server.kubectl("delete", "namespace", ns, "--timeout=60s")
            assert api.get(f"/api/v1/namespaces/{ns}").status_code == 404
            items = api.get(f"/apis/{group}/v1/crontabs").json()["items"]
            assert [i["metadata"]["name"] for i in items] == []
        finally:
            api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.{group}")


def test_patches_and_server_side_apply(
    apiserver: ApiServerProcess, api: httpx.Client, group: str, namespace: str
) -> None:
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=cron_tab(group, "p"))
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs/p"
    r = api.patch(
        url,
        json={"spec": {"image": "x"}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert r.status_code == 415  # as Kubernetes: custom resources have no patch strategy
    apiserver.kubectl(
        "patch", "-n", namespace, f"crontabs.{group}/p", "--type=json",
        "-p", '[{"op": "replace", "path": "/spec/image", "value": "alpine"}]',
    )  # fmt: skip
    assert api.get(url).json()["spec"]["image"] == "alpine"
    apiserver.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-n",
        namespace,
        "-f",
        "-",
        input=cron_tab(group, "p", size="large"),
    )
    obj = api.get(url).json()
    assert obj["spec"]["size"] == "large"
    assert any(m["manager"] == "kubectl" for m in obj["metadata"]["managedFields"])


def test_custom_resources_survive_a_restart(start_apiserver: Any, tmp_path: Any) -> None:
    server = start_apiserver(state_dir=tmp_path / "state")
    group = f"r{uuid.uuid4().hex[:8]}.example.com"
    server.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd_manifest(group)))
    server.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}")
    server.kubectl("apply", "-n", "default", "-f", "-", input=cron_tab(group, "kept"))
    server.stop()
    server.start()
    out = server.kubectl("get", f"crontabs.{group}", "-n", "default")
    assert "kept" in out


def test_a_terminating_crd_waits_for_its_objects_finalizers(
    apiserver: ApiServerProcess, api: httpx.Client, namespace: str
) -> None:
    group = f"f{uuid.uuid4().hex[:8]}.example.com"
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd_manifest(group)))
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/crontabs.{group}")
    held = yaml.safe_load(cron_tab(group, "held"))
    held["metadata"]["finalizers"] = ["example.com/hold"]
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(held))
    crd_url = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/crontabs.{group}"
    url = f"/apis/{group}/v1/namespaces/{namespace}/crontabs"
    assert api.delete(crd_url).status_code == 200

    def terminating() -> bool:
        conditions = api.get(crd_url).json().get("status", {}).get("conditions") or []
        return any(c["type"] == "Terminating" for c in conditions)

    eventually(terminating, DEADLINE, "the Terminating condition", interval=0.1)
    eventually(
        lambda: api.get(f"{url}/held").json()["metadata"].get("deletionTimestamp"),
        DEADLINE,
        "the object to be deleted",
        interval=0.1,
    )
    r = api.post(url, json=yaml.safe_load(cron_tab(group, "new")))
    assert r.status_code == 405, r.text
    assert api.get(crd_url).status_code == 200  # held by the object's finalizer
    r = api.patch(
        f"{url}/held",
        json={"metadata": {"finalizers": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    eventually(lambda: api.get(crd_url).status_code == 404, DEADLINE, "the CRD to go", interval=0.1)
