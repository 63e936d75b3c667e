"""A throwaway control plane for benchmarks: apiserver (with its etcd) and components.

Used by the benchmark scripts beside it (`from cluster import Cluster`); every
process it starts is stopped by PID in `stop()`, the embedded etcd included.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    def __init__(self, state: Path) -> None:
        self.state, self.port = state, free_port()
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ctx(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.state / "pki" / "ca.crt"))

    def _spawn(self, name: str, args: list[str]) -> None:
        with open(self.state / f"{name}.log", "ab") as log:
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
                )
            )

    def start_apiserver(self, *extra: str) -> None:
        self._spawn(
            "apiserver",
            [
                "apiserver",
                "--state-dir",
                str(self.state),
                "--secure-port",
                str(self.port),
                "--bind-address",
                "127.0.0.1",
                "--log-level",
                "warning",
                *extra,
            ],
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/readyz", verify=self.ctx(), timeout=1).status_code == 200:
                    return
            except (OSError, httpx.HTTPError, ssl.SSLError):
                pass
            time.sleep(0.2)
        raise RuntimeError("the apiserver did not become ready")

    def spawn(self, module: str, *args: str) -> None:
        """`python -m module args...`, logged to the state directory, stopped by `stop`."""
        self._spawn(module, [module, *args])

    def start_component(self, module: str, *extra: str) -> None:
        self._spawn(
            module,
            [
                module,
                "--kubeconfig",
                str(self.state / "admin.kubeconfig"),
                "--log-level",
                "warning",
                *extra,
            ],
        )

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        pid_file = self.state / "etcd.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def client(self, connections: int = 40) -> httpx.AsyncClient:
        config = yaml.safe_load((self.state / "admin.kubeconfig").read_text())
        token = config["users"][0]["user"]["token"]
        return httpx.AsyncClient(
            base_url=self.url,
            verify=self.ctx(),
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
