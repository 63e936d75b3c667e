"""`skiff status`: each component with its state, pid, health and since when.

The supervisor writes what it runs to `<state-dir>/components.json`; health
is asked of each component from outside (health.py), so a component that runs
but does not serve shows as running and unhealthy, with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import time
from pathlib import Path

from . import etcd
from .components import healthy
from .layout import DEFAULT_STATE_DIR, Layout
from .supervisor import read_status


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def supervisor_pid(layout: Layout) -> int | None:
    """The running supervisor's pid, checked against /proc (a pid may be reused)."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(layout.pid_file.read_text().strip())
        args = _cmdline(pid)
        # `python -m cli up ...` (detached, the tests) or `.../skiff up ...` (systemd)
        started_as = [a for a in args[:3] if a == "cli" or Path(a).name == "skiff"]
        if started_as and "up" in args:
            return pid
    return None


def since(stamp: float | None) -> str:
    if not stamp:
        return "-"
    when = datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S")
    ago = int(time.time() - stamp)
    span = f"{ago}s" if ago < 120 else f"{ago // 60}m" if ago < 7200 else f"{ago // 3600}h"
    return f"{when} ({span} ago)"


def rows(layout: Layout) -> list[list[str]]:
    status = read_status(layout)
    running = supervisor_pid(layout) is not None
    out = [["COMPONENT", "STATE", "PID", "HEALTHY", "SINCE", "RESTARTS"]]
    for name, c in (status.get("components") or {}).items():
        state = c["state"] if running else "stopped"
        pid = c.get("pid") if running else None
        if pid and not os.path.exists(f"/proc/{pid}"):
            state, pid = "stopped", None
        why = healthy(name, layout) if pid else "not running"
        out.append([name, state, str(pid or "-"), "yes" if not why else f"no: {why}",
                    since(c.get("since")) if pid else "-", str(c.get("restarts", 0))])  # fmt: skip
    if running and not layout.etcd_servers:
        pid = etcd.pid(layout)
        try:
            raised = etcd.alarms(layout)
            why = f"alarm {', '.join(raised)}" if raised else ""
        except etcd.EtcdCommandError as e:
            why = str(e)[:80]
        out.insert(2, ["etcd (in apiserver)", "running" if pid else "stopped", str(pid or "-"),
                       "yes" if not why else f"no: {why}", "-", "-"])  # fmt: skip
    return out


def print_status(layout: Layout) -> list[list[str]]:
    table = rows(layout)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    for r in table[1:]:
        if "NOSPACE" in r[3]:
            print(
                "\netcd raised NOSPACE: its database reached the space quota and it accepts "
                "only reads and deletes. Delete what is not needed, then defragment and "
                "disarm the alarm (etcdctl defrag; etcdctl alarm disarm)."
            )
    return table


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="skiff status", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    a = p.parse_args(argv)
    layout = Layout.load(a.state_dir.resolve())
    if layout is None:
        print(f"skiff status: no cluster in {a.state_dir} (skiff up never ran there)")
        return 1
    pid = supervisor_pid(layout)
    print(f"supervisor: {'running, pid ' + str(pid) if pid else 'not running'} "
          f"(state in {layout.state_dir}, logs in {layout.logs}/)")  # fmt: skip
    table = print_status(layout)
    return 0 if pid and all(r[3] == "yes" for r in table[1:]) else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
