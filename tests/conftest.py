"""Fixtures shared by the whole suite: a real apiserver (with its real etcd) as a process.

Tests talk to it the way users do: HTTPS with the admin kubeconfig's token and
CA. Every process a fixture starts is stopped by its PID in the finalizer,
the embedded etcd included, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ApiServerProcess:
    """`python -m apiserver` on 127.0.0.1 with its own state dir (and embedded etcd)."""

    def __init__(self, state_dir: Path, *extra: str, port: int = 0) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state_dir / "apiserver.log"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def ca(self) -> Path:
        return self.state_dir / "pki" / "ca.crt"

    @property
    def token(self) -> str:
        config = yaml.safe_load(self.kubeconfig.read_text())
        return str(config["users"][0]["user"]["token"])

    @property
    def etcd_url(self) -> str:
        """The embedded etcd's client URL (TLS, client certificate required)."""
        ports = json.loads((self.state_dir / "etcd-ports.json").read_text())
        return f"https://127.0.0.1:{ports['client']}"

    def etcd_cert_args(self) -> list[str]:
        """etcdctl flags for the apiserver's etcd client certificate, as kubeadm names it."""
        pki = self.state_dir / "pki"
        return [
            "--cacert", str(pki / "etcd" / "ca.crt"),
            "--cert", str(pki / "apiserver-etcd-client.crt"),
            "--key", str(pki / "apiserver-etcd-client.key"),
        ]  # fmt: skip

    def etcdctl(self, *args: str, certs: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["etcdctl", "--endpoints", self.etcd_url, "--command-timeout", "5s"]
        return subprocess.run(
            [*cmd, *(self.etcd_cert_args() if certs else []), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )

    def etcd_client(self) -> Any:
        """An aetcd client on the embedded etcd, with the apiserver's client certificate."""
        from apiserver.storage import ClientTLS, make_client

        pki = self.state_dir / "pki"
        tls = ClientTLS(
            pki / "etcd" / "ca.crt",
            pki / "apiserver-etcd-client.crt",
            pki / "apiserver-etcd-client.key",
        )
        return make_client(self.etcd_url, tls, timeout=10)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start(self, timeout: float = 40.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", "apiserver",
            "--state-dir", str(self.state_dir),
            "--secure-port", str(self.port),
            "--bind-address", "127.0.0.1",
            "--advertise-address", "127.0.0.1",
            *self.extra,
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"apiserver exited ({self.proc.returncode}):\n{self.tail()}")
            if self.kubeconfig.exists() and self.ca.exists():
                try:
                    r = httpx.get(self.url + "/readyz", verify=self.ssl_context(), timeout=1)
                    if r.status_code == 200:
                        return
                except (httpx.HTTPError, ssl.SSLError, OSError):
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"apiserver not ready within {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # The embedded etcd is the apiserver's child; if the apiserver could not
        # stop it, we do, by the PID it recorded.
        pid_file = self.state_dir / "etcd.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
            pid_file.unlink(missing_ok=True)

    def client(self, token: str | None = None, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(
            base_url=self.url, verify=self.ssl_context(), headers=headers, timeout=30, **kw
        )

    def async_client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        limits = httpx.Limits(max_connections=64)
        return httpx.AsyncClient(
            base_url=self.url, verify=self.ssl_context(), headers=headers, timeout=30, limits=limits
        )

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result.stdout if check else result.stdout + result.stderr


class ComponentProcess:
    """A cluster component (`python -m <module>`) talking to an apiserver by kubeconfig."""

    def __init__(self, module: str, kubeconfig: Path, log: Path, *extra: str) -> None:
        self.module, self.kubeconfig, self.log = module, kubeconfig, log
        self.extra = list(extra)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ComponentProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    self.module,
                    "--kubeconfig",
                    str(self.kubeconfig),
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: the crash case, no clean shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


FAST_ELECTION = (
    "--leader-elect-lease-duration",
    "4",
    "--leader-elect-renew-deadline",
    "3",
    "--leader-elect-retry-period",
    "1",
)


@pytest.fixture(scope="session")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ApiServerProcess, ComponentProcess]]:
    """An apiserver of its own with a controller-manager, for tests of control loops."""
    state = tmp_path_factory.mktemp("control-plane")
    server = ApiServerProcess(state)
    # A short grace period, so that a silent node goes NotReady within a test.
    manager = ComponentProcess(
        "controllers",
        state / "admin.kubeconfig",
        state / "controller-manager.log",
        *FAST_ELECTION,
        "--node-monitor-grace-period",
        "3",
    )
    try:
        server.start()
        manager.start()
        yield server, manager
    finally:
        manager.stop()
        server.stop()


@pytest.fixture
def start_component(tmp_path: Path) -> Iterator[Callable[..., ComponentProcess]]:
    """Start extra components for one test; all stopped (by PID) afterwards."""
    started: list[ComponentProcess] = []

    def start(module: str, kubeconfig: Path, *extra: str) -> ComponentProcess:
        proc = ComponentProcess(
            module, kubeconfig, tmp_path / f"{module}-{len(started)}.log", *extra
        )
        started.append(proc)
        return proc.start()

    try:
        yield start
    finally:
        for proc in started:
            proc.stop()


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    """One apiserver for the session; tests use their own namespaces to stay apart."""
    server = ApiServerProcess(tmp_path_factory.mktemp("apiserver"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_apiserver(tmp_path: Path) -> Iterator[Callable[..., ApiServerProcess]]:
    """Start extra apiservers (own state dir, own etcd) for one test; all stopped after."""
    started: list[ApiServerProcess] = []

    def start(*extra: str, state_dir: Path | None = None, port: int = 0) -> ApiServerProcess:
        server = ApiServerProcess(
            state_dir or tmp_path / f"server-{len(started)}", *extra, port=port
        )
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def api(apiserver: ApiServerProcess) -> Iterator[httpx.Client]:
    with apiserver.client() as client:
        yield client


@pytest.fixture
def namespace(api: httpx.Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-") + f"-{os.getpid()}"
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)[:63].strip("-")
    r = api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert r.status_code == 201, r.text
    yield name
    api.delete(f"/api/v1/namespaces/{name}")
