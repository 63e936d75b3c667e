"""What a simulated node says, as pure functions of the objects (table-tested).

A simulated node is what kwok's are: a Node and its Lease kept fresh, and the
pods bound to it reported as a kubelet would report them, with no container
behind them. Everything it writes goes through the same API paths a kubelet
uses (Node and Pod status, `kube-node-lease`), so the scheduler, the
controllers and the proxy cannot tell it from a real node.

Users steer it with annotations, through kubectl:

- Node `skiff.dev/simulate=silent`: the node stops renewing its Lease and
  stops reporting pods, as a node whose kubelet died (it becomes NotReady,
  is tainted, and its pods are evicted after their toleration). Remove the
  annotation and it reports again, Ready.
- Pod (or Node, for all its pods) `skiff.dev/simulate=fail`: the pod's
  containers fail: `Failed` for restartPolicy Never, otherwise
  `CrashLoopBackOff` with a growing restart count, never Ready.
"""

from __future__ import annotations

import ipaddress
from typing import Any

ANNOTATION = "skiff.dev/simulate"
KUBELET_VERSION = "v1.32.0"


def node_object(name: str, address: str, *, cpu: str, memory: str, pods: str) -> dict[str, Any]:
    """The Node a simulated kubelet registers. Pure."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods, "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {},
        "status": {
            "capacity": resources,
            "allocatable": dict(resources),
            "addresses": [
                {"type": "InternalIP", "address": address},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "simulated://0",
                "osImage": "kwok",
                "kernelVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    }


def node_conditions(now: str) -> list[dict[str, Any]]:
    """A healthy node's conditions, heartbeat `now`. Pure."""

    def cond(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return [
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]


def is_ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def wants(obj: dict[str, Any] | None, what: str) -> bool:
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(ANNOTATION) == what


def pod_ip(cidr: str, index: int) -> str:
    """The index-th pod address of a node CIDR (the first is the bridge's, as on a real node)."""
    net = ipaddress.ip_network(cidr)
    return str(net.network_address + 2 + index % max(net.num_addresses - 3, 1))


def decide(pod: dict[str, Any], node: dict[str, Any] | None, age: float, delay: float) -> str:
    """What to do about one pod bound to a simulated node. Pure.

    "" nothing; "confirm-delete" (the kubelet's final delete after a graceful
    one); "run"; "fail"; "crash" (restart count up, CrashLoopBackOff).
    `age` is how long the simulator has known the pod, `delay` how long a
    start takes.
    """
    if node is None or wants(node, "silent"):
        return ""
    meta, status = pod["metadata"], pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "confirm-delete"
    phase = status.get("phase", "Pending")
    if phase in ("Succeeded", "Failed"):
        return ""
    failing = wants(pod, "fail") or wants(node, "fail")
    if age < delay:
        return ""
    if failing:
        if (pod.get("spec") or {}).get("restartPolicy", "Always") == "Never":
            return "fail"
        return "crash"
    if phase == "Running" and all(c.get("ready") for c in status.get("containerStatuses") or [{}]):
        return ""
    return "run"


def running_status(
    pod: dict[str, Any], *, host_ip: str, ip: str, now: str, started: str
) -> dict[str, Any]:
    """The status a kubelet posts once every container runs and is ready. Pure."""
    spec = pod.get("spec") or {}
    uid = pod["metadata"].get("uid", "")

    def cond(type_: str) -> dict[str, Any]:
        return {"type": type_, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}

    return {
        "phase": "Running",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "conditions": [
            cond(t)
            for t in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ],
        "containerStatuses": [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "containerID": f"simulated://{uid}/{c['name']}",
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": started}},
            }
            for c in spec.get("containers") or []
        ],
    }


def failed_status(
    pod: dict[str, Any], *, host_ip: str, ip: str, now: str, crash: bool
) -> dict[str, Any]:
    """A pod whose containers exit 1: Failed, or CrashLoopBackOff when restarted. Pure."""
    spec, old = pod.get("spec") or {}, pod.get("status") or {}
    restarts = {c["name"]: c.get("restartCount", 0) for c in old.get("containerStatuses") or []}
    term = {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}
    statuses = []
    for c in spec.get("containers") or []:
        entry: dict[str, Any] = {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "containerID": f"simulated://{pod['metadata'].get('uid')}/{c['name']}",
            "ready": False,
            "started": False,
        }
        if crash:
            entry["restartCount"] = restarts.get(c["name"], 0) + 1
            entry["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container {c['name']}",
                }
            }
            entry["lastState"] = {"terminated": term}
        else:
            entry["restartCount"] = restarts.get(c["name"], 0)
            entry["state"] = {"terminated": term}
        statuses.append(entry)
    not_ready = {
        "status": "False",
        "reason": "ContainersNotReady",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    return {
        "phase": "Running" if crash else "Failed",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": old.get("startTime") or now,
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": now,
            },
            {"type": "Ready", **not_ready},
            {"type": "ContainersReady", **not_ready},
        ],
        "containerStatuses": statuses,
    }
