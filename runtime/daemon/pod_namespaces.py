"""A pod's network, IPC and UTS namespaces, shared by its containers as Kubernetes does.

Kubernetes keeps them in the pause container; skiff keeps them the way it keeps
the network namespace (runtime/network/netns.py): bind-mounted on a file, so
that no process has to stay in them. util-linux's `unshare --net=FILE
--ipc=FILE --uts=FILE` makes all three in one child process (the daemon does
not fork) and sets the pod's hostname in the new UTS namespace: one process per
sandbox, not one per namespace, which is what 30 sandboxes started at once wait
for (docs/benchmarks.md). A pod with hostIPC uses the node's IPC namespace; with
hostNetwork, the node's network and UTS namespaces (and hostname), as on
Kubernetes.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

from runtime.network.netns import remove_netns


def create(ipc: Path | None, uts: Path | None, hostname: str, net: Path | None = None) -> None:
    """The namespaces whose paths are given (None: the node's). A new network
    namespace has only `lo`, still down: the pod's network set-up brings it up."""
    flags = []
    for kind, path in (("net", net), ("ipc", ipc), ("uts", uts)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            flags.append(f"--{kind}={path}")
    if not flags:
        return
    command = ["hostname", hostname] if uts is not None else ["true"]
    made = subprocess.run(["unshare", *flags, *command], capture_output=True, text=True)
    if made.returncode != 0:
        remove(net, ipc, uts)
        raise OSError(f"could not create the pod's namespaces: {made.stderr.strip()}")


def remove(*paths: Path | None) -> None:
    """Unmount and delete; nothing to do for what is already gone."""
    for path in paths:
        if path is not None:
            with contextlib.suppress(OSError):
                remove_netns(path)  # the same for any namespace file: detach, unlink
