"""Mounts under a directory, and taking them down (pod volumes, pod namespaces)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def mounts_under(roots: list[Path]) -> list[str]:
    """Mount points at or below any of `roots`, the deepest first."""
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        where = line.split()[1].replace("\\040", " ")
        if any(where == str(r) or where.startswith(str(r) + "/") for r in roots):
            found.append(where)
    return sorted(set(found), key=len, reverse=True)


def unmount_under(roots: list[Path]) -> list[str]:
    done = []
    for where in mounts_under(roots):
        if subprocess.run(["umount", where], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", where], capture_output=True)  # busy: detach it
        done.append(where)
    return done
