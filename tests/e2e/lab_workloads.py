"""Jobs, CronJobs, DaemonSets and StatefulSets on a real three-node lab, driven by kubectl.

Run by tests/e2e/test_lab.py on that module's lab (no lab of its own: a second
three-node lab cost the suite a lab up and down), in a namespace of their own
(`wl`), before that module stops a node or joins more. Everything through the
real kubectl as a lab user types it: a Job runs to completion (`kubectl wait
--for=condition=complete`); a CronJob's Job is made by hand (`kubectl create
job --from=cronjob/x`) and the CronJob controller makes one of its own at
the next minute; a DaemonSet puts one pod on each node; a StatefulSet with a
headless Service and volumeClaimTemplates comes up in order, its pods find
each other by `web-0.web.<ns>.svc.cluster.local`, and a deleted pod comes
back with the data on its claim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NS = "wl"

MANIFESTS = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {NS}}}
---
apiVersion: batch/v1
kind: Job
metadata: {{name: pi, namespace: {NS}}}
spec:
  completions: 2
  parallelism: 2
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
        - {{name: main, image: busybox, command: [sh, -c, "echo done $HOSTNAME"]}}
---
apiVersion: batch/v1
kind: CronJob
metadata: {{name: tick, namespace: {NS}}}
spec:
  schedule: "*/1 * * * *"
  successfulJobsHistoryLimit: 5
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - {{name: tick, image: busybox, command: [sh, -c, "date; echo tick"]}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers:
        - {{name: agent, image: busybox, command: [sh, -c, "sleep 100000"]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {NS}}}
spec:
  clusterIP: None
  selector: {{app: stateful}}
  ports:
    - {{port: 8080, name: http}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web, namespace: {NS}}}
spec:
  serviceName: web
  replicas: 2
  selector: {{matchLabels: {{app: stateful}}}}
  template:
    metadata: {{labels: {{app: stateful}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: busybox
          command: [sh, -c, "httpd -f -p 8080 -h /data"]
          readinessProbe:
            tcpSocket: {{port: 8080}}
            periodSeconds: 1
          volumeMounts:
            - {{name: data, mountPath: /data}}
  volumeClaimTemplates:
    - metadata: {{name: data}}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {{requests: {{storage: 16Mi}}}}
"""


def apply(lab: Any, directory: Path) -> None:
    """The workloads applied to the lab, once, before the checks below."""
    path = directory / "workloads.yaml"
    path.write_text(MANIFESTS)
    applied = lab.kubectl("apply", "-f", str(path))
    assert "statefulset.apps/web created" in applied


def kubectl(lab: Any, *args: str, **kw: Any) -> str:
    return lab.kubectl("-n", NS, *args, **kw)


def get(lab: Any, *args: str) -> dict[str, Any]:
    return lab.get("-n", NS, *args)


def ready(pod: dict[str, Any]) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in pod.get("status", {}).get("conditions", [])
    )


def check_job_runs_to_completion(lab: Any) -> None:
    out = kubectl(lab, "wait", "--for=condition=complete", "job/pi", "--timeout=150s", timeout=170)
    assert "job.batch/pi condition met" in out
    job = get(lab, "job", "pi")
    assert job["status"]["succeeded"] == 2
    pods = get(lab, "pods", "-l", "job-name=pi")["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert kubectl(lab, "logs", "job/pi").startswith("done pi-")


def check_daemonset_has_one_pod_on_each_node(lab: Any) -> None:
    def covered() -> bool:
        pods = [p for p in get(lab, "pods", "-l", "app=agent")["items"] if ready(p)]
        return sorted(p["spec"]["nodeName"] for p in pods) == ["lab-1", "lab-2", "lab-3"]

    lab.wait("an agent pod Ready on each of the three nodes", covered, timeout=150)
    ds = get(lab, "daemonset", "agent")["status"]
    assert ds["desiredNumberScheduled"] == 3
    lab.wait(
        "the DaemonSet to count 3 ready",
        lambda: get(lab, "daemonset", "agent")["status"].get("numberReady") == 3,
        timeout=60,
    )
    out = kubectl(lab, "rollout", "status", "daemonset/agent", "--timeout=60s", timeout=80)
    assert "successfully rolled out" in out


def check_cronjob_job_made_by_hand_completes(lab: Any) -> None:
    out = kubectl(lab, "create", "job", "tick-manual", "--from=cronjob/tick")
    assert "job.batch/tick-manual created" in out
    job = get(lab, "job", "tick-manual")
    owners = job["metadata"].get("ownerReferences", [])
    assert [(o["kind"], o["name"]) for o in owners] == [("CronJob", "tick")]
    out = kubectl(
        lab, "wait", "--for=condition=complete", "job/tick-manual", "--timeout=120s", timeout=140
    )
    assert "condition met" in out
    assert "tick" in kubectl(lab, "logs", "job/tick-manual")


def check_statefulset_comes_up_in_order_with_claims(lab: Any) -> None:
    lab.wait(
        "web-0 and web-1 Ready",
        lambda: all(ready(get(lab, "pod", f"web-{i}")) for i in (0, 1)),
        timeout=180,
    )
    web0, web1 = get(lab, "pod", "web-0"), get(lab, "pod", "web-1")
    ready0 = next(c for c in web0["status"]["conditions"] if c["type"] == "Ready")
    # OrderedReady: web-1 is created only once web-0 is Ready
    assert web1["metadata"]["creationTimestamp"] >= ready0["lastTransitionTime"]
    assert web0["spec"]["hostname"] == "web-0" and web0["spec"]["subdomain"] == "web"
    claims = {c["metadata"]["name"]: c for c in get(lab, "pvc")["items"]}
    assert {"data-web-0", "data-web-1"} <= set(claims)
    assert all(claims[n]["status"]["phase"] == "Bound" for n in ("data-web-0", "data-web-1"))
    assert kubectl(lab, "exec", "web-0", "--", "hostname").strip() == "web-0"


def check_statefulset_pods_resolve_each_other_through_cluster_dns(lab: Any) -> None:
    kubectl(lab, "exec", "web-0", "--", "sh", "-c", "echo I am web-0 > /data/index.html")
    name = f"web-0.web.{NS}.svc.cluster.local"
    ip0 = get(lab, "pod", "web-0")["status"]["podIP"]

    def resolves() -> bool:
        out = kubectl(lab, "exec", "web-1", "--", "nslookup", name, check=False)
        return ip0 in out.split("Name:", 1)[-1]

    lab.wait(f"{name} from web-1", resolves, timeout=60)
    page = kubectl(
        lab,
        "exec",
        "web-1",
        "--",
        "timeout",
        "5",
        "wget",
        "-q",
        "-O",
        "-",
        f"http://{name}:8080/",
        check=False,
    )
    assert "I am web-0" in page


def check_deleted_statefulset_pod_comes_back_with_its_data(lab: Any) -> None:
    kubectl(lab, "exec", "web-1", "--", "sh", "-c", "echo kept by web-1 > /data/keep.txt")
    old = get(lab, "pod", "web-1")
    old_node = old["spec"]["nodeName"]
    kubectl(lab, "delete", "pod", "web-1", "--wait=true", timeout=90)

    def back() -> bool:
        pod = get(lab, "pod", "web-1")
        return pod["metadata"]["uid"] != old["metadata"]["uid"] and ready(pod)

    lab.wait("web-1 back and Ready", back, timeout=120)
    new = get(lab, "pod", "web-1")
    assert new["spec"]["nodeName"] == old_node  # local-path: the claim's volume is on that node
    assert kubectl(lab, "exec", "web-1", "--", "cat", "/data/keep.txt").strip() == "kept by web-1"


def check_cronjob_controller_fires_on_its_own(lab: Any) -> None:
    """`*/1` fires at the first minute after the CronJob was made: at most 60 s away."""

    def scheduled() -> list[str]:
        jobs = get(lab, "jobs")["items"]
        return [
            j["metadata"]["name"]
            for j in jobs
            if j["metadata"]["name"].startswith("tick-")
            and j["metadata"]["name"] != "tick-manual"
            and j.get("metadata", {})
            .get("annotations", {})
            .get("cronjob.kubernetes.io/instantiate")
            != "manual"
        ]

    names = lab.wait("a Job made by the CronJob controller", scheduled, timeout=150)
    out = kubectl(
        lab, "wait", "--for=condition=complete", f"job/{names[0]}", "--timeout=120s", timeout=140
    )
    assert "condition met" in out
    cj = get(lab, "cronjob", "tick")["status"]
    assert cj.get("lastScheduleTime") and cj.get("lastSuccessfulTime")
