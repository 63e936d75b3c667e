"""A second control plane joins the lab with `skiff join --control-plane`, end to end.

Run by tests/e2e/test_lab.py::test_a_second_control_plane_joins_and_takes_over
on that module's lab (no lab of its own: the suite's time). On the lab (its
control plane on lab-1, whose etcd listens on lab-1's bridge address as on a
VM), `skiff lab join --control-plane`: a new node
namespace on the lab bridge, the shared CAs copied into it as an operator
copies them with scp, and `skiff join --control-plane --etcd-servers
https://lab-1:2379` there, which hands over to `skiff up` (apiserver,
controller-manager, scheduler, runtime, kubelet, proxy, DNS under a supervisor).

Then what a user would check: the new apiserver serves the same objects; both
apiservers are in the `kubernetes` Endpoints; with lab-1's controller-manager
and scheduler killed (by the PIDs the lab recorded) the second ones take their
Leases over and a new Deployment still gets its pods scheduled and running.
The lab fixture brings everything down and checks nothing is left.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from cli import lab_net, lab_procs
from cli.lab import kubectl_binary

from .conftest import Lab


def kubectl_in(lab: Lab, node: dict[str, Any], *args: str) -> str:
    """kubectl inside `node`'s namespace with that machine's own admin kubeconfig: what an
    operator on the second control-plane VM runs, against its own apiserver."""
    kubeconfig = Path(node["dir"]) / "admin.kubeconfig"
    preexec = lab_net.preexec_in(node["netns"])
    try:
        r = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True, text=True, timeout=60, preexec_fn=preexec,
        )  # fmt: skip
    finally:
        lab_net.close_preexec(preexec)
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stdout}{r.stderr}\n{lab.logs()}"
    return r.stdout


def holders(lab: Lab) -> dict[str, str]:
    leases = lab.get("lease", "-n", "kube-system", "kube-controller-manager", "kube-scheduler")
    return {
        item["metadata"]["name"]: item["spec"].get("holderIdentity") or ""
        for item in leases["items"]
    }


def check_a_second_control_plane_joins_and_takes_over(lab: Lab) -> None:
    """The test's body (kills lab-1's controller-manager and scheduler: run it last)."""
    words = lab.skiff("token", "create", "--print-join-command").split()
    token, pin = words[words.index("--token") + 1], words[-1]
    out = lab.skiff(
        "join", "--control-plane", "--token", token, "--discovery-token-ca-cert-hash", pin,
        timeout=300,
    )  # fmt: skip
    assert "joined as a control plane" in out, out
    state = lab.state
    first, second = state["nodes"][0], state["nodes"][-1]
    assert second.get("control_plane")
    lab.wait(f"{second['name']} Ready", lambda: lab.ready_nodes().get(second["name"]), 120)

    # Its apiserver serves the same objects: written through lab-1's, read through its own.
    lab.kubectl("create", "configmap", "written-on-lab-1", "--from-literal=k=v")
    got = json.loads(kubectl_in(lab, second, "get", "configmap", "written-on-lab-1", "-o", "json"))
    assert got["data"] == {"k": "v"}
    assert second["name"] in kubectl_in(lab, second, "get", "nodes")

    # Both apiservers in the `kubernetes` Endpoints (and its EndpointSlice).
    both = sorted([first["ip"], second["ip"]])

    def listed() -> bool:
        ep = lab.get("endpoints", "kubernetes")
        ips = sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses", []))
        es = lab.get("endpointslice", "kubernetes")
        slice_ips = sorted(a for e in es.get("endpoints") or [] for a in e["addresses"])
        return ips == both and slice_ips == both

    lab.wait("both apiservers in the kubernetes Endpoints", listed, 30)

    # lab-1's controller-manager and scheduler die: the second ones take the Leases over.
    before = lab.wait("both Leases held", lambda: (h := holders(lab)) and all(h.values()) and h)
    cp = state["control_plane"]
    for name in ("controller-manager", "scheduler"):
        assert lab_procs.is_ours(cp[name]), f"lab-1's {name} is not running"
    lab_procs.kill_pids([cp["controller-manager"]["pid"], cp["scheduler"]["pid"]])
    lab.wait(
        "the second control plane's controller-manager and scheduler to hold the Leases",
        lambda: all(h and h != before[n] for n, h in holders(lab).items()),
        timeout=60,
    )

    # A new Deployment still gets its pods scheduled and running.
    lab.kubectl("create", "deployment", "after-takeover", "--image=busybox", "--replicas=2",
                "--", "sh", "-c", "sleep 3600")  # fmt: skip

    def running() -> bool:
        pods = lab.get("pods", "-l", "app=after-takeover")["items"]
        return len(pods) == 2 and all(
            p["spec"].get("nodeName") and p["status"].get("phase") == "Running" for p in pods
        )

    lab.wait("the Deployment's 2 pods Running", running, 90)
