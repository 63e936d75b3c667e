"""The container's first process, between fork and exec: kept small, as runc keeps it.

Runs as PID 1 of the new pid namespace, already in the new mount, uts and ipc
namespaces. It builds the root filesystem (private mounts, /proc, a minimal
/dev, the config's mounts), pivots into it, then waits on the exec FIFO until
`start` opens it, and only then drops privileges and execs the process.
Anything that fails is written to the error pipe for `create` to report.
"""

from __future__ import annotations

import os
import resource

TYPE_CHECKING = False  # not `from typing import ...`: typing costs 3 ms to import
if TYPE_CHECKING:
    from typing import Any

from . import linux  # noqa: E402 (after the TYPE_CHECKING block)

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _mount_flags(options: list[str]) -> tuple[int, str]:
    flags, data = 0, []
    for o in options:
        if o in linux.MOUNT_OPTIONS:
            flags |= linux.MOUNT_OPTIONS[o]
        elif o not in ("rw", "private", "rprivate", "slave", "rslave", "strictatime"):
            data.append(o)
    return flags, ",".join(data)


def _setup_rootfs(config: dict[str, Any], bundle: str) -> None:
    root = config["root"]["path"]
    rootfs = root if os.path.isabs(root) else os.path.join(bundle, root)
    # Nothing we mount may leak to the host: make the whole tree private first.
    linux.mount("", "/", "", linux.MS_REC | linux.MS_PRIVATE)
    linux.mount(rootfs, rootfs, "", linux.MS_BIND | linux.MS_REC)
    for m in config.get("mounts") or []:
        target = os.path.join(rootfs, m["destination"].lstrip("/"))
        flags, data = _mount_flags(m.get("options") or [])
        source = m.get("source", "")
        if flags & linux.MS_BIND and os.path.isfile(source):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "a").close()
        else:
            os.makedirs(target, exist_ok=True)
        kind = "" if flags & linux.MS_BIND else m.get("type", "")
        if kind == "cgroup":
            # A cgroup v1 mount needs named controllers; like runc without cgroupns,
            # give the container an empty, read-only view instead of the host's tree.
            kind, source, data = "tmpfs", "tmpfs", "mode=755"
        linux.mount(
            source, target, kind, flags & ~linux.MS_RDONLY if flags & linux.MS_BIND else flags, data
        )
        if flags & linux.MS_BIND and flags & linux.MS_RDONLY:
            linux.mount("", target, "", flags | linux.MS_REMOUNT)
    dev = os.path.join(rootfs, "dev")
    if os.path.ismount(dev):
        for name in DEVICES:  # bind the host's device nodes, as runc does without userns
            target = os.path.join(dev, name)
            if not os.path.exists(target):
                open(target, "a").close()
                linux.mount(f"/dev/{name}", target, "", linux.MS_BIND)
        for name, link in (
            ("ptmx", "pts/ptmx"),  # the container's own devpts, as runc links it
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ):
            if not os.path.lexists(os.path.join(dev, name)):
                os.symlink(link, os.path.join(dev, name))
    for path in (config.get("linux") or {}).get("maskedPaths") or []:
        target = os.path.join(rootfs, path.lstrip("/"))
        if os.path.isdir(target):
            linux.mount("tmpfs", target, "tmpfs", linux.MS_RDONLY)
        elif os.path.exists(target):
            linux.mount("/dev/null", target, "", linux.MS_BIND)
    for path in (config.get("linux") or {}).get("readonlyPaths") or []:
        target = os.path.join(rootfs, path.lstrip("/"))
        if os.path.exists(target):
            linux.mount(target, target, "", linux.MS_BIND | linux.MS_REC)
            linux.mount(
                "", target, "", linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_REC
            )
    # pivot_root into the rootfs and detach the old root entirely.
    os.chdir(rootfs)
    linux.pivot_root(".", ".")
    linux.umount2(".", linux.MNT_DETACH)
    os.chdir("/")
    if config["root"].get("readonly"):
        linux.mount("", "/", "", linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def execvpe(args: list[str], env: dict[str, str]) -> None:
    """Exec args[0], looked up in the container's PATH as runc does. Not os.execvpe: it
    imports `warnings`, which after pivot_root is no longer there to import."""
    if "/" in args[0]:
        os.execve(args[0], args, env)
    denied: OSError | None = None
    for directory in (env.get("PATH") or DEFAULT_PATH).split(":"):
        try:
            os.execve(os.path.join(directory or ".", args[0]), args, env)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except PermissionError as e:
            denied = e
    # runc's wording, which Kubernetes users see in a pod's status
    raise denied or OSError(f'exec: "{args[0]}": executable file not found in $PATH')


def set_limits(process: dict[str, Any]) -> None:
    """rlimits and the OOM score, while we still hold the capabilities to raise them."""
    for rlimit in process.get("rlimits") or []:
        kind = getattr(resource, str(rlimit["type"]), None)
        if kind is None:
            raise ValueError(f"unknown rlimit {rlimit['type']!r}")
        resource.setrlimit(kind, (int(rlimit["soft"]), int(rlimit["hard"])))
    if "oomScoreAdj" in process:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(int(process["oomScoreAdj"])))


def drop_privileges(process: dict[str, Any]) -> None:
    """no_new_privs, groups, capabilities, then the user: the last steps before exec."""
    if process.get("noNewPrivileges"):
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    user = process.get("user") or {}
    os.setgroups([int(g) for g in user.get("additionalGids") or []])
    os.setgid(int(user.get("gid", 0)))
    caps = process.get("capabilities") or {}
    if user.get("uid", 0) == 0:
        linux.set_capabilities(
            bounding=caps.get("bounding") or [],
            effective=caps.get("effective") or [],
            permitted=caps.get("permitted") or [],
            inheritable=caps.get("inheritable") or [],
        )
    os.setuid(int(user.get("uid", 0)))


def _terminal(console_fd: int, user: dict[str, Any]) -> None:
    """process.terminal: a pseudo-terminal of the container's own devpts becomes the
    process's stdin, stdout, stderr and controlling terminal; its master side goes to
    whoever listens on the console socket, in runc's protocol (one message: the
    terminal's name, with the master fd as SCM_RIGHTS). Called after pivot_root, with
    fcntl, socket, struct and termios imported before it."""
    import fcntl
    import socket
    import termios

    master, slave, name = linux.open_pty("/dev/pts")
    os.fchown(slave, int(user.get("uid", 0)), int(user.get("gid", 0)))
    with socket.socket(fileno=console_fd) as console:
        socket.send_fds(console, [name.encode()], [master])
    os.close(master)
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def run(
    config: dict[str, Any], bundle: str, fifo_fd: int, sync_fd: int, console_fd: int = -1
) -> None:
    """Never returns. Writes "ok" to sync_fd once the container is set up (or the error),
    waits for `start`, then execs the process."""
    ready = False
    try:
        process = config["process"]
        if console_fd >= 0:  # what the terminal needs, imported while the host's / is here
            import fcntl  # noqa: F401
            import socket  # noqa: F401
            import struct  # noqa: F401
            import termios  # noqa: F401
        _setup_rootfs(config, bundle)
        if config.get("hostname"):
            linux.sethostname(config["hostname"])
        os.chdir(process.get("cwd") or "/")
        if console_fd >= 0:
            _terminal(console_fd, process.get("user") or {})
        os.write(sync_fd, b"ok")
        os.close(sync_fd)
        ready = True
        # Block until `start` opens the FIFO for reading: the create/start split.
        fd = os.open(f"/proc/self/fd/{fifo_fd}", os.O_WRONLY | os.O_CLOEXEC)
        os.write(fd, b"0")
        os.close(fd)
        os.close(fifo_fd)
        set_limits(process)
        drop_privileges(process)
        env = dict(e.split("=", 1) for e in process.get("env") or [] if "=" in e)
        args = process["args"]
        execvpe(args, env)
    except BaseException as e:  # report, never raise past the fork
        message = f"{type(e).__name__}: {e}"
        try:
            if ready:
                os.write(2, f"skiff-runc: {message}\n".encode())
            else:
                os.write(sync_fd, message.encode()[:4000])
        finally:
            os._exit(127 if ready else 1)
