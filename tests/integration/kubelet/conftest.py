"""One node for the tests of this directory: a private network namespace with etcd, apiserver,
controller-manager, scheduler, the runtime daemon and the kubelet inside it.

The pytest main thread enters the namespace with setns(2) for the fixture's
life (contract F), so every process it starts inherits it: loopback is
private, the pod bridge and its routes exist only there, and nothing can reach
outside (the namespace has no route out). `ip netns exec` is not used because
it remounts /sys, which would hide the cgroups from the runtime. Everything is
stopped by PID and the namespace and cgroups removed in the finalizer, also
when a test fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from proto import runtime_pb2 as pb
from runtime.cgroups import remove_tree
from runtime.images.busybox import build_busybox
from runtime.images.store import ImageStore
from tests.conftest import FAST_ELECTION, ROOT, ApiServerProcess, ComponentProcess
from tests.polling import eventually
from tests.runtime_daemon import RuntimeDaemon, unmount_below

CLONE_NEWNET = 0x40000000
NODE = "node-1"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").exists(), reason="needs root and busybox-static"
)


def _setns(path: str) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns {path}: {os.strerror(errno)}")
    finally:
        os.close(fd)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """tests/polling.py's eventually(), with what the kubelet's tests take for "not
    yet": the API not answering yet, a field or a list item not there yet."""
    return eventually(
        check, timeout, what, interval=0.3, ignoring=(httpx.HTTPError, KeyError, IndexError)
    )


@dataclass
class Node:
    """The cluster of one node, seen as a user sees it."""

    base: Path
    server: ApiServerProcess
    runtime: RuntimeDaemon
    kubelet: ComponentProcess
    others: list[ComponentProcess] = field(default_factory=list)

    def api(self) -> httpx.Client:
        return self.server.client()

    def kubectl(self, *args: str, check: bool = True) -> str:
        return self.server.kubectl(*args, check=check)

    def start_kubelet(self) -> None:
        self.kubelet.start()

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self.api() as api:
            r = api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        return r.json() if r.status_code == 200 else None

    def containers(self) -> list[Any]:
        return list(self.runtime.client().ListContainers(pb.ListContainersRequest()).containers)

    def exec(self, container_id: str, *command: str) -> str:
        """Run a command in a container through the runtime; its output."""
        request = pb.ExecSyncRequest(container_id=container_id, cmd=list(command), timeout=10)
        result = self.runtime.client().ExecSync(request, timeout=30)
        assert result.exit_code == 0, result.stderr.decode()
        return str(result.stdout.decode())

    def logs(self) -> str:
        return (self.base / "kubelet.log").read_text(errors="replace")[-5000:]


def _tls_flags(base: Path, server: ApiServerProcess) -> list[str]:
    """A serving certificate from the cluster CA for the kubelet's HTTPS API."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "apiserver.kubelet_certs",
            "serving",
            "--state-dir",
            str(server.state_dir),
            "--node",
            NODE,
            "--ip",
            "127.0.0.1",
            "--out",
            str(base / "kubelet-pki"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    paths = json.loads(out.stdout)
    return [f"--{flag}={path}" for flag, path in paths.items()]


def _kubelet(base: Path, server: ApiServerProcess, runtime: RuntimeDaemon) -> ComponentProcess:
    return ComponentProcess(
        "kubelet",
        server.kubeconfig,
        base / "kubelet.log",
        "--node-name",
        NODE,
        "--node-ip",
        "127.0.0.1",
        "--runtime-endpoint",
        str(runtime.socket),
        "--root-dir",
        str(base / "kubelet"),
        "--log-dir",
        str(base / "pods"),
        "--pod-manifest-path",
        str(base / "manifests"),
        "--default-local-storage-path",
        str(base / "storage"),
    )


# One node for every module of this directory. A node costs a whole control plane, a
# runtime and a kubelet to start and to stop, and the tests keep apart by namespaces of
# their own (`ns`). Not a "package" fixture: this directory is no package (it would be
# named `kubelet` and hide the kubelet's own), and without one pytest keeps a package
# fixture, and this thread in the node's namespace, to the end of the session. So the
# node is closed by the hook below once the next test is outside this directory.
_HERE = Path(__file__).resolve().parent
_shared: list[contextlib.ExitStack | Node] = []


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    """The directory's node, started by the first module that needs it."""
    if not _shared:
        stack = contextlib.ExitStack()
        n = stack.enter_context(one_node(tmp_path_factory.mktemp("node")))
        _shared.extend([stack, n])
    n = _shared[1]
    assert isinstance(n, Node)
    return n


def _close_shared_node() -> None:
    if _shared:
        stack = _shared[0]
        _shared.clear()
        assert isinstance(stack, contextlib.ExitStack)
        stack.close()


@pytest.hookimpl(trylast=True)  # after the test's fixtures (their namespaces) are torn down
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if nextitem is None or _HERE not in Path(nextitem.path).resolve().parents:
        _close_shared_node()


@pytest.hookimpl(trylast=True)  # after pytest has torn down the fixtures still set up
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Also when the run stops early (-x, Ctrl-C): the node never outlives the session."""
    _close_shared_node()


@contextlib.contextmanager
def one_node(base: Path, own_identity: bool = False) -> Iterator[Node]:
    """The whole node in a namespace of its own, entered by this thread (also used by
    bench/pod_startup.py); everything removed on the way out."""
    (base / "manifests").mkdir()
    netns = f"skifftest-kubelet-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    home = os.open(f"/proc/{os.getpid()}/task/{os.getpid()}/ns/net", os.O_RDONLY)
    _setns(f"/run/netns/{netns}")
    server = ApiServerProcess(base / "apiserver")
    runtime = RuntimeDaemon(base, log="runtime.log")  # in this thread's namespace
    kubelet = _kubelet(base, server, runtime)
    n = Node(base, server, runtime, kubelet)
    try:
        build_busybox(ImageStore(base / "images"))
        server.start()
        kubelet.extra += _tls_flags(base, server)  # the cluster CA exists from here on
        if own_identity:  # the kubelet as system:node:<NODE>, not as the admin
            made = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "apiserver.identities",
                    "--state-dir",
                    str(server.state_dir),
                    "node",
                    NODE,
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            kubelet.kubeconfig = Path(json.loads(made.stdout)["kubeconfig"])
        runtime.start()
        n.others = [
            ComponentProcess(
                "controllers", server.kubeconfig, base / "controllers.log", *FAST_ELECTION
            ).start(),
            ComponentProcess(
                "scheduler", server.kubeconfig, base / "scheduler.log", *FAST_ELECTION
            ).start(),
        ]
        kubelet.start()
        with n.api() as api:
            wait_for(lambda: _ready(api), "the node to be Ready", timeout=60)
        yield n
    finally:
        try:
            kubelet.stop()
            for proc in n.others:
                proc.stop()
            runtime.cleanup()  # the pods, shims, their cgroups and mounts under base
            server.stop()
            unmount_below(base)
        finally:
            _setns_fd(home)
            os.close(home)
            subprocess.run(["ip", "netns", "del", netns], check=False)
            remove_tree(runtime.cgroup_root)


def _setns_fd(fd: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns back to the original namespace")


def _ready(api: httpx.Client) -> bool:
    r = api.get(f"/api/v1/nodes/{NODE}")
    if r.status_code != 200:
        return False
    node = r.json()
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
    return conditions.get("Ready") == "True" and bool(node["spec"].get("podCIDR"))


@pytest.fixture
def ns(node: Node, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own on the module's node."""
    name = "t-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in name).strip("-")
    with node.api() as api:
        r = api.post("/api/v1/namespaces", json={"metadata": {"name": name}})
        assert r.status_code == 201, r.text
        wait_for(
            lambda: (
                api.get(f"/api/v1/namespaces/{name}/serviceaccounts/default").status_code == 200
            ),
            "the default service account",
        )
    yield name
    with node.api() as api:
        api.delete(f"/api/v1/namespaces/{name}")


def make_pod(name: str, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"nodeName": NODE, "containers": list(containers), **spec},
    }


def busybox(name: str, *command: str, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "busybox",
        "imagePullPolicy": "IfNotPresent",
        "command": list(command) or ["sleep", "3600"],
        **more,
    }


def create(node: Node, ns: str, pod: dict[str, Any]) -> dict[str, Any]:
    with node.api() as api:
        r = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod)
        assert r.status_code == 201, r.text
        return dict(r.json())


def status_of(node: Node, ns: str, name: str) -> dict[str, Any]:
    pod = node.pod(ns, name)
    return (pod or {}).get("status") or {}


def container_status(node: Node, ns: str, name: str, container: str) -> dict[str, Any]:
    for c in status_of(node, ns, name).get("containerStatuses") or []:
        if c["name"] == container:
            return dict(c)
    return {}


def condition(status: dict[str, Any], kind: str) -> str:
    for c in status.get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return ""


def events(node: Node, ns: str, name: str) -> list[dict[str, Any]]:
    with node.api() as api:
        items = api.get(f"/api/v1/namespaces/{ns}/events").json()["items"]
    return [e for e in items if e["involvedObject"]["name"] == name]


def dump(x: Any) -> str:
    return json.dumps(x, indent=1)[:3000]
