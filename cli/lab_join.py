"""`skiff lab token ...` and `skiff lab join`: the VM path, inside the lab.

`skiff lab token create` is `skiff token create` run in the first node's
network with the lab's admin kubeconfig. `skiff lab join --token T
--discovery-token-ca-cert-hash H` adds a node namespace to the lab bridge
and runs `skiff join https://<lab-1>:6443 ...` inside it, exactly as on a
new VM; the node's agents then run with the kubeconfig the join obtained
(its own `system:node:<name>` certificate), not the admin's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import join, lab, lab_net, lab_procs


def run_in(netns: str, argv: list[str]) -> int:
    preexec = lab_net.preexec_in(netns)
    try:
        return subprocess.run(argv, preexec_fn=preexec).returncode
    finally:
        lab_net.close_preexec(preexec)


def lab_main(state_dir: Path, command: str, args: list[str]) -> int:
    state = lab.load_state(state_dir)
    first = state["nodes"][0]
    if command == "token":
        argv = lab_procs.module(
            "cli.main", "token", "--kubeconfig", str(lab.admin_kubeconfig(state)), *args
        )
        return run_in(first["netns"], argv)
    p = argparse.ArgumentParser(prog="skiff lab join")
    p.add_argument("--token", required=True)
    p.add_argument("--discovery-token-ca-cert-hash", required=True, dest="ca_hash")
    p.add_argument("--control-plane", action="store_true",
                   help="a second control plane (apiserver, controller-manager, scheduler) "
                   "on lab-1's etcd, with the node's agents, all run by `skiff up`")  # fmt: skip
    a = p.parse_args(args)
    index = max(n["index"] for n in state["nodes"]) + 1
    node = lab.new_node(state, index)
    Path(node["dir"]).mkdir(parents=True, exist_ok=True)
    server = f"https://{first['ip']}:6443"
    if a.control_plane:
        return join_control_plane(state_dir, state, node, server, a.token, a.ca_hash)
    code = run_in(
        node["netns"],
        lab_procs.module(
            "cli.main",
            "join",
            server,
            "--token",
            a.token,
            "--discovery-token-ca-cert-hash",
            a.ca_hash,
            "--node-name",
            node["name"],
            "--state-dir",
            node["dir"],
        ),
    )
    if code:
        print(
            f"skiff lab: {node['name']} did not join; its namespace stays until `skiff lab down`",
            file=sys.stderr,
        )
        return code
    node["kubeconfig"] = str(Path(node["dir"]) / "kubelet.kubeconfig")
    lab.save_state(state_dir, state)
    lab.start_agents(state, node)
    print(
        f"skiff lab: {node['name']} joined ({node['ip']}); its agents run with its own certificate"
    )
    return 0


def copy_shared_pki(state: dict, node: dict) -> None:
    """What an operator copies to a new control-plane VM with scp (docs/multi-vm-lab.md,
    section 5): the cluster's CAs and service-account key, and, for an etcd it is not
    a member of, the apiserver's etcd client certificate. Nothing per machine."""
    src = Path(state["control_plane_dir"]) / "pki"
    dst = Path(node["dir"]) / "pki"
    for name in (*join.SHARED_PKI, *join.ETCD_CLIENT):
        (dst / name).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(src / name, dst / name)
        os.chmod(dst / name, 0o600)


def join_control_plane(
    state_dir: Path, state: dict, node: dict, server: str, token: str, ca_hash: str
) -> int:
    """`skiff join --control-plane` inside a new node namespace, on lab-1's etcd
    (`--etcd-servers`, as a machine that is not an etcd member does): `skiff up`
    there runs a supervisor with apiserver, controller-manager, scheduler, runtime,
    kubelet, proxy and DNS; `skiff lab down` runs `skiff down` for it."""
    first = state["nodes"][0]
    copy_shared_pki(state, node)
    d = Path(node["dir"])
    node["control_plane"] = True
    lab.save_state(state_dir, state)
    code = run_in(
        node["netns"],
        lab_procs.module(
            "cli.main", "join", server, "--token", token,
            "--discovery-token-ca-cert-hash", ca_hash, "--control-plane",
            "--node-name", node["name"], "--node-ip", node["ip"], "--state-dir", str(d),
            "--etcd-servers", f"https://{first['ip']}:{lab.ETCD_CLIENT_PORT}",
            "--run-dir", str(d / "run"), "--cgroup-root", f"{state['cgroup_root']}/{node['name']}",
            "--pod-log-dir", str(d / "pod-logs"),
        ),
    )  # fmt: skip
    if code:
        print(f"skiff lab: {node['name']} did not join as a control plane; `skiff lab down` "
              "removes what it started", file=sys.stderr)  # fmt: skip
        return code
    print(f"skiff lab: {node['name']} joined as a control plane ({node['ip']}); its apiserver "
          f"is https://{node['ip']}:6443, its components' logs in {d / 'logs'}")  # fmt: skip
    return 0
