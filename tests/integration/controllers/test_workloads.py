"""Jobs, CronJobs, DaemonSets and StatefulSets against a real apiserver (real etcd)
and the real controller-manager. No kubelets: the test is the hollow node, marking
pods Running, Ready, Succeeded or Failed through pods/status as kwok would."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from client.trace import merge
from tests.polling import eventually

MERGE = {"Content-Type": "application/merge-patch+json"}


def stamp(seconds_ago: float = 0) -> str:
    t = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=seconds_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def cp(control_plane: tuple[Any, Any]) -> Iterator[httpx.Client]:
    server, _ = control_plane
    with server.client() as client:
        yield client


@pytest.fixture
def ns(cp: httpx.Client) -> Iterator[str]:
    name = f"wl-{uuid.uuid4().hex[:8]}"
    assert cp.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    yield name
    cp.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def hollow_nodes(cp: httpx.Client) -> Iterator[Callable[..., str]]:
    """Node objects with no kubelet behind them (removed afterwards)."""
    made: list[str] = []

    def make(labels: dict[str, str] | None = None, taints: list[dict] | None = None) -> str:
        name = f"hollow-{uuid.uuid4().hex[:6]}"
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"taints": taints or []},
        }
        assert cp.post("/api/v1/nodes", json=body).status_code == 201
        made.append(name)
        return name

    yield make
    for name in made:
        cp.delete(f"/api/v1/nodes/{name}")


def pods(cp: httpx.Client, ns: str, selector: str) -> list[dict[str, Any]]:
    items = cp.get(f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": selector}).json()
    return [p for p in items["items"] if not p["metadata"].get("deletionTimestamp")]


def set_phase(cp: httpx.Client, pod: dict[str, Any], phase: str, exit_code: int = 0) -> None:
    """What a kubelet would report: Running+Ready, or a terminated container."""
    now = stamp()
    status: dict[str, Any] = {"phase": phase}
    name = pod["spec"]["containers"][0]["name"]
    if phase == "Running":
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": now}]
        status["containerStatuses"] = [
            {"name": name, "ready": True, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"running": {"startedAt": now}}}
        ]  # fmt: skip
    else:
        status["containerStatuses"] = [
            {"name": name, "ready": False, "restartCount": 0, "image": "x", "imageID": "",
             "state": {"terminated": {"exitCode": exit_code, "finishedAt": now,
                                      "reason": "Completed" if exit_code == 0 else "Error"}}}
        ]  # fmt: skip
    meta = pod["metadata"]
    r = cp.patch(
        f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
        json={"status": status},
        headers=MERGE,
    )
    assert r.status_code == 200, r.text


def trace_records(cp: httpx.Client) -> list[dict[str, Any]]:
    """The controller-manager's reconcile trace, as `skiff trace` reads it: the head
    and its sealed shards (client/trace.py), merged."""
    params = {"labelSelector": "skiff.io/trace=true"}
    r = cp.get("/api/v1/namespaces/kube-system/configmaps", params=params)
    if not r.is_success:
        return []
    items = r.json().get("items") or []
    mine = [cm for cm in items if (cm.get("data") or {}).get("component") == "controller-manager"]
    return merge(mine)


def events(cp: httpx.Client, ns: str, name: str) -> list[dict[str, Any]]:
    params = {"fieldSelector": f"involvedObject.name={name}"}
    return cp.get(f"/api/v1/namespaces/{ns}/events", params=params).json()["items"]


def job_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                }
            },
            **spec,
        },
    }


def get(cp: httpx.Client, path: str) -> dict[str, Any]:
    r = cp.get(path)
    assert r.status_code == 200, r.text
    return r.json()


# -- Job ----------------------------------------------------------------------------


def test_job_runs_its_completions_one_at_a_time_then_is_complete(cp: httpx.Client, ns: str) -> None:
    r = cp.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=job_body("pi", completions=2))
    assert r.status_code == 201, r.text
    job = r.json()
    selector = job["spec"]["selector"]["matchLabels"]
    assert selector == {"batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}
    for done in range(2):
        first = eventually(
            lambda d=done: len(pods(cp, ns, "job-name=pi")) == d + 1 and pods(cp, ns, "job-name=pi")
        )
        running = [p for p in first if p["status"].get("phase") != "Succeeded"]
        assert len(running) == 1  # parallelism 1
        assert "batch.kubernetes.io/job-tracking" in running[0]["metadata"]["finalizers"]
        set_phase(cp, running[0], "Succeeded")
    job = eventually(
        lambda: (
            (j := get(cp, f"/apis/batch/v1/namespaces/{ns}/jobs/pi"))
            and any(c["type"] == "Complete" for c in j["status"].get("conditions") or [])
            and j
        ),
        what="Complete",
    )
    assert job["status"]["succeeded"] == 2 and job["status"].get("completionTime")
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    # Every pod was counted and let go.
    for p in pods(cp, ns, "job-name=pi"):
        assert "batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or [])
    evs = eventually(
        lambda: (e := events(cp, ns, "pi")) and any(x["reason"] == "Completed" for x in e) and e
    )
    assert {e["source"]["component"] for e in evs} == {"job-controller"}
    assert {e["reason"] for e in evs} >= {"SuccessfulCreate", "Completed"}
    # The one shell traced it: which reconciles acted, what they did, which code decided.
    traced = eventually(
        lambda: [
            r
            for r in trace_records(cp)
            if r["controller"] == "job" and r["namespace"] == ns and r["name"] == "pi"
        ],
        what="the Job's trace records",
    )
    assert {r["decide"] for r in traced} == {"controllers.job:decide"}
    assert any(a["action"].startswith("CreatePod") for r in traced for a in r["actions"])
    table = cp.get(
        f"/apis/batch/v1/namespaces/{ns}/jobs",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    ).json()
    assert [c["name"] for c in table["columnDefinitions"]][:4] == [
        "Name",
        "Status",
        "Completions",
        "Duration",
    ]
    assert table["rows"][0]["cells"][1:3] == ["Complete", "2/2"]


def test_job_fails_after_backoff_limit(cp: httpx.Client, ns: str) -> None:
    cp.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=job_body("bad", backoffLimit=0))
    [pod] = eventually(lambda: pods(cp, ns, "job-name=bad"))
    set_phase(cp, pod, "Failed", exit_code=3)
    job = eventually(
        lambda: (
            (j := get(cp, f"/apis/batch/v1/namespaces/{ns}/jobs/bad"))
            and any(c["type"] == "Failed" for c in j["status"].get("conditions") or [])
            and j
        ),
        what="Failed",
    )
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 1
    assert len(pods(cp, ns, "job-name=bad")) == 1  # no retry past the limit


def test_indexed_job_pods_know_their_index(cp: httpx.Client, ns: str) -> None:
    body = job_body("idx", completions=3, parallelism=3, completionMode="Indexed")
    assert cp.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body).status_code == 201
    found = eventually(
        lambda: len(pods(cp, ns, "job-name=idx")) == 3 and pods(cp, ns, "job-name=idx")
    )
    indexes = sorted(
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in found
    )
    assert indexes == ["0", "1", "2"]
    for p in found:
        env = {e["name"]: e for e in p["spec"]["containers"][0]["env"]}
        assert "JOB_COMPLETION_INDEX" in env
        set_phase(cp, p, "Succeeded")
    job = eventually(
        lambda: (
            (j := get(cp, f"/apis/batch/v1/namespaces/{ns}/jobs/idx"))
            and j["status"].get("succeeded") == 3
            and j
        )
    )
    assert job["status"]["completedIndexes"] == "0-2"


def test_job_validation_speaks_kubernetes(cp: httpx.Client, ns: str) -> None:
    body = job_body("always")
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    r = cp.post(f"/apis/batch/v1/namespaces/{ns}/jobs", json=body)
    assert r.status_code == 422
    causes = r.json()["details"]["causes"]
    assert any(c["field"] == "spec.template.spec.restartPolicy" for c in causes)


# -- CronJob ----------------------------------------------------------------------------


def scheduled_minute(job: dict[str, Any]) -> int:
    """The minute a CronJob's Job was scheduled for: its name is `<cronjob>-<minute>`."""
    return int(job["metadata"]["name"].rsplit("-", 1)[1])


def test_cronjob_fires_and_keeps_history(cp: httpx.Client, ns: str) -> None:
    body = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick"},
        "spec": {
            "schedule": "*/1 * * * *",
            "jobTemplate": job_body("x")["spec"] and {"spec": job_body("x")["spec"]},
        },
    }
    r = cp.post(f"/apis/batch/v1/namespaces/{ns}/cronjobs", json=body)
    assert r.status_code == 201, r.text
    cj = r.json()
    assert (
        cj["spec"]["concurrencyPolicy"] == "Allow" and cj["spec"]["successfulJobsHistoryLimit"] == 3
    )
    # The controller was "down" for five minutes: it starts one Job, the most recent.
    r = cp.patch(
        f"/apis/batch/v1/namespaces/{ns}/cronjobs/tick/status",
        json={"status": {"lastScheduleTime": stamp(300)}},
        headers=MERGE,
    )
    assert r.status_code == 200, r.text

    def owned_jobs() -> list[dict[str, Any]]:
        items = cp.get(f"/apis/batch/v1/namespaces/{ns}/jobs").json()["items"]
        return [
            j
            for j in items
            if (j["metadata"].get("ownerReferences") or [{}])[0].get("uid") == cj["metadata"]["uid"]
        ]

    # The earliest (a minute may turn meanwhile and rightly start the next one).
    job = min(eventually(owned_jobs, what="a Job from the CronJob"), key=scheduled_minute)
    minute = int(datetime.datetime.now(datetime.UTC).timestamp()) // 60
    assert job["metadata"]["name"] in (f"tick-{minute}", f"tick-{minute - 1}")
    assert "batch.kubernetes.io/cronjob-scheduled-timestamp" in job["metadata"]["annotations"]
    cj = eventually(
        lambda: (
            (c := get(cp, f"/apis/batch/v1/namespaces/{ns}/cronjobs/tick"))
            and c["status"].get("active")
            and c
        )
    )
    assert cj["status"]["active"][0]["name"] == job["metadata"]["name"]
    time.sleep(1.0)
    # Not one per missed minute: nothing scheduled before the most recent missed one.
    assert [j for j in owned_jobs() if scheduled_minute(j) < scheduled_minute(job)] == []
    evs = events(cp, ns, "tick")
    assert any(
        e["reason"] == "SuccessfulCreate" and e["source"]["component"] == "cronjob-controller"
        for e in evs
    )


# -- DaemonSet ----------------------------------------------------------------------------


def daemonset(name: str, image: str = "agent:1", **template_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "agent", "image": image}], **template_spec},
            },
        },
    }


def test_daemonset_covers_every_eligible_node_and_new_ones(
    cp: httpx.Client, ns: str, hollow_nodes: Callable[..., str]
) -> None:
    group = uuid.uuid4().hex[:6]
    nodes = [hollow_nodes({"pool": group}) for _ in range(3)]
    hollow_nodes({"pool": group}, [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    body = daemonset("agent", nodeSelector={"pool": group})
    assert cp.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", json=body).status_code == 201

    def node_names() -> list[str]:
        found = pods(cp, ns, "app=agent")
        return sorted(
            p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
                "nodeSelectorTerms"
            ][0]["matchFields"][0]["values"][0]
            for p in found
        )

    assert eventually(lambda: node_names() == sorted(nodes) and node_names()) == sorted(nodes)
    later = hollow_nodes({"pool": group})
    eventually(lambda: later in node_names(), what="the new node's pod")
    for p in pods(cp, ns, "app=agent"):
        assert {
            "key": "node.kubernetes.io/unschedulable",
            "operator": "Exists",
            "effect": "NoSchedule",
        } in p["spec"]["tolerations"]
        set_phase(cp, p, "Running")
    ds = eventually(
        lambda: (
            (d := get(cp, f"/apis/apps/v1/namespaces/{ns}/daemonsets/agent"))
            and d["status"].get("numberReady") == 4
            and d
        )
    )
    assert ds["status"]["desiredNumberScheduled"] == 4
    revisions = cp.get(f"/apis/apps/v1/namespaces/{ns}/controllerrevisions").json()["items"]
    assert [r["revision"] for r in revisions] == [1]


def test_daemonset_rolling_update_one_node_at_a_time(
    cp: httpx.Client, ns: str, hollow_nodes: Callable[..., str]
) -> None:
    group = uuid.uuid4().hex[:6]
    for _ in range(3):
        hollow_nodes({"pool": group})
    body = daemonset("roll", nodeSelector={"pool": group})
    cp.post(f"/apis/apps/v1/namespaces/{ns}/daemonsets", json=body)
    for p in eventually(lambda: len(pods(cp, ns, "app=roll")) == 3 and pods(cp, ns, "app=roll")):
        set_phase(cp, p, "Running")
    eventually(
        lambda: (
            get(cp, f"/apis/apps/v1/namespaces/{ns}/daemonsets/roll")["status"].get(
                "numberAvailable"
            )
            == 3
        )
    )
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}
    }
    r = cp.patch(
        f"/apis/apps/v1/namespaces/{ns}/daemonsets/roll",
        json=patch,
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    assert r.status_code == 200, r.text
    seen_max_unavailable = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = pods(cp, ns, "app=roll")
        images = [p["spec"]["containers"][0]["image"] for p in current]
        ready = [p for p in current if p["status"].get("phase") == "Running"]
        seen_max_unavailable = max(seen_max_unavailable, 3 - len(ready))
        if images.count("agent:2") == 3 and len(ready) == 3:
            break
        for p in current:
            if p["status"].get("phase") != "Running":
                set_phase(cp, p, "Running")
        time.sleep(0.3)
    else:
        raise AssertionError(f"rollout did not finish: {images}")
    assert seen_max_unavailable <= 1  # maxUnavailable 1
    revisions = cp.get(f"/apis/apps/v1/namespaces/{ns}/controllerrevisions").json()["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]


# -- StatefulSet ----------------------------------------------------------------------------


def statefulset(name: str, replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "volumeMounts": [{"name": "www", "mountPath": "/data"}],
                        }
                    ]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "www"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def test_statefulset_pods_come_up_in_order_with_their_claims(cp: httpx.Client, ns: str) -> None:
    r = cp.post(f"/apis/apps/v1/namespaces/{ns}/statefulsets", json=statefulset("web"))
    assert r.status_code == 201, r.text
    for ordinal in range(3):
        names = eventually(
            lambda o=ordinal: (
                (n := sorted(p["metadata"]["name"] for p in pods(cp, ns, "app=web")))
                and len(n) == o + 1
                and n
            )
        )
        assert names == [f"web-{i}" for i in range(ordinal + 1)]  # never ahead of the last Ready
        time.sleep(0.5)
        assert len(pods(cp, ns, "app=web")) == ordinal + 1
        pod = get(cp, f"/api/v1/namespaces/{ns}/pods/web-{ordinal}")
        assert pod["spec"]["hostname"] == f"web-{ordinal}" and pod["spec"]["subdomain"] == "web"
        assert {"name": "www", "persistentVolumeClaim": {"claimName": f"www-web-{ordinal}"}} in pod[
            "spec"
        ]["volumes"]
        set_phase(cp, pod, "Running")
    claims = cp.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims").json()["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["www-web-0", "www-web-1", "www-web-2"]
    sts = eventually(
        lambda: (
            (s := get(cp, f"/apis/apps/v1/namespaces/{ns}/statefulsets/web"))
            and s["status"].get("readyReplicas") == 3
            and s
        )
    )
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
    # A deleted pod comes back with the same name and the same claim.
    old_uid = get(cp, f"/api/v1/namespaces/{ns}/pods/web-1")["metadata"]["uid"]
    assert cp.delete(f"/api/v1/namespaces/{ns}/pods/web-1").status_code == 200
    back = eventually(
        lambda: (
            (p := cp.get(f"/api/v1/namespaces/{ns}/pods/web-1")).status_code == 200
            and p.json()["metadata"]["uid"] != old_uid
            and p.json()
        )
    )
    assert {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-1"}} in back["spec"][
        "volumes"
    ]
    claims = cp.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims").json()["items"]
    assert len(claims) == 3
    # Scale to 1 through the scale subresource: web-2 goes first.
    r = cp.patch(
        f"/apis/apps/v1/namespaces/{ns}/statefulsets/web/scale",
        json={"spec": {"replicas": 1}},
        headers=MERGE,
    )
    assert r.status_code == 200, r.text
    set_phase(cp, back, "Running")
    eventually(
        lambda: [p["metadata"]["name"] for p in pods(cp, ns, "app=web")] == ["web-0"],
        what="scale down",
    )


def test_replication_controller_keeps_replicas(cp: httpx.Client, ns: str) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "old"},
        "spec": {
            "replicas": 2,
            "template": {
                "metadata": {"labels": {"app": "old"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    r = cp.post(f"/api/v1/namespaces/{ns}/replicationcontrollers", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["selector"] == {"app": "old"}  # defaulted from the template
    found = eventually(lambda: len(pods(cp, ns, "app=old")) == 2 and pods(cp, ns, "app=old"))
    assert found[0]["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
    evs = eventually(lambda: events(cp, ns, "old"))
    assert {e["source"]["component"] for e in evs} == {"replication-controller"}
    scale = get(cp, f"/api/v1/namespaces/{ns}/replicationcontrollers/old/scale")
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=old"


def test_deleting_a_job_lets_its_running_pods_go(cp: httpx.Client, ns: str) -> None:
    """The tracking finalizer never keeps a pod once its Job is gone."""
    cp.post(
        f"/apis/batch/v1/namespaces/{ns}/jobs", json=job_body("gone", parallelism=2, completions=4)
    )
    eventually(lambda: len(pods(cp, ns, "job-name=gone")) == 2, what="2 pods")
    r = cp.delete(
        f"/apis/batch/v1/namespaces/{ns}/jobs/gone", params={"propagationPolicy": "Background"}
    )
    assert r.status_code == 200, r.text
    eventually(
        lambda: (
            not cp.get(
                f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": "job-name=gone"}
            ).json()["items"]
        ),
        what="the pods to be gone",
    )


def test_finished_job_is_deleted_after_its_ttl(cp: httpx.Client, ns: str) -> None:
    cp.post(
        f"/apis/batch/v1/namespaces/{ns}/jobs", json=job_body("brief", ttlSecondsAfterFinished=1)
    )
    [pod] = eventually(lambda: pods(cp, ns, "job-name=brief"))
    set_phase(cp, pod, "Succeeded")
    eventually(
        lambda: cp.get(f"/apis/batch/v1/namespaces/{ns}/jobs/brief").status_code == 404,
        what="the Job to be deleted",
    )
    eventually(
        lambda: (
            not cp.get(
                f"/api/v1/namespaces/{ns}/pods", params={"labelSelector": "job-name=brief"}
            ).json()["items"]
        ),
        what="its pod to follow",
    )


def test_deleting_a_daemonset_takes_its_pods_and_history(
    cp: httpx.Client, ns: str, hollow_nodes: Callable[..., str]
) -> None:
    group = uuid.uuid4().hex[:6]
    hollow_nodes({"pool": group})
    cp.post(
        f"/apis/apps/v1/namespaces/{ns}/daemonsets",
        json=daemonset("gc", nodeSelector={"pool": group}),
    )
    eventually(lambda: pods(cp, ns, "app=gc"), what="the daemon pod")
    revisions = f"/apis/apps/v1/namespaces/{ns}/controllerrevisions"
    eventually(lambda: cp.get(revisions).json()["items"], what="a revision")
    assert cp.delete(f"/apis/apps/v1/namespaces/{ns}/daemonsets/gc").status_code == 200
    eventually(lambda: not pods(cp, ns, "app=gc"), what="the pods to go")
    eventually(lambda: not cp.get(revisions).json()["items"], what="the revisions to go")
