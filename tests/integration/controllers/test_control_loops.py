"""Control loops against a real apiserver, with no kubelets: pods stay Pending
unless the test marks them Running/Ready through the status subresource, as a
hollow node would."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

MERGE = {"Content-Type": "application/merge-patch+json"}


def eventually(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll until `check()` is truthy (behaviour, not speed: the bound is generous)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or check}: last={last!r}")


@pytest.fixture
def cp(control_plane: tuple[Any, Any]) -> Iterator[httpx.Client]:
    server, _ = control_plane
    with server.client() as client:
        yield client


@pytest.fixture
def ns(cp: httpx.Client) -> str:
    name = f"ctl-{uuid.uuid4().hex[:8]}"
    assert cp.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    return name


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def pods_of(cp: httpx.Client, ns: str, app: str) -> list[dict[str, Any]]:
    items = cp.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": f"app={app}"})
    return [p for p in items.json()["items"] if not p["metadata"].get("deletionTimestamp")]


def scale(cp: httpx.Client, ns: str, name: str, replicas: int) -> None:
    r = cp.patch(
        f"/apis/apps/v1/namespaces/{ns}/replicasets/{name}/scale",
        json={"spec": {"replicas": replicas}},
        headers=MERGE,
    )
    assert r.status_code == 200, r.text


def test_replicaset_scales_0_10_3_0(cp: httpx.Client, ns: str) -> None:
    r = cp.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=replicaset("web", 0))
    assert r.status_code == 201
    for want in (10, 3, 0):
        scale(cp, ns, "web", want)
        eventually(lambda w=want: len(pods_of(cp, ns, "web")) == w, what=f"{want} pods")
        # ...and it stays there: no duplicate creates from a lagging cache.
        time.sleep(1.0)
        assert len(pods_of(cp, ns, "web")) == want
    rs = cp.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/web").json()
    eventually(
        lambda: (
            cp.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/web")
            .json()
            .get("status", {})
            .get("observedGeneration")
            == rs["metadata"]["generation"]
        ),
        what="observedGeneration",
    )
    events = cp.get(
        f"/api/v1/namespaces/{ns}/events", params={"fieldSelector": "involvedObject.name=web"}
    ).json()["items"]
    reasons = {e["reason"] for e in events}
    assert {"SuccessfulCreate", "SuccessfulDelete"} <= reasons


def test_pods_get_owner_and_status_counts_ready(cp: httpx.Client, ns: str) -> None:
    cp.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=replicaset("api", 2))
    pods = eventually(lambda: len(pods_of(cp, ns, "api")) == 2 and pods_of(cp, ns, "api"))
    rs = cp.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/api").json()
    for p in pods:
        ref = p["metadata"]["ownerReferences"][0]
        assert ref["uid"] == rs["metadata"]["uid"] and ref["controller"] is True
    # A hollow node marks one pod ready.
    p = pods[0]
    p["status"] = {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
    }
    assert (
        cp.put(f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}/status", json=p).status_code
        == 200
    )
    eventually(
        lambda: (
            cp.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/api")
            .json()
            .get("status", {})
            .get("readyReplicas")
            == 1
        ),
        what="readyReplicas=1",
    )


def test_orphan_is_adopted_and_relabelled_pod_released(cp: httpx.Client, ns: str) -> None:
    orphan = {
        "metadata": {"name": "stray", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    cp.post(f"/api/v1/namespaces/{ns}/pods", json=orphan)
    cp.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=replicaset("adopt", 1))
    owned = eventually(
        lambda: (
            cp.get(f"/api/v1/namespaces/{ns}/pods/stray").json()["metadata"].get("ownerReferences")
        ),
        what="adoption",
    )
    assert owned[0]["name"] == "adopt"
    time.sleep(1.0)
    assert len(pods_of(cp, ns, "adopt")) == 1  # the adopted pod counted: nothing created
    cp.patch(
        f"/api/v1/namespaces/{ns}/pods/stray",
        json={"metadata": {"labels": {"app": "elsewhere"}}},
        headers=MERGE,
    )
    eventually(
        lambda: (
            not cp.get(f"/api/v1/namespaces/{ns}/pods/stray")
            .json()["metadata"]
            .get("ownerReferences")
        ),
        what="release",
    )
    eventually(lambda: len(pods_of(cp, ns, "adopt")) == 1, what="replacement pod")


@pytest.mark.parametrize("policy", ["Background", "Foreground", "Orphan"])
def test_cascading_deletion(cp: httpx.Client, ns: str, policy: str) -> None:
    name = f"cascade-{policy.lower()}"
    cp.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=replicaset(name, 2))
    eventually(lambda: len(pods_of(cp, ns, name)) == 2)
    r = cp.request(
        "DELETE",
        f"/apis/apps/v1/namespaces/{ns}/replicasets/{name}",
        json={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": policy},
    )
    assert r.status_code == 200, r.text
    eventually(
        lambda: cp.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/{name}").status_code == 404,
        what="owner gone",
    )
    if policy == "Orphan":
        time.sleep(1.0)
        pods = pods_of(cp, ns, name)
        assert len(pods) == 2
        assert all(not p["metadata"].get("ownerReferences") for p in pods)
    else:
        eventually(lambda: pods_of(cp, ns, name) == [], what="dependents deleted")


def test_namespace_deletion_empties_and_removes_it(cp: httpx.Client, ns: str) -> None:
    cp.post(f"/api/v1/namespaces/{ns}/configmaps", json={"metadata": {"name": "cm"}})
    cp.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=replicaset("gone", 1))
    eventually(lambda: len(pods_of(cp, ns, "gone")) == 1)
    assert cp.delete(f"/api/v1/namespaces/{ns}").status_code == 200
    eventually(
        lambda: cp.get(f"/api/v1/namespaces/{ns}").status_code == 404,
        timeout=60,
        what="namespace removed",
    )
    assert cp.get(f"/api/v1/namespaces/{ns}/configmaps").json()["items"] == []


def test_every_namespace_gets_a_default_serviceaccount(cp: httpx.Client, ns: str) -> None:
    eventually(
        lambda: cp.get(f"/api/v1/namespaces/{ns}/serviceaccounts/default").status_code == 200,
        what="default serviceaccount",
    )


def test_two_managers_one_leads_and_the_other_takes_over(
    start_apiserver: Any, start_component: Any
) -> None:
    server = start_apiserver()
    fast = (
        "--leader-elect-lease-duration",
        "4",
        "--leader-elect-renew-deadline",
        "3",
        "--leader-elect-retry-period",
        "1",
    )
    first = start_component("controllers", server.kubeconfig, *fast)
    with server.client() as api:
        lease_url = (
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-controller-manager"
        )
        holder = eventually(
            lambda: (
                api.get(lease_url).status_code == 200
                and api.get(lease_url).json()["spec"].get("holderIdentity")
            ),
            what="first leader",
        )
        second = start_component("controllers", server.kubeconfig, *fast)
        api.post("/apis/apps/v1/namespaces/default/replicasets", json=replicaset("le", 3))
        eventually(lambda: len(pods_of(api, "default", "le")) == 3)
        time.sleep(2)
        assert api.get(lease_url).json()["spec"]["holderIdentity"] == holder  # still the first
        first.kill()  # a crash: no release of the lease
        new = eventually(
            lambda: (
                api.get(lease_url).json()["spec"].get("holderIdentity") not in ("", holder)
                and api.get(lease_url).json()["spec"]["holderIdentity"]
            ),
            timeout=30,
            what="takeover",
        )
        assert new != holder
        assert api.get(lease_url).json()["spec"]["leaseTransitions"] >= 1
        # The new leader acts, and nothing was duplicated across the handover.
        scale(api, "default", "le", 5)
        eventually(lambda: len(pods_of(api, "default", "le")) == 5, what="new leader scales")
        time.sleep(1.5)
        assert len(pods_of(api, "default", "le")) == 5
        assert second.proc is not None and second.proc.poll() is None
