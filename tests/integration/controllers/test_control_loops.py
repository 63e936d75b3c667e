"""Control loops against a real apiserver, with no kubelets: pods stay Pending
unless the test marks them Running/Ready through the status subresource, as a
hollow node would."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.polling import eventually

MERGE = {"Content-Type": "application/merge-patch+json"}


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


def settled(cp: httpx.Client, ns: str, name: str, want: int) -> bool:
    """The ReplicaSet controller has acted on the current spec and counted `want` pods in
    its cache: from then on, a lagging cache can no longer make it create extra pods."""
    rs = cp.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/{name}").json()
    status = rs.get("status", {})
    return bool(
        status.get("observedGeneration") == rs["metadata"]["generation"]
        and status.get("replicas", 0) == want
    )


def test_replicaset_scales_0_10_3_0(cp: httpx.Client, ns: str) -> None:
    r = cp.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=replicaset("web", 0))
    assert r.status_code == 201
    for want in (10, 3, 0):
        scale(cp, ns, "web", want)
        eventually(lambda w=want: len(pods_of(cp, ns, "web")) == w, what=f"{want} pods")
        # ...and it stays there: no duplicate creates from a lagging cache.
        eventually(lambda w=want: settled(cp, ns, "web", w), what=f"status.replicas={want}")
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

    def reasons() -> set[str]:  # events are recorded beside the writes, not before them
        events = cp.get(
            f"/api/v1/namespaces/{ns}/events", params={"fieldSelector": "involvedObject.name=web"}
        ).json()["items"]
        return {e["reason"] for e in events}

    eventually(lambda: {"SuccessfulCreate", "SuccessfulDelete"} <= reasons(), what="events")


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


def rs_status(cp: httpx.Client, ns: str, name: str) -> dict[str, Any]:
    return cp.get(f"/apis/apps/v1/namespaces/{ns}/replicasets/{name}").json().get("status", {})


def test_pods_become_available_after_min_ready_seconds_with_no_other_event(
    cp: httpx.Client, ns: str
) -> None:
    """Nothing announces the moment a Ready pod has been Ready for minReadySeconds:
    the controller must come back by itself, or availableReplicas stays behind."""
    body = replicaset("slow", 2)
    body["spec"]["minReadySeconds"] = 3
    cp.post(f"/apis/apps/v1/namespaces/{ns}/replicasets", json=body)
    pods = eventually(lambda: len(pods_of(cp, ns, "slow")) == 2 and pods_of(cp, ns, "slow"))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for p in pods:  # a hollow node marks both pods Ready, now
        p["status"] = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
        }
        r = cp.put(f"/api/v1/namespaces/{ns}/pods/{p['metadata']['name']}/status", json=p)
        assert r.status_code == 200, r.text
    eventually(lambda: rs_status(cp, ns, "slow").get("readyReplicas") == 2, what="readyReplicas=2")
    # No further write by the test: only the controller's own requeue can get here.
    eventually(
        lambda: rs_status(cp, ns, "slow").get("availableReplicas") == 2,
        what="availableReplicas=2",
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
    eventually(lambda: settled(cp, ns, "adopt", 1), what="status.replicas=1")
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
        # The owner is gone only after the garbage collector orphaned its dependents.
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
        # The first keeps the lease while the second tries: renewed twice more, same holder.
        renewals: set[str] = set()

        def renewed_by_first() -> bool:
            spec = api.get(lease_url).json()["spec"]
            assert spec["holderIdentity"] == holder  # still the first
            renewals.add(spec["renewTime"])
            return len(renewals) >= 3

        eventually(renewed_by_first, what="renewals by the first leader")
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
        eventually(lambda: settled(api, "default", "le", 5), what="status.replicas=5")
        assert len(pods_of(api, "default", "le")) == 5
        assert second.proc is not None and second.proc.poll() is None


class HollowNode:
    """Marks every pod of a namespace Running and Ready, as a kubelet would, in a thread."""

    def __init__(self, server: Any, ns: str) -> None:
        import threading

        self.server, self.ns = server, ns
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> HollowNode:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        with self.server.client() as api:
            while not self.stopped.is_set():
                pods = api.get(f"/api/v1/namespaces/{self.ns}/pods").json()["items"]
                for p in pods:
                    if p.get("status", {}).get("phase") == "Running" or p["metadata"].get(
                        "deletionTimestamp"
                    ):
                        continue
                    p["status"] = {
                        "phase": "Running",
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "True",
                                "lastTransitionTime": "2026-01-01T00:00:00Z",
                            }
                        ],
                    }
                    api.put(
                        f"/api/v1/namespaces/{self.ns}/pods/{p['metadata']['name']}/status", json=p
                    )
                self.stopped.wait(0.2)


def deployment_body(name: str, replicas: int, image: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def test_rolling_update_respects_surge_and_unavailability(
    control_plane: Any, cp: httpx.Client, ns: str
) -> None:
    server, _ = control_plane
    url = f"/apis/apps/v1/namespaces/{ns}/deployments"
    with HollowNode(server, ns):
        assert cp.post(url, json=deployment_body("roll", 4, "nginx:1")).status_code == 201
        eventually(
            lambda: cp.get(f"{url}/roll").json().get("status", {}).get("availableReplicas") == 4,
            what="4 available",
        )
        rv = cp.get(f"/api/v1/namespaces/{ns}/pods").json()["metadata"]["resourceVersion"]
        cp.patch(
            f"{url}/roll",
            headers=MERGE,
            json={
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}
            },
        )
        # Watch every pod change during the rollout and check the bounds at each step.
        alive: dict[str, dict[str, Any]] = {}
        for p in cp.get(f"/api/v1/namespaces/{ns}/pods").json()["items"]:
            alive[p["metadata"]["name"]] = p
        # maxSurge=1, maxUnavailable=1 on 4 replicas: never more than 5 pods, never fewer
        # than 3 Ready ones, at every step of the rollout, from its first event to its last.
        worst_total, worst_available = 0, 99
        deadline = time.monotonic() + 60
        done = False
        params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": 60}
        with cp.stream("GET", f"/api/v1/namespaces/{ns}/pods", params=params) as r:
            for line in r.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                p = event["object"]
                name = p["metadata"]["name"]
                if event["type"] == "DELETED" or p["metadata"].get("deletionTimestamp"):
                    alive.pop(name, None)
                else:
                    alive[name] = p
                ready = [
                    q
                    for q in alive.values()
                    if any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in q.get("status", {}).get("conditions") or []
                    )
                ]
                worst_total = max(worst_total, len(alive))
                worst_available = min(worst_available, len(ready))
                images = {q["spec"]["containers"][0]["image"] for q in alive.values()}
                if len(alive) == 4 and images == {"nginx:2"} and len(ready) == 4:
                    done = True
                    break
                if time.monotonic() > deadline:
                    break
        assert done, f"rollout did not finish: {alive.keys()}"
        assert worst_total <= 4 + 1  # replicas + maxSurge
        assert worst_available >= 4 - 1  # replicas - maxUnavailable
        d = eventually(
            lambda: (lambda d: d.get("status", {}).get("updatedReplicas") == 4 and d)(
                cp.get(f"{url}/roll").json()
            ),
            what="status",
        )
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        out = server.kubectl("rollout", "status", "deployment/roll", "-n", ns, "--timeout=30s")
        assert 'deployment "roll" successfully rolled out' in out
        server.kubectl("rollout", "undo", "deployment/roll", "-n", ns)
        eventually(
            lambda: (
                cp.get(f"{url}/roll").json()["spec"]["template"]["spec"]["containers"][0]["image"]
                == "nginx:1"
            ),
            what="undo",
        )
        eventually(
            lambda: (
                {p["spec"]["containers"][0]["image"] for p in pods_of(cp, ns, "roll")}
                == {"nginx:1"}
                and len(pods_of(cp, ns, "roll")) == 4
            ),
            timeout=60,
            what="undo rolled out",
        )
        rsets = cp.get(f"/apis/apps/v1/namespaces/{ns}/replicasets").json()["items"]
        assert len(rsets) == 2  # the template went back to the old ReplicaSet


def test_deployment_scaling(cp: httpx.Client, ns: str) -> None:
    url = f"/apis/apps/v1/namespaces/{ns}/deployments"
    cp.post(url, json=deployment_body("sc", 0, "nginx:1"))
    for want in (10, 3, 0):
        r = cp.patch(f"{url}/sc/scale", json={"spec": {"replicas": want}}, headers=MERGE)
        assert r.status_code == 200
        eventually(lambda w=want: len(pods_of(cp, ns, "sc")) == w, what=f"{want} pods")


def test_service_endpoints_follow_ready_pods(cp: httpx.Client, ns: str) -> None:
    svc = {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "ep"},
            "ports": [{"name": "http", "port": 80, "targetPort": "web"}],
        },
    }
    assert cp.post(f"/api/v1/namespaces/{ns}/services", json=svc).status_code == 201
    # A Node that exists: pods bound to a missing one are orphans, which the pod
    # garbage collector may delete at any moment of the test.
    node = f"ep-{ns}"
    assert cp.post("/api/v1/nodes", json={"metadata": {"name": node}}).status_code == 201

    def pod(name: str, ip: str, port: int, ready: bool) -> None:
        body = {
            "metadata": {"name": name, "labels": {"app": "ep"}},
            "spec": {
                "nodeName": node,
                "containers": [
                    {
                        "name": "c",
                        "image": "nginx",
                        "ports": [{"name": "web", "containerPort": port}],
                    }
                ],
            },
        }
        made = cp.post(f"/api/v1/namespaces/{ns}/pods", json=body).json()
        made["status"] = {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
        put = cp.put(f"/api/v1/namespaces/{ns}/pods/{name}/status", json=made)
        assert put.status_code == 200, put.text

    pod("a", "10.244.0.10", 8080, True)
    pod("b", "10.244.0.11", 9090, False)

    def subsets() -> list[dict[str, Any]]:
        r = cp.get(f"/api/v1/namespaces/{ns}/endpoints/web")
        return r.json().get("subsets", []) if r.status_code == 200 else []

    got = eventually(lambda: len(subsets()) == 2 and subsets(), what="two port groups")
    ready = {a["ip"]: s["ports"][0]["port"] for s in got for a in s.get("addresses", [])}
    not_ready = {a["ip"] for s in got for a in s.get("notReadyAddresses", [])}
    assert ready == {"10.244.0.10": 8080}  # the named port resolved per pod
    assert not_ready == {"10.244.0.11"}

    def slices_of_web() -> list[dict[str, Any]]:
        return cp.get(
            f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
            params={"labelSelector": "kubernetes.io/service-name=web"},
        ).json()["items"]

    slices = eventually(
        lambda: (s := slices_of_web()) and len(s[0].get("endpoints") or []) == 2 and s,
        what="an endpointslice with both pods",
    )
    by_ip = {e["addresses"][0]: e["conditions"] for e in slices[0]["endpoints"]}
    assert by_ip["10.244.0.10"]["ready"] is True and by_ip["10.244.0.11"]["ready"] is False

    # A pod being deleted leaves the Endpoints, and is marked terminating in the slice.
    cp.delete(f"/api/v1/namespaces/{ns}/pods/a", params={"gracePeriodSeconds": 30})
    eventually(
        lambda: (
            not any(a["ip"] == "10.244.0.10" for s in subsets() for a in s.get("addresses", []))
        ),
        what="deleted pod removed",
    )
    eventually(
        lambda: any(e["conditions"].get("terminating") for e in slices_of_web()[0]["endpoints"]),
        what="terminating in slice",
    )
    cp.delete(f"/api/v1/nodes/{node}")


def test_silent_node_goes_not_ready_is_tainted_and_its_pods_evicted(
    cp: httpx.Client, ns: str
) -> None:
    """The controller-manager here runs with --node-monitor-grace-period=3."""
    node_name = f"node-{ns}"
    made = cp.post("/api/v1/nodes", json={"metadata": {"name": node_name}})
    assert made.status_code == 201
    node = eventually(
        lambda: cp.get(f"/api/v1/nodes/{node_name}").json()["spec"].get("podCIDR"), what="pod CIDR"
    )
    assert node.startswith("10.244.") and node.endswith("/24")
    # The kubelet reports Ready and renews its lease once, then falls silent.
    lease = {
        "metadata": {"name": node_name},
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": 40,
            "renewTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        },
    }
    cp.post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", json=lease)
    tolerant = {
        "metadata": {"name": "patient"},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "image": "busybox"}],
            "tolerations": [
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 3600,
                }
            ],
        },
    }
    plain = {
        "metadata": {"name": "plain"},
        "spec": {
            "nodeName": node_name,
            "containers": [{"name": "c", "image": "busybox"}],
            "tolerations": [
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 2,
                }
            ],
        },
    }
    for body in (tolerant, plain):
        assert cp.post(f"/api/v1/namespaces/{ns}/pods", json=body).status_code == 201

    def ready_status() -> str:
        conds = (
            cp.get(f"/api/v1/nodes/{node_name}").json().get("status", {}).get("conditions") or []
        )
        return next((c["status"] for c in conds if c["type"] == "Ready"), "")

    eventually(lambda: ready_status() == "Unknown", what="Ready=Unknown")
    taints = eventually(
        lambda: cp.get(f"/api/v1/nodes/{node_name}").json()["spec"].get("taints"), what="taint"
    )
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("node.kubernetes.io/unreachable", "NoExecute")
    }
    # The pod tolerating 2 s is evicted (marked for graceful deletion); the other stays.
    eventually(
        lambda: (
            cp.get(f"/api/v1/namespaces/{ns}/pods/plain")
            .json()["metadata"]
            .get("deletionTimestamp")
        ),
        what="eviction",
    )
    assert (
        not cp.get(f"/api/v1/namespaces/{ns}/pods/patient")
        .json()["metadata"]
        .get("deletionTimestamp")
    )
    cp.delete(f"/api/v1/nodes/{node_name}")


def test_controller_manager_killed_mid_rollout_finishes_after_restart(
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
    manager = start_component("controllers", server.kubeconfig, *fast)
    url = "/apis/apps/v1/namespaces/default/deployments"
    with server.client() as api, HollowNode(server, "default"):
        body = deployment_body("crash", 6, "nginx:1")
        body["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 1, "maxUnavailable": 0}
        api.post(url, json=body)
        eventually(
            lambda: api.get(f"{url}/crash").json().get("status", {}).get("availableReplicas") == 6,
            what="6 available",
        )
        api.patch(
            f"{url}/crash",
            headers=MERGE,
            json={
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}
            },
        )
        eventually(
            lambda: any(
                p["spec"]["containers"][0]["image"] == "nginx:2"
                for p in pods_of(api, "default", "crash")
            ),
            what="rollout began",
        )
        manager.kill()
        images = [p["spec"]["containers"][0]["image"] for p in pods_of(api, "default", "crash")]
        assert "nginx:1" in images  # it really was mid-rollout
        start_component("controllers", server.kubeconfig, *fast)
        eventually(
            lambda: (
                sorted(
                    p["spec"]["containers"][0]["image"] for p in pods_of(api, "default", "crash")
                )
                == ["nginx:2"] * 6
            ),
            timeout=60,
            what="rollout finished",
        )
        rsets = api.get("/apis/apps/v1/namespaces/default/replicasets").json()["items"]
        assert sorted(r["spec"]["replicas"] for r in rsets) == [0, 6]
