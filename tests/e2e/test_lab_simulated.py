"""Simulated nodes in the lab: the control plane treats them as nodes, kubectl steers them.

One lab for the module: one real node namespace with the control plane and 30
simulated nodes. A Deployment of 60 replicas rolls out on them; a node told to
go silent turns NotReady and its pods are replaced on the others; a node told
to fail pods shows them crash-looping. Then `skiff lab down` leaves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SIMULATED = 30
TOLERANT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: 60
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      nodeSelector: {type: kwok}
      tolerations:
        - key: node.kubernetes.io/not-ready
          operator: Exists
          effect: NoExecute
          tolerationSeconds: 5
        - key: node.kubernetes.io/unreachable
          operator: Exists
          effect: NoExecute
          tolerationSeconds: 5
      containers:
        - name: app
          image: busybox
          command: ["sleep", "3600"]
          resources: {requests: {cpu: 100m, memory: 64Mi}}
"""


@pytest.fixture(scope="module")
def lab(new_lab: Any) -> Iterator[Any]:
    lab = new_lab
    out = lab.skiff(
        "up", "--nodes", "1", "--simulated-nodes", str(SIMULATED), "--pod-ready-delay", "0.5"
    )
    assert f"(+{SIMULATED} simulated)" in out
    yield lab


def pods_by_node(lab: Any, selector: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for p in lab.get("pods", "-l", selector)["items"]:
        out.setdefault(p["spec"].get("nodeName", ""), []).append(p)
    return out


def test_simulated_nodes_register_ready(lab: Any) -> None:
    def ready() -> bool:
        nodes = lab.ready_nodes()
        sims = [n for n in nodes if n.startswith("sim-")]
        return len(sims) == SIMULATED and all(nodes[n] for n in sims)

    lab.wait("every simulated node Ready", ready, timeout=60)
    node = lab.get("node", "sim-0001")
    assert node["spec"]["podCIDR"].startswith("10.244.")  # the controller gave it a CIDR
    lease = lab.get("lease", "-n", "kube-node-lease", "sim-0001")
    assert lease["spec"]["holderIdentity"] == "sim-0001"


def test_rollout_over_simulated_nodes(lab: Any, tmp_path: Path) -> None:
    (tmp_path / "many.yaml").write_text(TOLERANT)
    lab.kubectl("apply", "-f", str(tmp_path / "many.yaml"))
    out = lab.kubectl("rollout", "status", "deployment/many", "--timeout=120s", timeout=150)
    assert "successfully rolled out" in out
    placed = pods_by_node(lab, "app=many")
    assert len(placed) >= 10, f"60 pods on only {len(placed)} nodes"
    for pods in placed.values():
        for p in pods:
            assert p["status"]["phase"] == "Running"
            assert p["status"]["podIP"].startswith("10.244.")


def test_silent_node_goes_notready_and_its_pods_move(lab: Any) -> None:
    victim = max(pods_by_node(lab, "app=many").items(), key=lambda kv: len(kv[1]))[0]
    lab.kubectl("annotate", "node", victim, "skiff.dev/simulate=silent")
    lab.wait(f"{victim} NotReady", lambda: lab.ready_nodes()[victim] is False, timeout=90)
    taints = {t["key"] for t in lab.get("node", victim)["spec"].get("taints", [])}
    assert "node.kubernetes.io/unreachable" in taints

    def moved() -> bool:
        pods = [
            p
            for p in lab.get("pods", "-l", "app=many")["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]
        ready = [
            p
            for p in pods
            if p["spec"].get("nodeName") != victim and p["status"].get("phase") == "Running"
        ]
        return len(ready) >= 60

    lab.wait("60 pods Running on the other nodes", moved, timeout=120)
    # speaking again: Ready again
    lab.kubectl("annotate", "node", victim, "skiff.dev/simulate-")
    lab.wait(f"{victim} Ready again", lambda: lab.ready_nodes()[victim], timeout=60)


def test_failing_pods_crash_loop(lab: Any, tmp_path: Path) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "doomed", "annotations": {"skiff.dev/simulate": "fail"}},
        "spec": {
            "nodeSelector": {"type": "kwok"},
            "containers": [{"name": "app", "image": "busybox", "command": ["false"]}],
        },
    }
    (tmp_path / "doomed.json").write_text(json.dumps(manifest))
    lab.kubectl("apply", "-f", str(tmp_path / "doomed.json"))

    def crashing() -> bool:
        status = lab.get("pod", "doomed")["status"]
        c = (status.get("containerStatuses") or [{}])[0]
        return (
            c.get("state", {}).get("waiting", {}).get("reason") == "CrashLoopBackOff"
            and c.get("restartCount", 0) >= 1
        )

    lab.wait("doomed in CrashLoopBackOff", crashing, timeout=60)
    assert "CrashLoopBackOff" in lab.kubectl("get", "pod", "doomed")


def test_down_leaves_nothing(lab: Any) -> None:
    state = lab.state
    out = lab.skiff("down")
    assert "removed" in out
    lab.assert_nothing_left(state)
    assert "no lab" in lab.skiff("node", "stop", "lab-1", check=False)
