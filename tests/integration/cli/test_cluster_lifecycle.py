"""`skiff up`, `status`, `down`, `reset` on a real node, as a user runs them.

One node for the module (conftest.py), taken through its life in order: up
and Ready with a pod running, status, a killed component brought back, up
again is harmless, down stops everything (pods included) and keeps the state,
up brings the same cluster back, reset leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import NODE, Node, wait_for

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "hello"},
    "spec": {
        "containers": [
            {
                "name": "hello",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["httpd", "-f", "-p", "8080"],
                # A hostPort makes the runtime add its iptables chain, which reset must remove.
                "ports": [{"containerPort": 8080, "hostPort": 18080}],
            }
        ]
    },
}


def pod_phase(node: Node) -> str:
    with node.api() as api:
        r = api.get("/api/v1/namespaces/default/pods/hello")
    return str(r.json().get("status", {}).get("phase", "")) if r.status_code == 200 else ""


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_up_brings_the_node_ready_and_runs_a_pod(node: Node) -> None:
    assert node.node_ready()
    with node.api() as api:
        r = api.post("/api/v1/namespaces/default/pods", json=POD)
        assert r.status_code == 201, r.text
    wait_for(lambda: pod_phase(node) == "Running", "the pod to run")
    # kubectl exec goes apiserver -> kubelet over HTTPS: the serving certificate `up`
    # issued from the cluster CA, and the CA the kubelet checks callers against.
    kubectl = shutil.which("kubectl") or str(Path(sys.executable).parent / "kubectl")
    env = {**os.environ, "KUBECONFIG": str(node.state / "admin.kubeconfig")}
    r = subprocess.run([kubectl, "exec", "hello", "--", "hostname"], capture_output=True,
                       text=True, timeout=60, check=False, env=env)  # fmt: skip
    assert (r.returncode, r.stdout.strip()) == (0, "hello"), r.stderr
    assert (node.state / "logs" / "kubelet.log").exists()
    assert (node.state / "skiff.pid").read_text().strip() == str(node.supervisor.pid)  # type: ignore[union-attr]


def test_status_lists_every_component_running_and_healthy(node: Node) -> None:
    out = wait_for(
        lambda: (o := node.skiff("status", *node.flags(), check=False)) and
        all(f"{c}" in o for c in ("kubelet", "runtime")) and
        o.count(" yes ") >= 6 and o,
        "every component healthy",
    )  # fmt: skip
    rows = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    for name in ("apiserver", "etcd", "controller-manager", "scheduler", "runtime", "kubelet"):
        assert "running" in rows[name] and " yes " in rows[name], out


def test_up_is_done_only_once_cluster_dns_answers(node: Node) -> None:
    """`up` waits for DNS too: once the supervisor says it is ready, a query for the
    kubernetes Service on the node's address gets the Service's ClusterIP."""
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    status = wait_for(
        lambda: (s := json.loads((node.state / "components.json").read_text()))
        ["supervisor"]["ready"] and s,
        "skiff up to be done",
    )  # fmt: skip
    query = dns.message.make_query("kubernetes.default.svc.cluster.local", dns.rdatatype.A)
    reply = dns.query.udp(query, "127.0.0.1", port=53, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR, reply
    with node.api() as api:
        cluster_ip = api.get("/api/v1/namespaces/default/services/kubernetes").json()[
            "spec"]["clusterIP"]  # fmt: skip
    assert [r.address for a in reply.answer for r in a] == [cluster_ip]
    assert status["supervisor"]["waiting"] == ""
    out = node.skiff("status", *node.flags())
    dns_row = next(line for line in out.splitlines() if line.split()[:1] == ["dns"])
    assert "running" in dns_row and " yes " in dns_row, out


def test_up_again_says_what_is_up_and_changes_nothing(node: Node) -> None:
    before = node.components()
    out = node.skiff("up", *node.flags())
    assert f"skiff is already up (supervisor pid {node.supervisor.pid})" in out  # type: ignore[union-attr]
    assert node.components() == before


def test_a_killed_component_is_started_again(node: Node) -> None:
    old = node.components()["scheduler"]["pid"]
    os.kill(old, signal.SIGKILL)
    wait_for(
        lambda: (c := node.components()["scheduler"])["pid"] not in (None, old) and
        c["restarts"] == 1, "the scheduler to be started again",
    )  # fmt: skip
    assert running(node.components()["scheduler"]["pid"])
    log = (node.state / "logs" / "supervisor.log").read_text()
    assert f"scheduler (pid {old}) exited with code -9" in log


def test_etcd_snapshot_is_saved_while_up_and_restore_refuses(node: Node) -> None:
    snapshot = node.base / "backup.db"
    out = node.skiff("etcd", "snapshot", "save", str(snapshot), *node.flags())
    assert f"saved a snapshot of the cluster's etcd to {snapshot}" in out
    assert snapshot.stat().st_size > 0
    out = node.skiff("etcd", "snapshot", "restore", str(snapshot), *node.flags(), check=False)
    assert "skiff is up; run skiff down first" in out
    # Written after the snapshot: the restore below must take it away again.
    with node.api() as api:
        r = api.post("/api/v1/namespaces/default/configmaps",
                     json={"metadata": {"name": "after-snapshot"}, "data": {"a": "b"}})  # fmt: skip
        assert r.status_code == 201, r.text


async def _alarm(node: Node, raise_it: bool) -> None:
    """Raise or disarm NOSPACE on the embedded etcd, as etcd does itself at its quota."""
    import aetcd

    port = json.loads((node.state / "etcd-ports.json").read_text())["client"]
    pki = node.state / "pki"
    if (pki / "etcd" / "ca.crt").exists():  # etcd over TLS with client certificates
        from apiserver.storage import ClientTLS, make_client  # type: ignore[attr-defined]

        tls = ClientTLS(pki / "etcd" / "ca.crt", pki / "apiserver-etcd-client.crt",
                        pki / "apiserver-etcd-client.key")  # fmt: skip
        client = make_client(f"https://127.0.0.1:{port}", tls, 10)
    else:
        client = aetcd.Client(host="127.0.0.1", port=port, timeout=10)
    try:
        await client.connect()
        await (client.create_alarm() if raise_it else client.disarm_alarm())
    finally:
        await client.close()


def test_nospace_is_reported_by_status_and_in_the_apiserver_log(node: Node) -> None:
    import asyncio

    asyncio.run(_alarm(node, True))
    try:
        out = node.skiff("status", *node.flags(), check=False)
        etcd_row = next(line for line in out.splitlines() if line.startswith("etcd"))
        assert "no: alarm NOSPACE" in etcd_row, out
        assert "etcd raised NOSPACE" in out
        log = node.state / "logs" / "apiserver.log"
        wait_for(lambda: "etcd raised NOSPACE" in log.read_text(), "NOSPACE in the apiserver log")
    finally:
        asyncio.run(_alarm(node, False))
    out = node.skiff("status", *node.flags(), check=False)
    assert "NOSPACE" not in out


def test_down_stops_every_process_and_pod_and_keeps_the_state(node: Node) -> None:
    pids = [c["pid"] for c in node.components().values()]
    out = node.skiff("down", *node.flags())
    assert "stopped the node's pods and components" in out
    assert node.supervisor is not None
    assert node.supervisor.wait(30) == 0, node.output()
    assert not [p for p in pids if running(p)]
    assert node.processes() == [], "processes (components or shims) left after down"
    assert str(node.base) not in Path("/proc/self/mounts").read_text(), "mounts left after down"
    assert (node.state / "admin.kubeconfig").exists() and (node.state / "etcd").is_dir()
    assert not (node.state / "skiff.pid").exists()
    out = node.skiff("status", *node.flags(), check=False)
    assert "supervisor: not running" in out


def test_restore_while_down_puts_back_the_snapshot(node: Node) -> None:
    out = node.skiff("etcd", "snapshot", "restore", str(node.base / "backup.db"), *node.flags())
    assert "skiff up starts the restored cluster" in out, out
    assert list(node.state.glob("etcd.before-restore-*"))


def test_up_brings_the_same_cluster_back(node: Node) -> None:
    out = node.skiff("up", *node.flags())  # detached this time: returns once Ready
    assert f"skiff is up: node {NODE} is Ready" in out, out
    assert "export KUBECONFIG=" in out
    wait_for(lambda: pod_phase(node) == "Running", "the pod to run again")
    with node.api() as api:  # the cluster as the snapshot had it
        assert api.get("/api/v1/namespaces/default/configmaps/after-snapshot").status_code == 404
    chains = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    assert "-N SKIFF-HOSTPORTS" in chains.stdout


def test_up_refuses_an_address_another_node_has(node: Node) -> None:
    """As two VirtualBox VMs with the same NAT address would: the second is refused."""
    with node.api() as api:
        r = api.post("/api/v1/nodes", json={"metadata": {"name": "imposter"}})
        assert r.status_code == 201, r.text
        r = api.patch(
            "/api/v1/nodes/imposter/status",
            json={"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 200, r.text
    node.skiff("down", *node.flags())
    out = node.skiff("up", *node.flags(), check=False)
    assert "skiff up: address 127.0.0.1 is already the InternalIP of node 'imposter'" in out, out
    assert "--node-ip" in out
    assert node.processes() == []


def test_reset_leaves_no_link_mount_cgroup_chain_or_process(node: Node) -> None:
    layout = json.loads((node.state / "cluster.json").read_text())
    out = node.skiff("reset", *node.flags())
    assert "reset done" in out, out
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True).stdout
    assert [link["ifname"] for link in json.loads(links)] == ["lo"]
    mounts = Path("/proc/self/mounts").read_text()
    assert str(node.base) not in mounts
    cgroups = [d / layout["cgroup_root"].strip("/") for d in Path("/sys/fs/cgroup").iterdir()]
    assert [str(c) for c in cgroups if c.exists()] == []
    for table in ("nat", "filter"):
        rules = subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True)
        assert "SKIFF-" not in rules.stdout, rules.stdout
    assert node.processes() == []
    assert not node.state.exists() and not node.run_dir.exists()
    assert not (node.base / "pods").exists()
