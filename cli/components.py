"""What `skiff up` runs on this machine, in start order: one row per component.

This table is the one place that says how a skiff node is put together, as
k3s's server says it for k3s. Adding a component (the service proxy, DNS) is
one more row: which module runs, with which flags, when it counts as ready,
which components it needs ready before it starts, and what must be done
before each start and on `skiff down`.

The scheduler, the controller-manager, the proxy and the kubelet run with
identities of their own (client certificates from the cluster CA, bound to
system:kube-scheduler, system:kube-controller-manager, system:node-proxier and,
for the kubelet, system:node:<name> in group system:nodes, as kubeadm does);
DNS runs as system:skiff:dns. Only admin.kubeconfig is system:masters.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from . import health, node_identity
from .layout import Layout
from .mounts import unmount_under
from .supervisor import Component, Refused


def _python_m(*argv: str) -> subprocess.CompletedProcess[str]:
    """A one-shot run of a component's own command (the CLI does not import components)."""
    return subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                          check=False)  # fmt: skip


# -- flags of each component ------------------------------------------------------------------


def apiserver_args(s: Layout) -> list[str]:
    args = ["--state-dir", str(s.state_dir), "--secure-port", str(s.secure_port),
            "--advertise-address", s.advertise_address]  # fmt: skip
    if s.etcd_servers:
        return [*args, "--etcd-servers", s.etcd_servers, *etcd_client_cert_args(s)]
    if s.etcd_initial_cluster:
        args += ["--etcd-name", s.etcd_name or s.node_name,
                 "--etcd-initial-cluster", s.etcd_initial_cluster,
                 "--etcd-initial-cluster-state", s.etcd_initial_cluster_state or "new"]  # fmt: skip
    return args


def etcd_client_cert_args(s: Layout) -> list[str]:
    """An https etcd wants the client certificate kubeadm names
    pki/apiserver-etcd-client.* and etcd's CA, when they are in this state dir
    (a machine joined with `skiff join --control-plane` has them)."""
    pki = s.state_dir / "pki"
    cert, key, ca = (pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key",
                     pki / "etcd" / "ca.crt")  # fmt: skip
    if not (s.etcd_servers.startswith("https://") and cert.exists() and key.exists()):
        return []
    return ["--etcd-cafile", str(ca), "--etcd-certfile", str(cert), "--etcd-keyfile", str(key)]


def kubeconfig_args(s: Layout) -> list[str]:
    return ["--kubeconfig", str(s.kubeconfig)]


def own_kubeconfig(name: str) -> Callable[[Layout], list[str]]:
    """`--kubeconfig` of a component's own identity (apiserver/identities.py)."""

    def args(s: Layout) -> list[str]:
        return ["--kubeconfig", str(s.state_dir / "kubeconfigs" / f"{name}.kubeconfig")]

    return args


def proxy_args(s: Layout) -> list[str]:
    return [
        *own_kubeconfig("kube-proxy")(s),
        "--hostname-override",
        s.node_name,
        "--proxy-mode",
        s.proxy_mode,
    ]


def dns_args(s: Layout) -> list[str]:
    """DNS answers on the node's address; kube-dns' EndpointSlice points pods at it."""
    return [*own_kubeconfig("dns")(s), "--node-name", s.node_name,
            "--advertise-address", s.node_ip]  # fmt: skip


def runtime_args(s: Layout) -> list[str]:
    return [
        "--socket", str(s.runtime_socket),
        "--state-dir", str(s.state_dir / "runtime"),
        "--run-dir", str(s.run_dir),
        "--image-root", str(s.state_dir / "images"),
        "--cgroup-root", s.cgroup_root,
    ]  # fmt: skip


def kubelet_cert_dir(s: Layout) -> Path:
    return s.pki / "kubelet"


def kubelet_kubeconfig(s: Layout) -> Path:
    """The node's own identity, system:node:<name> (made in `node_checks_and_cert`)."""
    return kubelet_cert_dir(s) / "kubelet.kubeconfig"


def kubelet_args(s: Layout) -> list[str]:
    certs = kubelet_cert_dir(s)
    return [
        "--kubeconfig", str(kubelet_kubeconfig(s)),
        "--node-name", s.node_name,
        "--node-ip", s.node_ip,
        "--runtime-endpoint", str(s.runtime_socket),
        "--root-dir", str(s.state_dir / "kubelet"),
        "--log-dir", str(s.pod_log_dir),
        "--pod-manifest-path", str(s.state_dir / "manifests"),
        "--tls-cert-file", str(certs / "kubelet.crt"),
        "--tls-private-key-file", str(certs / "kubelet.key"),
        "--client-ca-file", str(s.pki / "ca.crt"),
    ]  # fmt: skip


# -- what is done before a start, and on `skiff down` ---------------------------------------


def busybox_image(s: Layout) -> None:
    """The runtime's image store has busybox (built offline from busybox-static)."""
    store = ["runtime.images", "--image-root", str(s.state_dir / "images")]
    if _python_m(*store, "inspect", "busybox").returncode == 0:
        return
    built = _python_m(*store, "build-busybox")
    if built.returncode != 0:
        raise Refused(f"could not build the busybox image: {built.stderr.strip()[-300:]} "
                      "(apt-get install busybox-static)")  # fmt: skip


def runtime_prepare(s: Layout) -> None:
    """A socket no daemon accepts on is a dead runtime's (the new one must not be taken
    for ready before it listens); the image store has busybox."""
    if s.runtime_socket.exists() and health.socket_accepts(s.runtime_socket):
        s.runtime_socket.unlink()
    (s.state_dir / "images").mkdir(parents=True, exist_ok=True)
    busybox_image(s)


def remove_pods(s: Layout) -> None:
    """`skiff down`: remove every pod sandbox through the runtime (containers, shims,
    network and cgroups go with them), once the kubelet is stopped."""
    crictl = ["runtime.crictl", "--runtime-endpoint", str(s.runtime_socket)]
    listing = _python_m(*crictl, "pods")
    for line in listing.stdout.splitlines()[1:]:
        pod_id = line.split()[0]
        removed = _python_m(*crictl, "rmp", pod_id)
        if removed.returncode != 0:
            raise Refused(f"removing pod {pod_id}: {removed.stderr.strip()}")
    # The pods' volumes (tmpfs, binds): the kubelet, stopped first, cannot unmount them now;
    # it mounts them again for the pods it starts after the next `up`.
    unmount_under([s.state_dir / "kubelet" / "pods"])


def node_checks_and_cert(s: Layout) -> None:
    """Before the kubelet: the name and address are ours to use, and it has a serving
    certificate from the cluster CA (the apiserver made the CA; it is running now)."""
    nodes = (health.get(s, "/api/v1/nodes") or {}).get("items") or []
    refusal = node_identity.decide_conflicts(
        nodes, node_name=s.node_name, node_ip=s.node_ip, machine=node_identity.machine_id()
    )
    if refusal:
        raise Refused(refusal)
    certs = kubelet_cert_dir(s)
    issued_for = certs / "issued-for"  # reissue when the node's name or address changed
    wanted = f"{s.node_name} {s.node_ip}\n"
    if (
        (certs / "kubelet.crt").exists()
        and kubelet_kubeconfig(s).exists()
        and issued_for.exists()
        and issued_for.read_text() == wanted
    ):
        return
    certs.mkdir(parents=True, exist_ok=True)
    identity = _python_m("apiserver.identities", "--state-dir", str(s.state_dir),
                         "node", s.node_name, "--out", str(kubelet_kubeconfig(s)))  # fmt: skip
    if identity.returncode != 0:
        raise Refused(f"could not make the kubelet's identity: {identity.stderr.strip()}")
    issued = _python_m("apiserver.kubelet_certs", "serving", "--state-dir", str(s.state_dir),
                       "--node", s.node_name, "--ip", s.node_ip, "--out", str(certs))  # fmt: skip
    if issued.returncode != 0:
        raise Refused(f"could not issue the kubelet's certificate: {issued.stderr.strip()}")
    issued_for.write_text(wanted)


def started(_: Layout) -> str:
    """Ready as soon as it runs: nothing after it waits for it."""
    return ""


# -- the table ----------------------------------------------------------------------------------

COMPONENTS: list[Component] = [
    Component("apiserver", "apiserver", apiserver_args, health.apiserver,
              describe="the Kubernetes API (runs the embedded etcd unless --etcd-servers)"),
    Component("runtime", "runtime.daemon", runtime_args,
              lambda s: health.socket_accepts(s.runtime_socket),
              prepare=runtime_prepare, on_down=remove_pods,
              describe="the container runtime (images, sandboxes, containers)"),
    Component("controller-manager", "controllers", own_kubeconfig("controller-manager"), started,
              needs=("apiserver",),
              describe="the control loops (Deployments, ReplicaSets, nodes and their pod CIDRs)"),
    Component("scheduler", "scheduler", own_kubeconfig("scheduler"), started, needs=("apiserver",),
              describe="puts pending pods on nodes"),
    Component("kubelet", "kubelet", kubelet_args, health.node_ready,
              needs=("apiserver", "runtime"), prepare=node_checks_and_cert,
              describe="the node agent: registers the Node, runs its pods"),
    Component("proxy", "proxy", proxy_args, started, needs=("apiserver",),
              describe="this node's Services in iptables or nftables (as kube-proxy)"),
    Component("dns", "proxy.dns", dns_args, health.cluster_dns, needs=("apiserver",),
              describe="cluster DNS at 10.96.0.10: <svc>.<ns>.svc.cluster.local"),
]  # fmt: skip


def healthy(name: str, s: Layout) -> str:
    """`skiff status`'s health column: "" when healthy, else why not."""
    if name == "controller-manager":
        return health.leader_lease(s, "kube-controller-manager")
    if name == "scheduler":
        return health.leader_lease(s, "kube-scheduler")
    for c in COMPONENTS:
        if c.name == name:
            return c.ready(s)
    return "unknown component"
