"""skiff-runc: an OCI runtime with runc's command line.

    skiff-runc [--root DIR] create [--bundle DIR] [--pid-file F] ID
    skiff-runc start ID | state ID | kill ID [SIGNAL] | delete [--force] ID | list
    skiff-runc exec ID COMMAND...            (in a running container's namespaces)
    skiff-runc run [--bundle DIR] ID        (create + start, waits, exits with its code)

The create/start split is runc's: `create` forks a child that unshares the
namespaces and forks again, so that the grandchild is PID 1 of the new pid
namespace. The grandchild builds the root filesystem, reports "ok" on a pipe
and blocks opening `exec.fifo` for writing; `create` then puts it in its
cgroup, records the state and exits, leaving the container's parent to be the
caller's subreaper. `start` opens the FIFO for reading, which lets the
container exec its process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_ROOT = "/run/skiff-runc"


class RuntimeError_(Exception):
    """A failure to report as one line and exit 1."""


def _state_dir(root: str, cid: str) -> Path:
    if not cid or "/" in cid or cid in (".", ".."):
        raise RuntimeError_(f"invalid container id {cid!r}")
    return Path(root) / cid


def _load(root: str, cid: str) -> dict[str, Any]:
    path = _state_dir(root, cid) / "state.json"
    if not path.exists():
        raise RuntimeError_(f"container {cid} does not exist")
    return json.loads(path.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def status_of(root: str, state: dict[str, Any]) -> str:
    pid = int(state.get("pid") or 0)
    if not pid or not _alive(pid):
        return "stopped"
    if (_state_dir(root, state["id"]) / "exec.fifo").exists():
        return "created"
    return "running"


def _cgroup(config: dict[str, Any], cid: str) -> Any:
    from runtime.cgroups import Resources, open_cgroup

    linux_cfg = config.get("linux") or {}
    path = linux_cfg.get("cgroupsPath") or f"/skiff-runc/{cid}"
    res = linux_cfg.get("resources") or {}
    cpu, memory, pids = res.get("cpu") or {}, res.get("memory") or {}, res.get("pids") or {}
    cg = open_cgroup(path)
    resources = Resources(
        cpu_shares=cpu.get("shares"),
        cpu_quota=cpu.get("quota"),
        cpu_period=cpu.get("period") or 100_000,
        memory_limit=memory.get("limit"),
        pids_limit=pids.get("limit"),
    )
    return cg, resources


def create(root: str, cid: str, bundle: str, pid_file: str | None) -> int:
    from . import init, linux

    state_dir = _state_dir(root, cid)
    if state_dir.exists():
        raise RuntimeError_(f"container {cid} already exists")
    bundle = os.path.abspath(bundle)
    try:
        config = json.loads((Path(bundle) / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise RuntimeError_(f"cannot read {bundle}/config.json: {e}") from e
    state_dir.mkdir(parents=True, mode=0o700)
    fifo = state_dir / "exec.fifo"
    os.mkfifo(fifo, 0o622)
    cg, resources = _cgroup(config, cid)
    cg.create()
    cg.apply(resources)
    namespaces = (config.get("linux") or {}).get("namespaces") or []
    flags = 0
    joins = []
    for ns in namespaces:
        if ns.get("path"):
            joins.append((ns["path"], linux.NAMESPACE_FLAGS.get(ns["type"], 0)))
        else:
            flags |= linux.NAMESPACE_FLAGS.get(ns["type"], 0)
    sync_r, sync_w = os.pipe()
    pid_r, pid_w = os.pipe()
    fifo_fd = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
    child = os.fork()
    if child == 0:  # the intermediate process: join and unshare, fork PID 1, report it, exit
        try:
            os.close(sync_r)
            os.close(pid_r)
            os.setsid()
            for path, kind in joins:
                linux.setns(path, kind)
            linux.unshare(flags)
            grandchild = os.fork()
            if grandchild == 0:
                os.close(pid_w)
                init.run(config, bundle, fifo_fd, sync_w)
            os.write(pid_w, str(grandchild).encode())
            os._exit(0)
        except BaseException as e:
            os.write(sync_w, f"{type(e).__name__}: {e}".encode())
            os._exit(1)
    os.close(sync_w)
    os.close(pid_w)
    os.close(fifo_fd)
    os.waitpid(child, 0)
    pid_text = os.read(pid_r, 64).decode()
    os.close(pid_r)
    message = os.read(sync_r, 4096).decode()
    os.close(sync_r)
    if message != "ok" or not pid_text:
        _cleanup(state_dir, cg)
        raise RuntimeError_(f"container init failed: {message or 'no report'}")
    pid = int(pid_text)
    cg.add(pid)
    state = {
        "ociVersion": config.get("ociVersion", "1.0.2"),
        "id": cid,
        "pid": pid,
        "bundle": bundle,
        "annotations": config.get("annotations") or {},
        "cgroup": cg.path,
        "created": time.time(),
    }
    (state_dir / "state.json").write_text(json.dumps(state))
    if pid_file:
        Path(pid_file).write_text(str(pid))
    return 0


def _cleanup(state_dir: Path, cg: Any) -> None:
    for p in state_dir.glob("*"):
        p.unlink()
    state_dir.rmdir()
    try:
        cg.delete()
    except OSError:
        pass


def start(root: str, cid: str) -> int:
    state = _load(root, cid)
    if status_of(root, state) != "created":
        raise RuntimeError_(f"cannot start a container that is {status_of(root, state)}")
    fifo = _state_dir(root, cid) / "exec.fifo"
    fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)
    os.read(fd, 1)
    os.close(fd)
    fifo.unlink()
    return 0


def state_cmd(root: str, cid: str) -> int:
    state = _load(root, cid)
    out = {k: state[k] for k in ("ociVersion", "id", "pid", "bundle", "annotations")}
    out["status"] = status_of(root, state)
    if out["status"] == "stopped":
        out["pid"] = 0
    print(json.dumps(out, indent=2))
    return 0


def kill(root: str, cid: str, sig: str) -> int:
    state = _load(root, cid)
    number = (
        int(sig)
        if sig.isdigit()
        else getattr(signal, sig if sig.startswith("SIG") else f"SIG{sig}", None)
    )
    if number is None:
        raise RuntimeError_(f"unknown signal {sig!r}")
    if status_of(root, state) == "stopped":
        raise RuntimeError_("container not running")
    os.kill(int(state["pid"]), int(number))
    return 0


def delete(root: str, cid: str, force: bool) -> int:
    from runtime.cgroups import open_cgroup

    state = _load(root, cid)
    status = status_of(root, state)
    if status == "running" and not force:
        raise RuntimeError_("cannot delete a running container; stop it or use --force")
    cg = open_cgroup(state.get("cgroup") or f"/skiff-runc/{cid}")
    if status != "stopped":
        for pid in cg.pids() or [int(state["pid"])]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 5
    while cg.pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    _cleanup(_state_dir(root, cid), cg)
    return 0


def exec_cmd(
    root: str, cid: str, args: list[str], env: list[str], cwd: str | None, tty: bool = False
) -> int:
    """Run another process in a running container: join its namespaces and cgroup, drop
    the same privileges as its process, exec; wait for it and exit with its code.
    With `tty`, the terminal on stdin becomes the process's controlling terminal."""
    import fcntl  # imported now: after setns the container's filesystem has no Python
    import termios

    from runtime.cgroups import open_cgroup

    from . import init, linux

    state = _load(root, cid)
    if status_of(root, state) != "running":
        raise RuntimeError_(f"cannot exec in a container that is {status_of(root, state)}")
    if not args:
        raise RuntimeError_("exec needs a command")
    pid = int(state["pid"])
    config = json.loads((Path(state["bundle"]) / "config.json").read_text())
    process = config["process"]
    ns_files = [(k, f"/proc/{pid}/ns/{k}") for k in ("ipc", "uts", "net", "pid", "mnt")]
    # Open them all first: after joining the mount namespace /proc is the container's.
    fds = [
        (k, os.open(f, os.O_RDONLY | os.O_CLOEXEC))
        for k, f in ns_files
        if os.readlink(f) != os.readlink(f"/proc/self/ns/{k}")
    ]
    child = os.fork()
    if child == 0:
        try:
            open_cgroup(state.get("cgroup") or f"/skiff-runc/{cid}").add(os.getpid())
            for _, fd in fds:
                linux.setns(f"/proc/self/fd/{fd}")
            grandchild = os.fork()  # the pid namespace applies to children only
            if grandchild:
                _, status = os.waitpid(grandchild, 0)
                os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
            os.chdir(cwd or process.get("cwd") or "/")
            if tty:
                os.setsid()
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)
            init.set_limits(process)
            init.drop_privileges(process)
            environment = dict(e.split("=", 1) for e in [*process.get("env", []), *env] if "=" in e)
            os.execvpe(args[0], args, environment)
        except BaseException as e:
            os.write(2, f"skiff-runc exec: {type(e).__name__}: {e}\n".encode())
            os._exit(127)
    for _, fd in fds:
        os.close(fd)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) & 0xFF


def list_cmd(root: str) -> int:
    print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} BUNDLE")
    for d in sorted(Path(root).glob("*/state.json")) if Path(root).exists() else []:
        state = json.loads(d.read_text())
        print(f"{state['id']:<20} {state['pid']:<8} {status_of(root, state):<10} {state['bundle']}")
    return 0


def run(root: str, cid: str, bundle: str) -> int:
    """create, start and wait: the container is our child (we become its subreaper)."""
    from . import linux

    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    create(root, cid, bundle, None)
    pid = int(_load(root, cid)["pid"])
    start(root, cid)
    _, status = os.waitpid(pid, 0)
    delete(root, cid, force=True)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="skiff-runc", description=__doc__.split("\n")[0])
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--log", default=None)
    p.add_argument("--log-format", default=None)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("create", "run"):
        c = sub.add_parser(name)
        c.add_argument("--bundle", "-b", default=".")
        c.add_argument("--pid-file", default=None)
        c.add_argument("--console-socket", default=None)
        c.add_argument("id")
    for name in ("start", "state"):
        sub.add_parser(name).add_argument("id")
    k = sub.add_parser("kill")
    k.add_argument("--all", "-a", action="store_true")
    k.add_argument("id")
    k.add_argument("signal", nargs="?", default="SIGTERM")
    d = sub.add_parser("delete")
    d.add_argument("--force", "-f", action="store_true")
    d.add_argument("id")
    sub.add_parser("list")
    e = sub.add_parser("exec")
    e.add_argument("--env", "-e", action="append", default=[])
    e.add_argument("--cwd", default=None)
    e.add_argument("--tty", "-t", action="store_true")
    e.add_argument("id")
    e.add_argument("command_args", nargs=argparse.REMAINDER, metavar="command")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if a.command == "create":
            return create(a.root, a.id, a.bundle, a.pid_file)
        if a.command == "run":
            return run(a.root, a.id, a.bundle)
        if a.command == "start":
            return start(a.root, a.id)
        if a.command == "state":
            return state_cmd(a.root, a.id)
        if a.command == "kill":
            return kill(a.root, a.id, a.signal)
        if a.command == "delete":
            return delete(a.root, a.id, a.force)
        if a.command == "exec":
            command = a.command_args if hasattr(a, "command_args") else []
            return exec_cmd(a.root, a.id, command, a.env, a.cwd, a.tty)
        return list_cmd(a.root)
    except (RuntimeError_, OSError) as e:
        print(f"skiff-runc: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
