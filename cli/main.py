"""The `skiff` command.

Two kinds of commands. The node's life cycle (`up`, `status`, `down`,
`reset`, `install-service`, `etcd`) is Python in cli/: up.py, the component
table in components.py and supervisor.py show how a node is put together.

Each cluster component runs as its own process, as in Kubernetes, so that any
one of them can be stopped and restarted while the others carry on.
`skiff <component>` therefore replaces itself with that component's process
(`python -m <component>`) rather than importing it: the CLI depends only on
`api/` and `client/`, as the architecture's import rules say.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

COMPONENTS = {
    "apiserver": ("apiserver", "the API server (etcd, HTTPS, the Kubernetes REST API)"),
    "runtime": ("runtime.daemon", "the container runtime daemon (CRI-like gRPC on a unix socket)"),
    "scheduler": ("scheduler", "puts pending pods on nodes (filters, scores, binding)"),
    "crictl": (
        "runtime.crictl",
        "look into the node's pods and containers: pods, ps, logs, exec, inspect, stop, rm",
    ),
    "image": (
        "runtime.images",
        "the node's images: load (docker save / OCI archives), ls, inspect, rm, pull, "
        "build-busybox",
    ),
    "kubelet": (
        "kubelet",
        "the node agent: registers the node and runs the pods bound to it",
    ),
    "proxy": ("proxy", "this node's Services in iptables (kube-proxy's iptables mode)"),
    "dns": ("proxy.dns", "cluster DNS: <svc>.<ns>.svc.cluster.local, pods, SRV, forwarding"),
    "controller-manager": (
        "controllers",
        "the control loops (ReplicaSet, garbage collector, namespaces, service accounts)",
    ),
    "identities": (
        "apiserver.identities",
        "kubeconfigs signed by the cluster CA: `node NAME` (a kubelet), `user NAME` (a person)",
    ),
}


def _lab(argv: list[str]) -> int:
    from . import lab

    return lab.main(argv)


def _token(argv: list[str]) -> int:
    from . import token

    return token.main(argv)


def _join(argv: list[str]) -> int:
    from . import join

    return join.main(argv)


def _up(argv: list[str]) -> int:
    from . import up

    return up.main(argv)


def _status(argv: list[str]) -> int:
    from . import status

    return status.main(argv)


def _down(argv: list[str]) -> int:
    from . import down

    return down.main(argv, full_reset=False)


def _reset(argv: list[str]) -> int:
    from . import down

    return down.main(argv, full_reset=True)


def _install_service(argv: list[str]) -> int:
    from . import service

    return service.main(argv)


def _etcd(argv: list[str]) -> int:
    from . import etcd

    return etcd.main(argv)


def _dashboard(argv: list[str]) -> int:
    from . import dashboard

    return dashboard.main(argv)


def _trace(argv: list[str]) -> int:
    from . import trace

    return trace.main(argv)


def _loop(argv: list[str]) -> int:
    from . import loop

    return loop.main(argv)


def _explain(argv: list[str]) -> int:
    from . import explain

    return explain.main(argv)


LIFECYCLE: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "up": (_up, "make this machine a node: start and supervise every component"),
    "status": (_status, "each component: running, pid, healthy, since when"),
    "down": (_down, "stop the pods and components `up` started (the state stays)"),
    "reset": (_reset, "down, then remove everything skiff made on this machine"),
    "install-service": (_install_service, "a systemd unit that runs `skiff up` at boot"),
    "etcd": (_etcd, "etcd snapshot save FILE | restore FILE"),
    "token": (_token, "bootstrap tokens for joining nodes: create, list, delete"),
    "join": (_join, "join this machine to a cluster with a bootstrap token"),
    "lab": (_lab, "several nodes on this machine in network namespaces: up, down, node, kubectl"),
    "dashboard": (_dashboard, "a live web view of the cluster on 127.0.0.1:8001"),
    "trace": (_trace, "what each control loop saw, wanted and did: [-w] [--object kind/name]"),
    "explain": (_explain, "why deployment/NAME or pod/NAME is as it is (causal chain, scheduling)"),
    "loop": (_loop, "slow motion for every loop: slow 2s | pause | step | resume [--only NAME]"),
}


def usage() -> str:
    lines = ["usage: skiff <command> [flags]", "", "cluster life cycle:"]
    lines += [f"  {name:<19} {desc}" for name, (_, desc) in LIFECYCLE.items()]
    lines += ["", "components and node tools:"]
    lines += [f"  {name:<19} {desc}" for name, (_, desc) in COMPONENTS.items()]
    lines.append("\n`skiff <command> --help` shows a command's flags.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in LIFECYCLE:
        try:
            return LIFECYCLE[command][0](rest)
        except BrokenPipeError:  # `skiff status | head`: the reader has seen enough
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    if command in COMPONENTS:
        module = COMPONENTS[command][0]
        os.execv(sys.executable, [sys.executable, "-m", module, *rest])
    print(f"skiff: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
