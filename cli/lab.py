"""`skiff lab`: several nodes on one machine, in network namespaces (no Docker, no VMs).

    skiff lab up --nodes 3 [--simulated-nodes 200]
    skiff lab kubectl get nodes -o wide        # kubectl, run inside the lab's network
    skiff lab node stop lab-2 / node start lab-2
    skiff lab token create                     # then `skiff join` over the lab bridge
    skiff lab join [--control-plane] --token T --discovery-token-ca-cert-hash H
    skiff lab down

Each node is a network namespace with its own address on a lab bridge that has
no route out of the machine (lab_net.py), its own runtime daemon (state, run
directory, cgroup root), kubelet, route agent (hostgw.py) and proxy; the
control plane (apiserver with its embedded etcd, controller-manager,
scheduler, DNS) runs in the first node's namespace. What runs is recorded in
`<state-dir>/lab.json`; `down` stops exactly those processes and removes
every namespace, mount and cgroup the lab made, and the state directory.

The apiserver is reachable only inside the lab: `skiff lab kubectl` runs
kubectl with `nsenter --net` in the first node's namespace and the lab's admin
kubeconfig, so nothing in the lab ever listens on the host's network.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from client.config import load_config
from client.rest import Client

from . import lab_net, lab_procs

DEFAULT_STATE = Path(os.environ.get("SKIFF_LAB_DIR", "/var/lib/skiff-lab"))
REPO = Path(__file__).resolve().parent.parent
CLUSTER_CIDR = "10.244.0.0/16"
# The lab's short clocks, so a stopped node's pods move within a minute: the
# node is NotReady 20 s after its last heartbeat; pods that tolerate
# not-ready/unreachable for 10 s (manifests/demo does) are then evicted.
NODE_MONITOR_GRACE = 20
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380  # etcd's own, on lab-1's address
AGENTS = ("kubelet", "hostgw", "proxy", "runtime")  # what `node stop` stops, in order


class LabError(Exception):
    """Something the user must fix or know; one line."""


# -- state ----------------------------------------------------------------------------------


def load_state(state_dir: Path) -> dict[str, Any]:
    path = state_dir / "lab.json"
    if not path.exists():
        raise LabError(f"no lab in {state_dir} (start one with `skiff lab up`)")
    return json.loads(path.read_text())


def save_state(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_dir / "lab.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(state_dir / "lab.json")


def has_module(dotted: str) -> bool:
    """Whether a component is in this build, without importing it (cli/ must not)."""
    parts = dotted.split(".")
    base = REPO.joinpath(*parts)
    return (base / "__main__.py").exists() or base.with_suffix(".py").exists()


def kubectl_binary() -> str:
    venv = Path(sys.executable).parent / "kubectl"
    if venv.exists():
        return str(venv)
    found = shutil.which("kubectl")
    if not found:
        raise LabError("no kubectl: run scripts/install.sh (it puts one into .venv/bin)")
    return found


def admin_kubeconfig(state: dict[str, Any]) -> Path:
    return Path(state["control_plane_dir"]) / "admin.kubeconfig"


def component_kubeconfig(state: dict[str, Any], name: str) -> str:
    """The component's own identity where the apiserver makes one (scheduler,
    controller-manager, kube-proxy: `kubeconfigs/<name>.kubeconfig`), else admin."""
    own = Path(state["control_plane_dir"]) / "kubeconfigs" / f"{name}.kubeconfig"
    return str(own if own.exists() else admin_kubeconfig(state))


def node_kubeconfig(state: dict[str, Any], node: dict[str, Any]) -> str:
    """The kubelet's identity, system:node:<name>: from `skiff join` for joined
    nodes, else made by the cluster CA (`python -m apiserver.identities node`)
    when this build has it; the admin kubeconfig otherwise."""
    if node.get("kubeconfig"):
        return str(node["kubeconfig"])
    if not has_module("apiserver.identities"):
        return str(admin_kubeconfig(state))
    out = Path(node["dir"]) / "kubelet.kubeconfig"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(
            lab_procs.module(
                "apiserver.identities",
                "--state-dir",
                state["control_plane_dir"],
                "node",
                node["name"],
                "--out",
                str(out),
            ),
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise LabError(f"{node['name']}'s kubeconfig: {r.stderr.strip()}")
    return str(out)


# -- talking to the lab's apiserver from here -----------------------------------------------


def api(state: dict[str, Any], work: Any) -> Any:
    """Run `work(client)` (a coroutine function) inside the first node's network."""

    async def go() -> Any:
        client = Client(load_config(admin_kubeconfig(state)), user_agent="skiff-lab")
        try:
            return await work(client)
        finally:
            await client.close()

    return lab_net.in_netns(state["nodes"][0]["netns"], lambda: asyncio.run(go()))


def apiserver_ready(state: dict[str, Any]) -> bool:
    ca = Path(state["control_plane_dir"]) / "pki" / "ca.crt"
    if not ca.exists() or not admin_kubeconfig(state).exists():
        return False
    url = f"https://{state['nodes'][0]['ip']}:6443/readyz"

    def probe() -> bool:
        try:
            ctx = ssl.create_default_context(cafile=str(ca))
            with urllib.request.urlopen(url, context=ctx, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    return lab_net.in_netns(state["nodes"][0]["netns"], probe)


def node_readiness(state: dict[str, Any]) -> dict[str, str]:
    async def work(client: Client) -> dict[str, str]:
        nodes, _ = await client.list("v1", "Node")
        out = {}
        for n in nodes:
            ready = next(
                (c for c in n.get("status", {}).get("conditions") or [] if c["type"] == "Ready"),
                {},
            )
            out[n["metadata"]["name"]] = ready.get("status", "Unknown")
        return out

    try:
        return api(state, work)
    except Exception:  # the apiserver may be starting or gone: not Ready yet
        return {}


def wait_for(what: str, check: Any, timeout: float, procs: list[dict] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for rec in procs or []:
            if not lab_procs.is_ours(rec):
                tail = Path(rec["log"]).read_text(errors="replace").splitlines()[-15:]
                name = rec["argv"][2]
                raise LabError(f"{what}: {name} exited; its log ends:\n" + "\n".join(tail))
        time.sleep(0.2)
    raise LabError(f"{what}: not within {timeout:.0f} s")


# -- starting things ------------------------------------------------------------------------


CONTROL_PLANE = ("apiserver", "controller-manager", "scheduler", "dns")


def control_plane_argv(state: dict[str, Any], name: str) -> list[str] | None:
    """How the lab runs one control-plane component (None: not in this build)."""
    n1 = state["nodes"][0]
    if name == "apiserver":
        return lab_procs.module(
            "apiserver",
            "--state-dir",
            state["control_plane_dir"],
            "--advertise-address",
            n1["ip"],
            "--bind-address",
            "0.0.0.0",
            # Its etcd a one-member cluster on lab-1's bridge address (and loopback), as
            # on a VM: another control plane (`skiff lab join --control-plane`) reaches it.
            "--etcd-name",
            n1["name"],
            "--etcd-initial-cluster",
            f"{n1['name']}=https://{n1['ip']}:{ETCD_PEER_PORT}",
            "--etcd-client-port",
            str(ETCD_CLIENT_PORT),
        )
    if name == "controller-manager":
        return lab_procs.module(
            "controllers",
            "--kubeconfig",
            component_kubeconfig(state, "controller-manager"),
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--node-monitor-grace-period",
            str(NODE_MONITOR_GRACE),
            "--cluster-signing-cert-file",
            str(Path(state["control_plane_dir"]) / "pki" / "ca.crt"),
            "--cluster-signing-key-file",
            str(Path(state["control_plane_dir"]) / "pki" / "ca.key"),
        )
    if name == "scheduler":
        return lab_procs.module(
            "scheduler", "--kubeconfig", component_kubeconfig(state, "scheduler")
        )
    if name == "dns" and has_module("proxy.dns"):
        return lab_procs.module(
            "proxy.dns",
            "--kubeconfig",
            component_kubeconfig(state, "dns"),
            "--node-name",
            n1["name"],
            "--advertise-address",
            n1["ip"],
        )
    return None


def start_component(state: dict[str, Any], name: str) -> None:
    argv = control_plane_argv(state, name)
    if argv is None:
        return
    procs = state.setdefault("control_plane", {})
    procs[name] = lab_procs.spawn(
        argv,
        netns=state["nodes"][0]["netns"],
        log=Path(state["state_dir"]) / "logs" / f"{name}.log",
    )
    save_state(Path(state["state_dir"]), state)
    if name == "apiserver":
        wait_for("the apiserver", lambda: apiserver_ready(state), 90, [procs["apiserver"]])


def start_control_plane(state: dict[str, Any]) -> None:
    for name in CONTROL_PLANE:
        start_component(state, name)


def restart(state_dir: Path, name: str, kill: bool) -> int:
    """Stop one control-plane component (SIGTERM, or SIGKILL with --kill) and start it again."""
    state = load_state(state_dir)
    if name not in CONTROL_PLANE or control_plane_argv(state, name) is None:
        raise LabError(
            f"no component {name!r} here (try: "
            + ", ".join(c for c in CONTROL_PLANE if control_plane_argv(state, c))
            + ")"
        )
    rec = state.get("control_plane", {}).get(name, {})
    if lab_procs.is_ours(rec):
        if kill:
            lab_procs.kill_pids([rec["pid"]])
            lab_procs.stop([rec], grace=5)
        else:
            lab_procs.stop([rec])
    if name == "apiserver":
        # its embedded etcd outlives a SIGKILLed apiserver; the new one starts its own
        etcd_pid = Path(state["control_plane_dir"]) / "etcd.pid"
        if etcd_pid.exists():
            pid = int(etcd_pid.read_text().strip() or 0)
            if pid and pid in lab_procs.pids_in_netns([state["nodes"][0]["netns"]]):
                lab_procs.stop([{"pid": pid, "start": lab_procs.start_time(pid)}])
    start_component(state, name)
    print(f"skiff lab: {name} {'killed' if kill else 'stopped'} and started again")
    return 0


def kubelet_certs(state: dict[str, Any], node: dict[str, Any]) -> dict[str, str]:
    out = Path(node["dir"]) / "pki"
    r = subprocess.run(
        lab_procs.module(
            "apiserver.kubelet_certs",
            "serving",
            "--state-dir",
            state["control_plane_dir"],
            "--node",
            node["name"],
            "--ip",
            node["ip"],
            "--out",
            str(out),
        ),
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise LabError(f"kubelet certificate for {node['name']}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def start_agents(state: dict[str, Any], node: dict[str, Any]) -> None:
    """Runtime, kubelet, route agent and proxy of one node, in its namespace."""
    start_runtime(state, node)
    start_node_agents(state, node)


def start_runtime(state: dict[str, Any], node: dict[str, Any]) -> None:
    """The node's runtime only: it needs no apiserver, so `up` starts it beside one."""
    d = Path(node["dir"])
    logs = d / "logs"
    sock = d / "run" / "runtime.sock"
    procs = node.setdefault("agents", {})
    sock.unlink(missing_ok=True)  # a stale socket must not pass for the new daemon's
    procs["runtime"] = lab_procs.spawn(
        lab_procs.module(
            "runtime.daemon",
            "--socket",
            str(sock),
            "--state-dir",
            str(d / "runtime"),
            "--run-dir",
            str(d / "run"),
            "--image-root",
            state["image_root"],
            "--cgroup-root",
            f"{state['cgroup_root']}/{node['name']}",
        ),
        netns=node["netns"],
        log=logs / "runtime.log",
    )
    save_state(Path(state["state_dir"]), state)


def start_node_agents(
    state: dict[str, Any], node: dict[str, Any], certs: dict[str, str] | None = None
) -> None:
    """Kubelet, route agent and proxy, once the node's runtime listens (`certs`: the
    kubelet's serving certificate flags when already issued)."""
    d = Path(node["dir"])
    logs = d / "logs"
    sock = d / "run" / "runtime.sock"
    kc = node_kubeconfig(state, node)
    procs = node.setdefault("agents", {})
    wait_for(f"{node['name']}'s runtime", sock.exists, 60, [procs["runtime"]])
    if has_module("kubelet"):
        args = [
            "--kubeconfig",
            kc,
            "--node-name",
            node["name"],
            "--node-ip",
            node["ip"],
            "--runtime-endpoint",
            str(sock),
            "--root-dir",
            str(d / "kubelet"),
            "--log-dir",
            str(d / "pod-logs"),
        ]
        if has_module("kubelet.server"):
            flags = certs if certs is not None else kubelet_certs(state, node)
            for flag, path in flags.items():
                args += [f"--{flag}", path]
        procs["kubelet"] = lab_procs.spawn(
            lab_procs.module("kubelet", *args), netns=node["netns"], log=logs / "kubelet.log"
        )
    procs["hostgw"] = lab_procs.spawn(  # it only reads Nodes: the kubelet's identity may
        lab_procs.module("cli.hostgw", "--kubeconfig", kc, "--node-name", node["name"]),
        netns=node["netns"],
        log=logs / "hostgw.log",
    )
    if has_module("proxy"):
        procs["proxy"] = lab_procs.spawn(
            lab_procs.module(
                "proxy",
                "--kubeconfig",
                kc,
                "--hostname-override",
                node["name"],
                "--cluster-cidr",
                CLUSTER_CIDR,
            ),
            netns=node["netns"],
            log=logs / "proxy.log",
        )
    save_state(Path(state["state_dir"]), state)


def start_simulated(state: dict[str, Any], count: int, extra: list[str]) -> None:
    n1 = state["nodes"][0]
    state["simulated"] = lab_procs.spawn(
        lab_procs.module(
            "simnode",
            "--kubeconfig",
            str(admin_kubeconfig(state)),
            "--nodes",
            str(count),
            *extra,
        ),
        netns=n1["netns"],
        log=Path(state["state_dir"]) / "logs" / "simnode.log",
    )
    save_state(Path(state["state_dir"]), state)


def build_image(state: dict[str, Any]) -> None:
    r = subprocess.run(
        lab_procs.module("runtime.images", "--image-root", state["image_root"], "build-busybox"),
        capture_output=True,
        text=True,
    )
    if r.returncode:
        raise LabError(f"building the busybox image: {r.stderr.strip()[-300:]}")


def new_node(state: dict[str, Any], index: int) -> dict[str, Any]:
    name = f"lab-{index}"
    node = {
        "name": name,
        "index": index,
        "ip": lab_net.node_address(index),
        "netns": f"skiff-{state['id']}-{index}",
        "dir": str(Path(state["state_dir"]) / "nodes" / name),
        "agents": {},
    }
    state["nodes"].append(node)
    save_state(Path(state["state_dir"]), state)  # recorded before made: `down` finds it
    lab_net.add_node(state["labns"], node["netns"], f"n{index}", node["ip"])
    return node


def up(state_dir: Path, nodes: int, simulated: int, sim_args: list[str], timeout: float) -> int:
    if (state_dir / "lab.json").exists():
        state = load_state(state_dir)
        ready = node_readiness(state)
        print(
            f"skiff lab: a lab is already up in {state_dir}: "
            + ", ".join(
                f"{n} {'Ready' if s == 'True' else 'NotReady'}" for n, s in sorted(ready.items())
            )
            + "\n  (skiff lab down removes it)"
        )
        return 0
    if nodes < 1:
        raise LabError("--nodes must be at least 1")
    lab_id = uuid.uuid4().hex[:6]
    state_dir.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "id": lab_id,
        "state_dir": str(state_dir),
        "labns": f"skiff-lab-{lab_id}",
        "cgroup_root": f"/skiff-lab-{lab_id}",
        "control_plane_dir": str(state_dir / "control-plane"),
        "image_root": str(state_dir / "images"),
        "nodes": [],
        "created": time.time(),
    }
    save_state(state_dir, state)
    t0 = time.monotonic()
    try:
        lab_net.create_lab(state["labns"])
        for i in range(1, nodes + 1):
            new_node(state, i)
        print(f"skiff lab: {nodes} node namespaces on bridge lab0 ({lab_net.LAB_SUBNET})")
        # Independent steps side by side: the busybox image (built once for every node)
        # and the runtimes need no apiserver; the kubelets' certificates need its CA.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(2, nodes)) as pool:
            image = pool.submit(build_image, state)
            for node in state["nodes"]:
                start_runtime(state, node)
            start_control_plane(state)
            print(f"skiff lab: control plane up on lab-1 (https://{state['nodes'][0]['ip']}:6443)")
            wanted = has_module("kubelet") and has_module("kubelet.server")
            issued = [pool.submit(kubelet_certs, state, n) if wanted else None
                      for n in state["nodes"]]  # fmt: skip
            image.result()
            for node, certs in zip(state["nodes"], issued, strict=True):
                start_node_agents(state, node, certs.result() if certs else None)
        if simulated:
            start_simulated(state, simulated, sim_args)
        if has_module("kubelet"):
            want = {n["name"] for n in state["nodes"]}

            def all_ready() -> bool:
                ready = node_readiness(state)
                return all(ready.get(n) == "True" for n in want) and (
                    sum(1 for s in ready.values() if s == "True") >= len(want) + simulated
                )

            wait_for("every node Ready", all_ready, timeout)
    except BaseException:
        print(
            "skiff lab: bringing the lab up failed; logs in "
            f"{state_dir}/logs and {state_dir}/nodes/*/logs",
            file=sys.stderr,
        )
        raise
    took = time.monotonic() - t0
    print(
        f"skiff lab: {nodes} nodes Ready in {took:.1f} s"
        + (f" (+{simulated} simulated)" if simulated else "")
        + f"\n\n  skiff lab kubectl get nodes -o wide\n"
        f"  skiff lab kubectl apply -f {REPO / 'manifests' / 'demo'}\n"
        f"  skiff lab node stop lab-2      # watch its pods move\n"
        f"  skiff lab down\n\n"
        f"kubectl reaches the apiserver only inside the lab's network: `skiff lab kubectl`\n"
        f"runs it there (nsenter --net) with {admin_kubeconfig(state)}."
    )
    return 0


# -- stopping things ------------------------------------------------------------------------


def remove_pods(node: dict[str, Any]) -> None:
    """Ask a node's runtime to stop and remove every pod sandbox (their containers go too)."""
    sock = Path(node["dir"]) / "run" / "runtime.sock"
    if not sock.exists() or not lab_procs.is_ours(node.get("agents", {}).get("runtime", {})):
        return
    crictl = [*lab_procs.module("runtime.crictl", "--runtime-endpoint", str(sock))]
    listing = subprocess.run([*crictl, "pods"], capture_output=True, text=True, timeout=60)
    for line in listing.stdout.splitlines()[1:]:
        pod = line.split()[0]
        subprocess.run([*crictl, "stopp", pod], capture_output=True, timeout=60)
        subprocess.run([*crictl, "rmp", pod], capture_output=True, timeout=60)


def stop_agents(node: dict[str, Any], keep_pods: bool = True) -> None:
    agents = node.get("agents", {})
    lab_procs.stop([agents[a] for a in ("kubelet", "hostgw", "proxy") if a in agents])
    if not keep_pods:
        remove_pods(node)
    lab_procs.stop([agents["runtime"]] if "runtime" in agents else [])


def cgroup_dirs(root: str) -> list[Path]:
    """Every directory of the lab's cgroup root, in each mounted hierarchy (v1 or v2)."""
    base = Path("/sys/fs/cgroup")
    found = []
    candidates = [base / root.lstrip("/")]
    with contextlib.suppress(OSError):
        candidates += [h / root.lstrip("/") for h in base.iterdir() if h.is_dir()]
    for top in candidates:
        if top.is_dir():
            found += [Path(p) for p, _, _ in os.walk(top)]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def remove_cgroups(root: str) -> list[str]:
    left = []
    for d in cgroup_dirs(root):
        for procs in ("cgroup.procs",):
            with contextlib.suppress(OSError):
                lab_procs.kill_pids([int(p) for p in (d / procs).read_text().split()])
    for _ in range(50):
        left = []
        for d in cgroup_dirs(root):
            try:
                d.rmdir()
            except OSError:
                left.append(str(d))
        if not left:
            return []
        time.sleep(0.1)
    return left


def mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].encode().decode("unicode_escape")
        if target == prefix or target.startswith(prefix + "/"):
            found.append(target)
    return sorted(set(found), key=len, reverse=True)


def down(state_dir: Path) -> int:
    state = load_state(state_dir)
    lab_procs.stop([state["simulated"]] if state.get("simulated") else [])
    for node in state["nodes"]:  # a control plane joined with `skiff lab join --control-plane`
        if node.get("control_plane"):  # its own supervisor stops its components and pods
            preexec = lab_net.preexec_in(node["netns"])
            try:
                subprocess.run(lab_procs.module("cli", "down", "--state-dir", node["dir"]),
                               preexec_fn=preexec, capture_output=True, timeout=120)  # fmt: skip
            except subprocess.TimeoutExpired:
                pass  # what it left is killed below with everything in the namespaces
            finally:
                lab_net.close_preexec(preexec)
    # Every node at once: the agents, then (their kubelets gone) the pods, then the runtimes.
    agents = [n.get("agents", {}) for n in state["nodes"]]
    lab_procs.stop([a[k] for a in agents for k in ("kubelet", "hostgw", "proxy") if k in a])
    for node in state["nodes"]:
        remove_pods(node)
    lab_procs.stop([a["runtime"] for a in agents if "runtime" in a])
    cp = state.get("control_plane", {})
    lab_procs.stop([cp[c] for c in ("scheduler", "controller-manager", "dns") if c in cp])
    # (the apiserver stops its embedded etcd; one left by a killed apiserver is
    # caught below, with everything else still in the lab's namespaces)
    lab_procs.stop([cp["apiserver"]] if "apiserver" in cp else [])
    names = [n["netns"] for n in state["nodes"]] + [state["labns"]]
    # Whatever still runs in the lab's namespaces (a shim, an etcd whose apiserver
    # was killed) was started by the lab: nothing else can be in them.
    for _ in range(3):
        left = lab_procs.pids_in_netns(names)
        if not left:
            break
        lab_procs.kill_pids(left)
        time.sleep(0.2)
    problems = remove_cgroups(state["cgroup_root"])
    for target in mounts_under(state_dir):
        r = subprocess.run(["umount", target], capture_output=True, text=True)
        if r.returncode:
            subprocess.run(["umount", "-l", target], capture_output=True)
    for name in names:
        try:
            lab_net.remove(name)
        except lab_net.NetError as e:
            problems.append(str(e))
    if mounts_under(state_dir):
        problems += mounts_under(state_dir)
    else:
        shutil.rmtree(state_dir, ignore_errors=True)
    if problems:
        print("skiff lab: removed the lab, except: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"skiff lab: removed {len(state['nodes'])} nodes and everything they ran")
    return 0


def find_node(state: dict[str, Any], name: str) -> dict[str, Any]:
    for node in state["nodes"]:
        if node["name"] == name:
            return node
    raise LabError(
        f"no node {name!r} in this lab (nodes: "
        + ", ".join(n["name"] for n in state["nodes"])
        + ")"
    )


def node_cmd(state_dir: Path, action: str, name: str) -> int:
    state = load_state(state_dir)
    node = find_node(state, name)
    running = [a for a, rec in node.get("agents", {}).items() if lab_procs.is_ours(rec)]
    if action == "stop":
        if not running:
            print(f"skiff lab: {name}'s agents are not running")
            return 0
        stop_agents(node, keep_pods=True)
        save_state(state_dir, state)
        print(
            f"skiff lab: stopped {name}'s agents ({', '.join(sorted(running))}); its "
            "containers keep running, the cluster will mark it NotReady"
        )
        return 0
    if running:
        print(f"skiff lab: {name}'s agents are running ({', '.join(sorted(running))})")
        return 0
    start_agents(state, node)
    print(f"skiff lab: started {name}'s agents")
    return 0


def kubectl(state_dir: Path, args: list[str]) -> int:
    state = load_state(state_dir)
    argv = [
        *lab_net.nsenter(state["nodes"][0]["netns"]),
        kubectl_binary(),
        "--kubeconfig",
        str(admin_kubeconfig(state)),
        *args,
    ]
    os.execvp(argv[0], argv)
    return 127  # not reached


def shell(state_dir: Path, name: str) -> int:
    state = load_state(state_dir)
    node = find_node(state, name or state["nodes"][0]["name"])
    env = {**os.environ, "KUBECONFIG": str(admin_kubeconfig(state))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    argv = [*lab_net.nsenter(node["netns"]), os.environ.get("SHELL", "/bin/sh")]
    os.execvpe(argv[0], argv, env)
    return 127


# -- the command line -----------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff lab", description=__doc__.split("\n")[0])
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="default %(default)s")
    sub = p.add_subparsers(dest="command", required=True)
    u = sub.add_parser("up", help="build the lab and wait until every node is Ready")
    u.add_argument("--nodes", type=int, default=3)
    u.add_argument("--simulated-nodes", type=int, default=0, help="kwok-style nodes, no containers")
    u.add_argument("--pod-ready-delay", type=float, default=1.0, help="simulated pods: seconds")
    u.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Ready")
    sub.add_parser("down", help="remove the lab: processes, namespaces, mounts, cgroups, state")
    n = sub.add_parser("node", help="stop or start one node's agents")
    n.add_argument("action", choices=["stop", "start"])
    n.add_argument("name")
    k = sub.add_parser("kubectl", help="kubectl inside the lab's network")
    k.add_argument("args", nargs=argparse.REMAINDER)
    s = sub.add_parser("shell", help="a shell in a node's network namespace, KUBECONFIG set")
    s.add_argument("name", nargs="?", default="")
    r = sub.add_parser("restart", help="stop and start one control-plane component")
    r.add_argument("component", choices=CONTROL_PLANE)
    r.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    t = sub.add_parser("token", help="bootstrap tokens for `skiff join` (see skiff token)")
    t.add_argument("args", nargs=argparse.REMAINDER)
    j = sub.add_parser("join", help="add a node namespace and join it with a token")
    j.add_argument("args", nargs=argparse.REMAINDER)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    passthrough = next((w for w in argv if w in ("kubectl", "token", "join")), None)
    if passthrough is not None and argv[: argv.index(passthrough)] in (
        [],
        ["--state-dir", *argv[1:2]],
    ):
        # everything after the command is its own (kubectl's, token's, join's), flags included
        i = argv.index(passthrough)
        a = parse(argv[: i + 1])
        from . import lab_join

        try:
            if passthrough == "kubectl":
                return kubectl(a.state_dir, argv[i + 1 :])
            return lab_join.lab_main(a.state_dir, passthrough, argv[i + 1 :])
        except (LabError, lab_net.NetError) as e:
            print(f"skiff lab: {e}", file=sys.stderr)
            return 1
    a = parse(argv)
    try:
        if a.command == "up":
            return up(
                a.state_dir,
                a.nodes,
                a.simulated_nodes,
                ["--pod-ready-delay", str(a.pod_ready_delay)],
                a.timeout,
            )
        if a.command == "down":
            return down(a.state_dir)
        if a.command == "node":
            return node_cmd(a.state_dir, a.action, a.name)
        if a.command == "restart":
            return restart(a.state_dir, a.component, a.kill)
        if a.command == "shell":
            return shell(a.state_dir, a.name)
        if a.command in ("token", "join"):
            from . import lab_join

            return lab_join.lab_main(a.state_dir, a.command, a.args)
    except (LabError, lab_net.NetError) as e:
        print(f"skiff lab: {e}", file=sys.stderr)
        return 1
    return 2
