"""Control groups for containers: limits, membership, usage and OOM kills, on v1 or v2.

Kubernetes nodes run on either layout: cgroup v1 (one hierarchy per
controller: /sys/fs/cgroup/memory/..., /sys/fs/cgroup/cpu/...) or the unified
v2 tree. `open_cgroup(path)` picks the driver for this machine; both offer the
same operations, so the runtime above them does not care which it has.
A hybrid machine (v1 controllers plus an empty v2 mount, like this project's
CI) counts as v1: the v2 tree has no controllers to give.
"""

from __future__ import annotations

import os

from .resources import Resources
from .v1 import CgroupV1

TYPE_CHECKING = False  # not `from typing import ...`: typing costs 3 ms to import
if TYPE_CHECKING:
    from .v2 import CgroupV2

ROOT = "/sys/fs/cgroup"

__all__ = ["CgroupV1", "CgroupV2", "Resources", "detect", "open_cgroup", "remove_tree"]


def detect(root: str | os.PathLike[str] = ROOT) -> str:
    """'v2' when the unified hierarchy is mounted at the root with controllers, else 'v1'."""
    controllers = os.path.join(root, "cgroup.controllers")
    if os.path.exists(controllers):
        with open(controllers) as f:
            if f.read().split():
                return "v2"
    return "v1"


def open_cgroup(path: str, root: str | os.PathLike[str] = ROOT) -> CgroupV1 | CgroupV2:
    """The cgroup at `path` (e.g. "/skiff/pod-uid/ctr"), for this machine's layout."""
    if detect(root) == "v2":
        from .v2 import CgroupV2

        return CgroupV2(path, root)
    return CgroupV1(path, root)


def remove_tree(path: str, root: str | os.PathLike[str] = ROOT) -> None:
    """Remove the cgroup at `path` and every cgroup below it, deepest first, in every
    hierarchy (runc also makes one in the v2 tree of a hybrid machine): how a test or a
    benchmark takes away what its containers left. Cgroups still in use stay."""
    relative = path.strip("/")
    if not relative:
        raise ValueError("refusing to remove the root cgroup")
    root = os.fspath(root)
    if detect(root) == "v2":
        tops = [os.path.join(root, relative)]
    else:
        tops = [os.path.join(root, h, relative) for h in sorted(os.listdir(root))]
    for top in tops:
        if not os.path.isdir(top):
            continue
        for directory, _, _ in os.walk(top, topdown=False):
            try:
                os.rmdir(directory)
            except OSError:
                pass


def __getattr__(name: str) -> object:
    """`CgroupV2` on first use: skiff-runc imports this package on every start."""
    if name == "CgroupV2":
        from .v2 import CgroupV2

        return CgroupV2
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
