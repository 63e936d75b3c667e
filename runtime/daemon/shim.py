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

    python -m runtime.daemon.shim <container dir> <runtime command...>
"""

from __future__ import annotations

import datetime
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PARTIAL_LIMIT = 16 * 1024


def _timestamp() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


class LogWriter:
    """CRI log lines; a line longer than 16 KiB is split into partial (P) records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "ab", buffering=0)
        self.pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}

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


def _oom_killed(cgroup_path: str) -> bool:
    try:
        from runtime.cgroups import open_cgroup

        return open_cgroup(cgroup_path).oom_killed() > 0
    except OSError:
        return False


def main() -> int:
    import ctypes

    container_dir = Path(sys.argv[1])
    runtime = sys.argv[2:]
    spec = json.loads((container_dir / "container.json").read_text())
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # ReopenContainerLog arrives as SIGUSR1; the wakeup fd turns it into input for select.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid_file = container_dir / "pid"
    create = subprocess.run(
        [
            *runtime,
            "create",
            "--bundle",
            str(container_dir / "bundle"),
            "--pid-file",
            str(pid_file),
            spec["id"],
        ],
        stdin=subprocess.DEVNULL,
        stdout=out_w,
        stderr=err_w,
    )
    os.close(out_w)
    os.close(err_w)
    if create.returncode != 0:
        (container_dir / "create-failed").write_text(str(create.returncode))
        return 1
    pid = int(pid_file.read_text())
    (container_dir / "shim.pid").write_text(str(os.getpid()))
    log = LogWriter(Path(spec["log_path"]))
    reopened = 0
    streams = {out_r: "stdout", err_r: "stderr"}
    while streams:
        ready, _, _ = select.select([*streams, wake_r], [], [], 1.0)
        for fd in ready:
            if fd == wake_r:
                os.read(wake_r, 512)
                log.reopen()
                reopened += 1
                (container_dir / "log-reopened.tmp").write_text(str(reopened))
                os.replace(container_dir / "log-reopened.tmp", container_dir / "log-reopened")
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
    record = {
        "exit_code": exit_code,
        "finished_at": _timestamp(),
        "oom_killed": _oom_killed(spec["cgroup"]),
    }
    tmp = container_dir / "exit.json.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, container_dir / "exit.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
