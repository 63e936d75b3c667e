"""Network namespaces held open by a bind mount, so no process has to stay in them."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from runtime.runc import linux

T = TypeVar("T")


def create_netns(path: Path) -> None:
    """A new network namespace at `path`, with `lo` up.

    util-linux's `unshare --net=FILE` creates and bind-mounts it in a child
    process; forking from a threaded daemon (gRPC, pyroute2) is not safe.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    made = subprocess.run(["unshare", f"--net={path}", "true"], capture_output=True, text=True)
    if made.returncode != 0:
        with contextlib.suppress(OSError):
            path.unlink()
        raise OSError(f"could not create a network namespace at {path}: {made.stderr.strip()}")
    run_in_netns(path, ["ip", "link", "set", "lo", "up"])


def run_in_netns(path: Path, command: list[str], stdin: str | None = None) -> str:
    """Run a command inside the namespace (nsenter), return its output or raise."""
    done = subprocess.run(
        ["nsenter", f"--net={path}", *command], input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise OSError(f"{' '.join(command)} in {path}: {done.stderr.strip()}")
    return done.stdout


def remove_netns(path: Path) -> None:
    """Unmount and remove; nothing to do when it is already gone."""
    with contextlib.suppress(OSError):
        linux.umount2(str(path), linux.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def in_netns(path: Path, fn: Callable[[], None]) -> None:
    """Run `fn` in a forked child inside the namespace at `path` (we stay where we are)."""
    child = os.fork()
    if child == 0:
        try:
            linux.setns(str(path), linux.CLONE_NEWNET)
            fn()
            os._exit(0)
        except BaseException as e:
            os.write(2, f"in netns {path}: {type(e).__name__}: {e}\n".encode())
            os._exit(1)
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"configuring the network namespace at {path} failed")
