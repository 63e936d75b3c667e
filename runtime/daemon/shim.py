"""The shim: one small process per container that outlives the runtime daemon.

It becomes a child subreaper, runs `<oci-runtime> create` with the container's
stdout and stderr connected to pipes it owns, and then:
- copies both streams into the container's log file in the CRI format
  (`<RFC3339Nano> stdout|stderr F|P <text>`: F for a full line, P for a part);
- reopens the log file on SIGUSR1 (ReopenContainerLog, after the kubelet rotated
  it) and acknowledges in `log-reopened`;
- reaps the container when it exits and writes `exit.json` (exit code, time,
  whether the cgroup saw an OOM kill) into the container's directory.
The daemon can be killed and restarted at any time: everything it needs to
know about the container is in that directory.

    python -I -S shim.py CONTAINER_DIR ID LOG_PATH OOM_FILE RUNTIME_COMMAND...

There is one shim per container, so its memory is the runtime's cost per
container: it runs without site imports and imports only what it needs from
the standard library (no json, subprocess, datetime, or even `signal`, which
pulls in enum), and is given what it
needs on its command line rather than reading the container's record.
`OOM_FILE` is the cgroup file with the `oom_kill N` count (see runtime.cgroups).
"""

import _signal  # the C module: `signal` would import enum, almost a MiB per shim
import os
import select
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
PARTIAL_LIMIT = 16 * 1024


def _timestamp() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class LogWriter:
    """CRI log lines; a line longer than 16 KiB is split into partial (P) records."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.file = open(path, "ab", buffering=0)
        self.pending = {"stdout": b"", "stderr": b""}

    def feed(self, stream: str, data: bytes) -> None:
        buffer = self.pending[stream] + data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            self._write(stream, "F", line)
        while len(buffer) > PARTIAL_LIMIT:
            self._write(stream, "P", buffer[:PARTIAL_LIMIT])
            buffer = buffer[PARTIAL_LIMIT:]
        self.pending[stream] = buffer

    def reopen(self) -> None:
        """Log rotation: the kubelet renamed the file; carry on in a new one at the path."""
        self.file.close()
        self.file = open(self.path, "ab", buffering=0)

    def close(self) -> None:
        for stream, rest in self.pending.items():
            if rest:
                self._write(stream, "P", rest)
        self.file.close()

    def _write(self, stream: str, tag: str, text: bytes) -> None:
        self.file.write(f"{_timestamp()} {stream} {tag} ".encode() + text + b"\n")


def _write_atomically(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _oom_killed(oom_file: str) -> bool:
    try:
        with open(oom_file) as f:
            return any(line.split()[:1] == ["oom_kill"] and int(line.split()[1]) > 0 for line in f)
    except (OSError, ValueError, IndexError):
        return False


def _set_subreaper() -> None:
    import ctypes  # only here: loaded once, at start

    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _create(runtime: list[str], cid: str, bundle: str, pid_file: str) -> tuple[int, int, int]:
    """`<runtime> create` with fresh pipes as the container's stdout and stderr."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY)
    argv = [*runtime, "create", "--bundle", bundle, "--pid-file", pid_file, cid]
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, out_w, 1),
        (os.POSIX_SPAWN_DUP2, err_w, 2),
    ]
    try:
        child = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
        _, status = os.waitpid(child, 0)
    finally:
        for fd in (out_w, err_w, devnull):
            os.close(fd)
    return os.waitstatus_to_exitcode(status), out_r, err_r


def command(
    container_dir: str, cid: str, log_path: str, cgroup: str, runtime: list[str]
) -> list[str]:
    """How the daemon starts a shim (run in the daemon, not in the shim)."""
    from runtime.cgroups import open_cgroup

    oom_file = str(open_cgroup(cgroup).oom_events_file())
    script = os.path.abspath(__file__)
    return [sys.executable, "-I", "-S", script, container_dir, cid, log_path, oom_file, *runtime]


def main() -> int:
    container_dir, cid, log_path, oom_file = sys.argv[1:5]
    runtime = sys.argv[5:]
    _set_subreaper()
    # ReopenContainerLog arrives as SIGUSR1; the wakeup fd turns it into input for select.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGUSR1, lambda *_: None)
    pid_file = os.path.join(container_dir, "pid")
    code, out_r, err_r = _create(runtime, cid, os.path.join(container_dir, "bundle"), pid_file)
    if code != 0:
        _write_atomically(os.path.join(container_dir, "create-failed"), str(code))
        return 1
    with open(pid_file) as f:
        pid = int(f.read())
    _write_atomically(os.path.join(container_dir, "shim.pid"), str(os.getpid()))
    log = LogWriter(log_path)
    reopened = 0
    streams = {out_r: "stdout", err_r: "stderr"}
    while streams:
        ready, _, _ = select.select([*streams, wake_r], [], [])
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
                log.reopen()
                reopened += 1
                _write_atomically(os.path.join(container_dir, "log-reopened"), str(reopened))
                continue
            data = os.read(fd, 65536)
            if data:
                log.feed(streams[fd], data)
            else:
                os.close(fd)
                del streams[fd]
    log.close()
    exit_code = 255
    while True:  # reap everything; the container's own status is the one we record
        try:
            child, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if child == pid:
            exit_code = os.waitstatus_to_exitcode(status)
    if exit_code < 0:
        exit_code = 128 - exit_code  # killed by a signal: 128 + signal, as shells report it
    oom = "true" if _oom_killed(oom_file) else "false"
    _write_atomically(
        os.path.join(container_dir, "exit.json"),
        f'{{"exit_code": {exit_code}, "finished_at": "{_timestamp()}", "oom_killed": {oom}}}',
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
