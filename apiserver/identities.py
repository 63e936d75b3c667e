"""Every component with its own identity: client certificates and kubeconfigs.

Kubernetes names a client by its certificate's Common Name and groups by its
Organization fields; RBAC then binds each name to its role. The apiserver
writes, once, under the state directory:

    pki/<component>.crt|key              signed by the cluster CA
    kubeconfigs/scheduler.kubeconfig          CN system:kube-scheduler
    kubeconfigs/controller-manager.kubeconfig CN system:kube-controller-manager
    kubeconfigs/kube-proxy.kubeconfig         CN system:kube-proxy
    kubeconfigs/dns.kubeconfig                CN system:skiff:dns
    kubeconfigs/kubelet.kubeconfig            CN system:node:<this node>, O system:nodes

Only admin.kubeconfig is `system:masters`. For another node or a person:

    python -m apiserver.identities --state-dir /var/lib/skiff node worker-2
    python -m apiserver.identities --state-dir /var/lib/skiff user jane --out jane.kubeconfig

A user's kubeconfig grants nothing until a binding does, e.g.
`kubectl create clusterrolebinding jane-view --clusterrole=view --user=jane`.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys
from pathlib import Path

import yaml

from . import certs

COMPONENTS = {
    "scheduler": ("system:kube-scheduler", ()),
    "controller-manager": ("system:kube-controller-manager", ()),
    "kube-proxy": ("system:kube-proxy", ()),
    "dns": ("system:skiff:dns", ()),
}
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
SAFE = re.compile(r"[^A-Za-z0-9._-]")


def local_node_name() -> str:
    """The kubelet's default node name: the hostname, lower-cased."""
    return socket.gethostname().lower()


def kubeconfig_dir(state_dir: Path) -> Path:
    return state_dir / "kubeconfigs"


def _write(
    state_dir: Path, server: str, file: str, pki_name: str, user: str, groups: tuple[str, ...]
) -> Path:
    pki = state_dir / "pki"
    ca = certs.ensure_ca(pki)
    pair = certs.ensure_client_cert(pki, ca, pki_name, user, groups)
    path = kubeconfig_dir(state_dir) / file
    return certs.write_kubeconfig(path, server=server, ca=ca.cert, user=user, client=pair)


def node_kubeconfig(state_dir: Path, server: str, node: str, out: Path | None = None) -> Path:
    safe = SAFE.sub("-", node)
    path = _write(
        state_dir, server, f"kubelet-{safe}.kubeconfig", f"kubelet-{safe}",
        NODE_PREFIX + node, (NODES_GROUP,),
    )  # fmt: skip
    if out is not None:
        out.write_bytes(path.read_bytes())
        out.chmod(0o600)
        return out
    return path


def ensure_components(state_dir: Path, server: str, node: str) -> dict[str, Path]:
    """Kubeconfigs for the control-plane components and the local node's kubelet."""
    made = {
        name: _write(state_dir, server, f"{name}.kubeconfig", name, user, groups)
        for name, (user, groups) in COMPONENTS.items()
    }
    local = node_kubeconfig(state_dir, server, node)
    kubelet = kubeconfig_dir(state_dir) / "kubelet.kubeconfig"
    kubelet.write_bytes(local.read_bytes())
    kubelet.chmod(0o600)
    made["kubelet"] = kubelet
    return made


def _server_of(state_dir: Path) -> str:
    config = yaml.safe_load((state_dir / "admin.kubeconfig").read_text())
    return str(config["clusters"][0]["cluster"]["server"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m apiserver.identities", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/skiff"))
    p.add_argument("--server", default="", help="apiserver URL (default: admin.kubeconfig's)")
    sub = p.add_subparsers(dest="what", required=True)
    n = sub.add_parser("node", help="a kubelet's kubeconfig: system:node:<name>, system:nodes")
    n.add_argument("name")
    n.add_argument("--out", type=Path)
    u = sub.add_parser("user", help="a person's kubeconfig (no rights until bound)")
    u.add_argument("name")
    u.add_argument("--group", action="append", default=[])
    u.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    if a.name.startswith("system:") and a.what == "user":
        p.error("user names starting with system: are reserved for components")
    if "system:masters" in getattr(a, "group", []):
        p.error("system:masters is for admin.kubeconfig only; bind cluster-admin instead")
    try:
        server = a.server or _server_of(a.state_dir)
        if a.what == "node":
            path = node_kubeconfig(a.state_dir, server, a.name, a.out)
        else:
            safe = SAFE.sub("-", a.name)
            path = _write(a.state_dir, server, f"user-{safe}.kubeconfig", f"user-{safe}",
                          a.name, tuple(a.group))  # fmt: skip
            if a.out is not None:
                a.out.write_bytes(path.read_bytes())
                a.out.chmod(0o600)
                path = a.out
    except (OSError, KeyError, yaml.YAMLError) as e:
        print(f"identities: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"kubeconfig": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
