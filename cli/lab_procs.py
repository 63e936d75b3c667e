"""Processes the lab starts, and how it stops exactly those and no others.

Every process is recorded with its PID and its start time (field 22 of
/proc/PID/stat), so a PID the kernel has since given to someone else is never
signalled: `is_ours` must match both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import lab_net


def start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_ours(rec: dict[str, Any]) -> bool:
    pid = rec.get("pid")
    return bool(pid) and start_time(pid) == rec.get("start")


def spawn(argv: list[str], *, netns: str, log: Path, env: dict[str, str] | None = None) -> dict:
    """Start `argv` in the network namespace `netns`, detached, output to `log`.

    The process is its own session leader and outlives the `skiff lab` command
    that started it, as the components of `kind` outlive `kind create`.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    preexec = lab_net.preexec_in(netns)
    try:
        with open(log, "ab") as out:
            out.write(f"--- skiff lab: starting {' '.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=preexec,
                env=env,
            )
    finally:
        lab_net.close_preexec(preexec)
    return {"pid": proc.pid, "start": start_time(proc.pid), "argv": argv, "log": str(log)}


def module(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", name, *args]


def stop(recs: list[dict[str, Any]], grace: float = 15.0) -> None:
    """SIGTERM each of ours, wait up to `grace`, then SIGKILL what is left."""
    live = [r for r in recs if is_ours(r)]
    for r in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r["pid"], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        _reap()
        live = [r for r in live if is_ours(r)]
        if live:
            time.sleep(0.1)
    for r in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(is_ours(r) for r in live) and time.monotonic() < deadline:
        _reap()
        time.sleep(0.05)


def _reap() -> None:
    """Collect children of this process that exited (zombies still have a /proc entry)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def pids_in_netns(names: list[str]) -> list[int]:
    """Processes whose network namespace is one of `names` (the lab's own)."""
    inodes = set()
    for name in names:
        with contextlib.suppress(OSError):
            inodes.add(os.stat(lab_net.netns_path(name)).st_ino)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if os.stat(entry / "ns" / "net").st_ino in inodes:
                found.append(int(entry.name))
    return found


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
