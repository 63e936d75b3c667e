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

Start-up time is most of a short container's life, so this module imports
little (no argparse, pathlib, typing or even json at run time: see
fastjson.py); `skiff_runc.py` is the launcher that also skips site imports.
"""

from __future__ import annotations

import os
import sys
import time

from . import fastjson

TYPE_CHECKING = False  # not `from typing import ...`: typing costs 3 ms to import
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/skiff-runc"


class RuntimeError_(Exception):
    """A failure to report as one line and exit 1."""


def _state_dir(root: str, cid: str) -> str:
    if not cid or "/" in cid or cid in (".", ".."):
        raise RuntimeError_(f"invalid container id {cid!r}")
    return os.path.join(root, cid)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _load(root: str, cid: str) -> dict[str, Any]:
    path = os.path.join(_state_dir(root, cid), "state.json")
    if not os.path.exists(path):
        raise RuntimeError_(f"container {cid} does not exist")
    return fastjson.loads(_read(path))


def alive(pid: int) -> bool:
    """Running, and not a zombie waiting to be reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running
        return _read(f"/proc/{pid}/stat").rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def status_of(root: str, state: dict[str, Any]) -> str:
    pid = int(state.get("pid") or 0)
    if not pid or not alive(pid):
        return "stopped"
    if os.path.exists(os.path.join(_state_dir(root, state["id"]), "exec.fifo")):
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


def connect_console(path: str) -> int:
    """A connection to a console socket (runc's --console-socket), as a plain fd."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise RuntimeError_(f"cannot connect to console socket {path}: {e}") from e
    return sock.detach()


def _config(bundle: str) -> dict[str, Any]:
    try:
        config = fastjson.loads(_read(os.path.join(bundle, "config.json")))
    except (OSError, ValueError) as e:
        raise RuntimeError_(f"cannot read {bundle}/config.json: {e}") from e
    if not isinstance(config, dict):
        raise RuntimeError_(f"{bundle}/config.json is not a JSON object")
    return config


def create(
    root: str,
    cid: str,
    bundle: str,
    pid_file: str | None,
    console_fd: int = -1,
    config: dict[str, Any] | None = None,
) -> int:
    """`config`: the bundle's config.json when the caller has read it already."""
    from . import init, linux

    state_dir = _state_dir(root, cid)
    if os.path.exists(state_dir):
        raise RuntimeError_(f"container {cid} already exists")
    bundle = os.path.abspath(bundle)
    config = config or _config(bundle)
    if (config.get("process") or {}).get("terminal") and console_fd < 0:
        raise RuntimeError_(
            "cannot allocate tty if runc will detach without setting console socket"
        )
    os.makedirs(state_dir, mode=0o700)
    fifo = os.path.join(state_dir, "exec.fifo")
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
                init.run(config, bundle, fifo_fd, sync_w, console_fd)
            os.write(pid_w, str(grandchild).encode())
            os._exit(0)
        except BaseException as e:
            os.write(sync_w, f"{type(e).__name__}: {e}".encode())
            os._exit(1)
    os.close(sync_w)
    os.close(pid_w)
    os.close(fifo_fd)
    if console_fd >= 0:
        os.close(console_fd)  # PID 1 has its copy, to send the terminal over
    pid_text = os.read(pid_r, 64).decode()  # sent as soon as PID 1 exists
    os.close(pid_r)
    # Join the cgroup while PID 1 builds its root filesystem: the first migration can
    # wait a whole RCU grace period in the kernel, and this way the wait is not on top.
    joined: OSError | None = None
    if pid_text:
        try:
            cg.add(int(pid_text))
        except OSError as e:
            joined = e
    os.waitpid(child, 0)
    message = os.read(sync_r, 4096).decode()
    os.close(sync_r)
    if message != "ok" or not pid_text or joined:
        if pid_text and message == "ok":
            os.kill(int(pid_text), 9)  # set up, but outside its cgroup: it must not run
        _cleanup(state_dir, cg)
        raise RuntimeError_(f"container init failed: {joined or message or 'no report'}")
    pid = int(pid_text)
    state = {
        "ociVersion": config.get("ociVersion", "1.0.2"),
        "id": cid,
        "pid": pid,
        "bundle": bundle,
        "annotations": config.get("annotations") or {},
        "cgroup": cg.path,
        "created": time.time(),
    }
    _write(os.path.join(state_dir, "state.json"), fastjson.dumps(state))
    if pid_file:
        _write(pid_file, str(pid))
    return 0


def _cleanup(state_dir: str, cg: Any) -> None:
    for name in os.listdir(state_dir):
        os.unlink(os.path.join(state_dir, name))
    os.rmdir(state_dir)
    try:
        cg.delete()
    except OSError:
        pass


def start(root: str, cid: str) -> int:
    state = _load(root, cid)
    if status_of(root, state) != "created":
        raise RuntimeError_(f"cannot start a container that is {status_of(root, state)}")
    import select

    fifo = os.path.join(_state_dir(root, cid), "exec.fifo")
    # Non-blocking: a container whose process died after the check above must not leave
    # us waiting forever for a writer that will never come.
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        while True:
            if select.select([fd], [], [], 0.05)[0]:
                try:
                    if os.read(fd, 1):
                        break  # its byte: the process goes on to exec
                    time.sleep(0.0005)  # end of file: its end is not open yet
                except BlockingIOError:
                    pass
            if not alive(int(state["pid"])):
                raise RuntimeError_("the container's process is gone")
    finally:
        os.close(fd)
    os.unlink(fifo)
    return 0


def state_cmd(root: str, cid: str) -> int:
    state = _load(root, cid)
    out = {k: state[k] for k in ("ociVersion", "id", "pid", "bundle", "annotations")}
    out["status"] = status_of(root, state)
    if out["status"] == "stopped":
        out["pid"] = 0
    import json  # for indent, which the C encoder lacks; state is not on the start path

    print(json.dumps(out, indent=2))
    return 0


def kill(root: str, cid: str, sig: str) -> int:
    import _signal  # the C module: `signal` would import enum

    state = _load(root, cid)
    name = sig.upper() if sig.upper().startswith("SIG") else f"SIG{sig.upper()}"
    number = int(sig) if sig.isdigit() else getattr(_signal, name, None)
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
                os.kill(pid, 9)  # SIGKILL
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
    config = fastjson.loads(_read(os.path.join(state["bundle"], "config.json")))
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
            init.execvpe(args, environment)
        except BaseException as e:
            os.write(2, f"skiff-runc exec: {type(e).__name__}: {e}\n".encode())
            os._exit(127)
    for _, fd in fds:
        os.close(fd)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status) & 0xFF


def list_cmd(root: str) -> int:
    print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} BUNDLE")
    names = sorted(os.listdir(root)) if os.path.isdir(root) else []
    for d in [os.path.join(root, n, "state.json") for n in names]:
        if not os.path.exists(d):
            continue
        state = fastjson.loads(_read(d))
        print(f"{state['id']:<20} {state['pid']:<8} {status_of(root, state):<10} {state['bundle']}")
    return 0


def _relay(master: int) -> None:
    """Our stdin to the container's terminal and the terminal to our stdout, until the
    container's side closes: `run` of a bundle that asks for a terminal."""
    import select

    inputs = [master, 0]
    while True:
        ready, _, _ = select.select(inputs, [], [])
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave is closed, the container is done
                data = b""
            if not data:
                return
            os.write(1, data)
        if 0 in ready:
            data = os.read(0, 65536)
            if data:
                os.write(master, data)
            else:
                inputs.remove(0)


def run(root: str, cid: str, bundle: str, console_socket: str | None = None) -> int:
    """create, start and wait: the container is our child (we become its subreaper).
    A bundle that asks for a terminal gets one relayed to our stdio, as with runc,
    unless a console socket is given to send it to."""
    from . import linux

    linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    config = _config(os.path.abspath(bundle))
    relay = not console_socket and (config.get("process") or {}).get("terminal")
    if relay:  # the terminal comes to us, over a socket pair, and we relay it
        import socket

        receiver, ours = socket.socketpair()
        console_fd = ours.detach()
    else:
        console_fd = connect_console(console_socket) if console_socket else -1
    create(root, cid, bundle, None, console_fd, config)
    master = -1
    if relay:
        _, fds, _, _ = socket.recv_fds(receiver, 4096, 1)
        receiver.close()
        master = fds[0]
    pid = int(_load(root, cid)["pid"])
    start(root, cid)
    if master >= 0:
        _relay(master)
        os.close(master)
    _, status = os.waitpid(pid, 0)
    delete(root, cid, force=True)
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


USAGE = """usage: skiff-runc [--root DIR] COMMAND [FLAGS] ID ...

commands:
  create [--bundle DIR] [--pid-file F] ID   set a container up; its process waits for start
  start ID                                   let the created container's process run
  run [--bundle DIR] [--pid-file F] ID       create, start, wait; exits with the process's code
  state ID                                   its state as JSON (runc's format)
  kill [--all] ID [SIGNAL]                   send a signal (default SIGTERM)
  delete [--force] ID                        remove it (--force kills it first)
  exec [--tty] [--env K=V] [--cwd DIR] ID COMMAND...   run another process inside it
  list                                       the containers under --root"""

# Flags that take a value, per command ("" is the global flags before the command).
VALUE_FLAGS = {
    "": {"--root", "--log", "--log-format", "--criu"},
    "create": {"--bundle", "--pid-file", "--console-socket"},
    "run": {"--bundle", "--pid-file", "--console-socket"},
    "exec": {"--env", "--cwd", "--pid-file", "--console-socket", "--process"},
}
BOOL_FLAGS = {
    "": {"--systemd-cgroup", "--debug"},
    "kill": {"--all"},
    "delete": {"--force"},
    "exec": {"--tty", "--detach"},
    "run": {"--detach"},
}
SHORT = {"-b": "--bundle", "-e": "--env", "-p": "--process", "-a": "--all", "-f": "--force"}
SHORT |= {"-t": "--tty", "-d": "--detach"}


def parse(argv: list[str]) -> tuple[str, dict[str, list[str]], list[str]]:
    """(command, flags, positional) with runc's flag syntax (`--flag value`,
    `--flag=value`); everything after exec's ID is the command, untouched."""
    flags: dict[str, list[str]] = {}
    positional: list[str] = []
    command = ""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if command == "exec" and positional:
            positional += argv[i:]
            break
        if arg.startswith("-") and arg != "-":
            name, eq, value = arg.partition("=")
            name = SHORT.get(name, name)
            if name in VALUE_FLAGS.get(command, set()):
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise RuntimeError_(f"flag {name} needs a value")
                    value = argv[i]
                flags.setdefault(name.lstrip("-"), []).append(value)
            elif name in BOOL_FLAGS.get(command, set()) and not eq:
                flags.setdefault(name.lstrip("-"), []).append("true")
            elif name in ("-h", "--help"):
                raise SystemExit(print(USAGE) or 0)
            else:
                raise RuntimeError_(
                    f"unknown flag {arg!r}" + (f" for {command}" if command else "")
                )
        elif not command:
            command = arg
        else:
            positional.append(arg)
        i += 1
    return command, flags, positional


def main(argv: list[str] | None = None) -> int:
    try:
        command, flags, args = parse(sys.argv[1:] if argv is None else argv)

        def flag(name: str, default: str | None = None) -> str | None:
            return flags[name][-1] if name in flags else default

        root = flag("root", default=DEFAULT_ROOT) or DEFAULT_ROOT
        wants = {"list": 0, "exec": 2}.get(command, 1)
        if not command:
            print(USAGE, file=sys.stderr)
            return 2
        if command == "kill" and len(args) in (1, 2):
            return kill(root, args[0], args[1] if len(args) == 2 else "SIGTERM")
        if len(args) < wants or (command not in ("exec",) and len(args) != wants):
            raise RuntimeError_(f"{command}: expected {wants or 'no'} argument(s), see --help")
        bundle = flag("bundle", default=".") or "."
        console = flag("console-socket")
        if command == "create":
            console_fd = connect_console(console) if console else -1
            return create(root, args[0], bundle, flag("pid-file"), console_fd)
        if command == "run":
            return run(root, args[0], bundle, console)
        if command == "start":
            return start(root, args[0])
        if command == "state":
            return state_cmd(root, args[0])
        if command == "delete":
            return delete(root, args[0], "force" in flags)
        if command == "exec":
            env = flags.get("env", [])
            return exec_cmd(root, args[0], args[1:], env, flag("cwd"), "tty" in flags)
        if command == "list":
            return list_cmd(root)
        raise RuntimeError_(f"unknown command {command!r}, see --help")
    except (RuntimeError_, OSError) as e:
        print(f"skiff-runc: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
