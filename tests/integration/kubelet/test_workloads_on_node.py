"""Workloads on a real node: a Job's pod really runs to completion (the kubelet runs it
through the runtime), and the Job controller sees it and completes the Job."""

from __future__ import annotations

import yaml

from .conftest import NODE, Node, wait_for

JOB = """
apiVersion: batch/v1
kind: Job
metadata:
  name: countdown
spec:
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "echo index=$JOB_COMPLETION_INDEX; sleep 1"]
  completionMode: Indexed
"""


def test_a_job_runs_to_completion_on_a_real_node(node: Node, ns: str) -> None:
    out = node.server.kubectl("apply", "-n", ns, "-f", "-", input=JOB)
    assert out.strip() == "job.batch/countdown created"
    out = node.kubectl(
        "wait", "-n", ns, "--for=condition=complete", "job/countdown", "--timeout=120s"
    )
    assert out.strip() == "job.batch/countdown condition met"
    job = yaml.safe_load(node.kubectl("get", "job", "countdown", "-n", ns, "-o", "yaml"))
    assert job["status"]["succeeded"] == 2 and job["status"]["completedIndexes"] == "0-1"
    pods = yaml.safe_load(
        node.kubectl("get", "pods", "-n", ns, "-l", "job-name=countdown", "-o", "yaml")
    )["items"]
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded", "Succeeded"]
    for p in pods:
        terminated = p["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 0 and terminated["reason"] == "Completed"
        assert "batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or [])
        index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        logs = wait_for(
            lambda name=p["metadata"]["name"]: node.kubectl("logs", "-n", ns, name, check=False),
            "the pod's log",
        )
        assert f"index={index}" in logs


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
      containers:
      - name: agent
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sleep", "3600"]
"""


def test_a_daemonset_pod_is_bound_to_the_node_and_runs(node: Node, ns: str) -> None:
    out = node.server.kubectl("apply", "-n", ns, "-f", "-", input=DAEMONSET)
    assert out.strip() == "daemonset.apps/agent created"
    out = node.kubectl("rollout", "status", "-n", ns, "ds/agent", "--timeout=120s")
    assert 'daemon set "agent" successfully rolled out' in out
    [pod] = yaml.safe_load(node.kubectl("get", "pods", "-n", ns, "-l", "app=agent", "-o", "yaml"))[
        "items"
    ]
    assert pod["spec"]["nodeName"] == NODE and pod["status"]["phase"] == "Running"
    described = node.kubectl("describe", "ds", "agent", "-n", ns)
    assert "daemonset-controller" in described and "SuccessfulCreate" in described


BUSY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: busy
spec:
  replicas: 1
  selector:
    matchLabels: {app: busy}
  template:
    metadata:
      labels: {app: busy}
    spec:
      containers:
      - name: busy
        image: busybox
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "while :; do :; done"]
        resources:
          requests: {cpu: 50m}
          limits: {cpu: 100m}
"""


def test_autoscaler_scales_on_real_cpu_usage(node: Node, ns: str) -> None:
    """A pod held at its 100m limit uses 200% of its 50m request; at a 50% target the
    autoscaler asks for more pods, up to maxReplicas."""
    node.server.kubectl("apply", "-n", ns, "-f", "-", input=BUSY)
    node.kubectl("autoscale", "-n", ns, "deploy", "busy", "--cpu-percent=50", "--max=3")
    wait_for(
        lambda: (
            "%/50%" in node.kubectl("get", "hpa", "busy", "-n", ns)
            and "<unknown>" not in node.kubectl("get", "hpa", "busy", "-n", ns)
        ),
        "a CPU measurement in the HPA",
        timeout=120,
    )
    deployment = wait_for(
        lambda: (
            (d := yaml.safe_load(node.kubectl("get", "deploy", "busy", "-n", ns, "-o", "yaml")))[
                "spec"
            ]["replicas"]
            == 3
            and d
        ),
        "the Deployment scaled to 3",
        timeout=120,
    )
    assert deployment["spec"]["replicas"] == 3
    described = node.kubectl("describe", "hpa", "busy", "-n", ns)
    assert "SuccessfulRescale" in described and "above target" in described
    # Stop burning CPU before the next test.
    node.kubectl("delete", "hpa", "busy", "-n", ns)
    node.kubectl("scale", "-n", ns, "deploy/busy", "--replicas=0")
