"""The real kubectl against skiff's workloads: create job/cronjob, create job --from,
wait --for=condition=complete, apply of DaemonSet and StatefulSet manifests, and
rollout status/history/undo for both. Hollow nodes: the test reports pod status."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.controllers.test_workloads import eventually, pods, set_phase

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector: {pool: POOL}
      containers:
      - name: agent
        image: busybox:1.36
        command: ["sleep", "3600"]
"""

STATEFULSET = """
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: ["ReadWriteOnce"]
      resources:
        requests:
          storage: 1Gi
"""


@pytest.fixture
def server(control_plane: tuple[Any, Any], kubectl_binary: str) -> Any:
    """The control plane's apiserver; each test runs with kubectl 1.32 and the current release."""
    return control_plane[0]


@pytest.fixture
def cp(server: Any) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def ns(cp: httpx.Client) -> Iterator[str]:
    name = f"kc-{uuid.uuid4().hex[:8]}"
    assert cp.post("/api/v1/namespaces", json={"metadata": {"name": name}}).status_code == 201
    yield name
    cp.delete(f"/api/v1/namespaces/{name}")


class HollowKubelet:
    """Marks every pending pod matching a selector Running and Ready, in a thread,
    as a node agent would, until stopped."""

    def __init__(self, cp: httpx.Client, ns: str, selector: str) -> None:
        self.cp, self.ns, self.selector = cp, ns, selector
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for p in pods(self.cp, self.ns, self.selector):
                    if p["status"].get("phase") != "Running":
                        set_phase(self.cp, p, "Running")
            except (httpx.HTTPError, AssertionError):
                pass
            self._stop.wait(0.3)

    def __enter__(self) -> HollowKubelet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def nodes(cp: httpx.Client) -> Iterator[Callable[[str, int], list[str]]]:
    made: list[str] = []

    def make(pool: str, count: int) -> list[str]:
        names = []
        for _ in range(count):
            name = f"hollow-{uuid.uuid4().hex[:6]}"
            body = {"metadata": {"name": name, "labels": {"pool": pool}}}
            assert cp.post("/api/v1/nodes", json=body).status_code == 201
            made.append(name)
            names.append(name)
        return names

    yield make
    for name in made:
        cp.delete(f"/api/v1/nodes/{name}")


def test_create_job_and_wait_for_complete(server: Any, cp: httpx.Client, ns: str) -> None:
    out = server.kubectl(
        "create", "job", "hello", "-n", ns, "--image=busybox:1.36", "--", "echo", "hi"
    )
    assert out.strip() == "job.batch/hello created"
    waiter = subprocess.Popen(
        [server.kubectl_binary, "--kubeconfig", str(server.kubeconfig), "wait", "-n", ns,
         "--for=condition=complete", "job/hello", "--timeout=60s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        [pod] = eventually(lambda: pods(cp, ns, "job-name=hello"))
        assert pod["spec"]["containers"][0]["command"] == ["echo", "hi"]
        assert pod["spec"]["restartPolicy"] == "Never"
        set_phase(cp, pod, "Succeeded")
        out, err = waiter.communicate(timeout=70)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert out.strip() == "job.batch/hello condition met"
    table = server.kubectl("get", "jobs", "-n", ns)
    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row.split()[:3] == ["hello", "Complete", "1/1"]
    described = server.kubectl("describe", "job", "hello", "-n", ns)
    assert "job-controller" in described and "Completed" in described


def test_create_cronjob_and_a_job_from_it(server: Any, ns: str) -> None:
    out = server.kubectl(
        "create", "cronjob", "tick", "-n", ns, "--image=busybox:1.36", "--schedule=*/5 * * * *",
        "--", "date",
    )  # fmt: skip
    assert out.strip() == "cronjob.batch/tick created"
    header, row = server.kubectl("get", "cronjobs", "-n", ns).splitlines()[:2]
    assert header.split() == [
        "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE",
    ]  # fmt: skip
    assert row.split()[:7] == ["tick", "*/5", "*", "*", "*", "*", "<none>"]
    out = server.kubectl("create", "job", "now", "-n", ns, "--from=cronjob/tick")
    assert out.strip() == "job.batch/now created"
    job = yaml.safe_load(server.kubectl("get", "job", "now", "-n", ns, "-o", "yaml"))
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["date"]
    bad = server.kubectl(
        "create",
        "cronjob",
        "oops",
        "-n",
        ns,
        "--image=busybox",
        "--schedule=61 * * * *",
        check=False,
    )
    assert 'CronJob.batch "oops" is invalid: spec.schedule' in bad


def test_daemonset_apply_rollout_status_history_undo(
    server: Any, cp: httpx.Client, ns: str, nodes: Callable[[str, int], list[str]]
) -> None:
    pool = f"pool-{uuid.uuid4().hex[:6]}"  # a letter first: YAML reads "816171" as a number
    nodes(pool, 2)
    manifest = DAEMONSET.replace("POOL", pool)
    assert server.kubectl("apply", "-n", ns, "-f", "-", input=manifest).strip() == (
        "daemonset.apps/agent created"
    )
    with HollowKubelet(cp, ns, "app=agent"):
        out = server.kubectl("rollout", "status", "-n", ns, "ds/agent", "--timeout=60s")
        assert 'daemon set "agent" successfully rolled out' in out
        server.kubectl("set", "image", "-n", ns, "ds/agent", "agent=busybox:1.37")
        out = server.kubectl("rollout", "status", "-n", ns, "ds/agent", "--timeout=60s")
        assert 'daemon set "agent" successfully rolled out' in out
        history = server.kubectl("rollout", "history", "-n", ns, "ds/agent")
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
        assert server.kubectl("rollout", "undo", "-n", ns, "ds/agent").strip() == (
            "daemonset.apps/agent rolled back"
        )
        eventually(
            lambda: (
                {p["spec"]["containers"][0]["image"] for p in pods(cp, ns, "app=agent")}
                == {"busybox:1.36"}
            ),
            what="pods back on busybox:1.36",
        )
        history = server.kubectl("rollout", "history", "-n", ns, "ds/agent")
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]
    # The undo brought back what the manifest says: applying it again changes nothing.
    out = server.kubectl("apply", "-n", ns, "-f", "-", input=manifest)
    assert out.strip() == "daemonset.apps/agent unchanged"


def test_statefulset_apply_rollout_status_history_undo(
    server: Any, cp: httpx.Client, ns: str
) -> None:
    out = server.kubectl("apply", "-n", ns, "-f", "-", input=STATEFULSET)
    assert "statefulset.apps/web created" in out
    with HollowKubelet(cp, ns, "app=web"):
        # partition defaults to 0, so kubectl words it as a partitioned roll-out (as on Kubernetes).
        out = server.kubectl("rollout", "status", "-n", ns, "sts/web", "--timeout=60s")
        assert "partitioned roll out complete: 2 new pods have been updated..." in out
        server.kubectl("set", "image", "-n", ns, "sts/web", "nginx=nginx:1.27")
        out = server.kubectl("rollout", "status", "-n", ns, "sts/web", "--timeout=60s")
        assert "partitioned roll out complete: 2 new pods have been updated..." in out
        sts = yaml.safe_load(server.kubectl("get", "sts", "web", "-n", ns, "-o", "yaml"))
        assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]
        images = {p["spec"]["containers"][0]["image"] for p in pods(cp, ns, "app=web")}
        assert images == {"nginx:1.27"}
        history = server.kubectl("rollout", "history", "-n", ns, "sts/web")
        assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
        server.kubectl("rollout", "undo", "-n", ns, "sts/web")
        eventually(
            lambda: (
                {p["spec"]["containers"][0]["image"] for p in pods(cp, ns, "app=web")}
                == {"nginx:1.25"}
            ),
            what="pods back on nginx:1.25",
        )
        eventually(
            lambda: (
                server.kubectl("get", "sts", "-n", ns).splitlines()[1].split()[:2] == ["web", "2/2"]
            ),
            what="READY 2/2",
        )
    header = server.kubectl("get", "sts", "-n", ns).splitlines()[0]
    assert header.split() == ["NAME", "READY", "AGE"]
    claims = server.kubectl("get", "pvc", "-n", ns, "-o", "name").split()
    assert claims == ["persistentvolumeclaim/www-web-0", "persistentvolumeclaim/www-web-1"]
    revisions = server.kubectl("get", "controllerrevisions", "-n", ns)
    assert "statefulset.apps/web" in revisions


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        resources:
          requests: {cpu: 100m}
"""


def test_autoscale_makes_an_hpa_seen_in_both_versions(
    server: Any, cp: httpx.Client, ns: str
) -> None:
    server.kubectl("apply", "-n", ns, "-f", "-", input=DEPLOYMENT)
    out = server.kubectl("autoscale", "-n", ns, "deploy", "web", "--cpu-percent=50", "--max=5")
    assert out.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    v2 = cp.get(f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/web").json()
    assert v2["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50},
            },
        }
    ]
    v1 = cp.get(f"/apis/autoscaling/v1/namespaces/{ns}/horizontalpodautoscalers/web").json()
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    header, row = server.kubectl("get", "hpa", "-n", ns).splitlines()[:2]
    assert header.split() == [
        "NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE",
    ]  # fmt: skip
    # REPLICAS is 0 until the autoscaler's first sync, so only the rest is pinned.
    assert row.split()[:6] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "1", "5"]
    # This control plane has no metrics API: the autoscaler says so and changes nothing.
    hpa = eventually(
        lambda: (
            (
                h := cp.get(
                    f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/web"
                ).json()
            )
            and any(c["type"] == "ScalingActive" for c in h["status"].get("conditions") or [])
            and h
        )
    )
    active = next(c for c in hpa["status"]["conditions"] if c["type"] == "ScalingActive")
    assert active["status"] == "False" and active["reason"] == "FailedGetResourceMetric"
    assert hpa["status"]["currentReplicas"] == 2
    described = server.kubectl("describe", "hpa", "web", "-n", ns)
    assert "horizontal-pod-autoscaler" in described
