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
import subprocess
import sys
from pathlib import Path

from . import lab, lab_net, lab_procs


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
    a = p.parse_args(args)
    index = max(n["index"] for n in state["nodes"]) + 1
    node = lab.new_node(state, index)
    Path(node["dir"]).mkdir(parents=True, exist_ok=True)
    server = f"https://{first['ip']}:6443"
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
