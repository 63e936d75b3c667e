"""The real kubectl against the apiserver, relayed to the kubelet's API, relayed to the
runtime: logs (-f, --tail, --previous), exec (exit codes, -it on a terminal), attach,
port-forward and a request through it, top nodes and pods — and a kubelet that refuses
callers without a client certificate from the cluster CA.

The node is a private network namespace the pytest main thread enters (contract F), so
every process started here — etcd, apiserver, runtime daemon, the kubelet's server,
kubectl — shares its loopback and nothing leaves it. The pod's containers are made
through the runtime's gRPC API with the labels the kubelet would put on them
(contract C), without the kubelet's pod workers.
"""

from __future__ import annotations

import ctypes
import fcntl
import importlib.util
import json
import os
import pty
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc
from runtime.cgroups import remove_tree
from runtime.images.busybox import build_busybox
from runtime.images.store import ImageStore
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[3]


def _kubectl_in_venv() -> list[str]:
    venv = ROOT / ".venv" / "bin" / "kubectl"
    return [str(venv)] if venv.exists() else []


# the system kubectl, else the current one scripts/install.sh puts into .venv/bin
KUBECTL = shutil.which("kubectl") or next(iter(_kubectl_in_venv()), None)
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").exists() or KUBECTL is None,
    reason="needs root, busybox-static and kubectl",
)
CLONE_NEWNET = 0x40000000
NODE = "node-1"
NS = "default"
POD = "web"
HTTPD = (
    "mkdir -p /tmp/www && echo hello-through-port-forward > /tmp/www/index.html"
    " && dd if=/dev/urandom of=/tmp/www/big bs=1024 count=1024 2>/dev/null"
    # A sink that reads to the end before it closes its side (nc -e keeps the socket open
    # while the program runs): the client's upload arrives whole before the pod hangs up.
    " && printf '#!/bin/sh\\ncat > /tmp/up.part && mv /tmp/up.part /tmp/up\\n' > /tmp/sink"
    " && chmod +x /tmp/sink && (nc -ll -p 9000 -e /tmp/sink &)"
    " && exec httpd -f -p 8080 -h /tmp/www"
)


def _conftest() -> Any:
    spec = importlib.util.spec_from_file_location(
        "skiff_tests_conftest", ROOT / "tests/conftest.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _setns(fd: int) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns failed")


@dataclass
class Node:
    base: Path
    apiserver: Any
    runtime: pb_grpc.RuntimeServiceStub
    kubelet_port: int
    sandbox: str
    containers: dict[str, str]
    pki: Path

    def kubectl(
        self, *args: str, check: bool = True, timeout: float = 60, **stdin: Any
    ) -> subprocess.CompletedProcess[str]:
        """`stdin`: subprocess.run's `input=` or `stdin=`, for `exec -i`."""
        result = subprocess.run(
            [KUBECTL or "kubectl", "--kubeconfig", str(self.apiserver.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            **stdin,
        )
        if check:
            assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [KUBECTL or "kubectl", "--kubeconfig", str(self.apiserver.kubeconfig), *args], **kw
        )


def _start_container(
    api: pb_grpc.RuntimeServiceStub,
    sandbox_id: str,
    sandbox_config: Any,
    uid: str,
    name: str,
    attempt: int,
    command: list[str],
    stdin: bool = False,
    tty: bool = False,
) -> str:
    labels = {
        "io.kubernetes.pod.name": POD,
        "io.kubernetes.pod.namespace": NS,
        "io.kubernetes.pod.uid": uid,
        "io.kubernetes.container.name": name,
    }
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        image=pb.ImageSpec(image="busybox"),
        command=command,
        labels=labels,
        log_path=f"{name}/{attempt}.log",
        stdin=stdin,
        tty=tty,
    )
    cid = api.CreateContainer(
        pb.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config
        )
    ).container_id
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    return cid


def _state(api: pb_grpc.RuntimeServiceStub, cid: str) -> int:
    return api.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    base = tmp_path_factory.mktemp("kubelet-api")
    netns = f"skiffapi-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    original = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    cgroup_root = f"skiff-test-{uuid.uuid4().hex[:8]}"
    procs: list[subprocess.Popen[bytes]] = []
    apiserver = None
    api = None
    try:
        _setns(target)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        apiserver = _conftest().ApiServerProcess(base / "apiserver")
        apiserver.start()
        build_busybox(ImageStore(base / "images"))
        sock = base / "runtime.sock"
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "runtime.daemon",
                    "--socket",
                    str(sock),
                    "--state-dir",
                    str(base / "state"),
                    "--run-dir",
                    str(base / "run"),
                    "--image-root",
                    str(base / "images"),
                    "--pod-cidr",
                    "10.244.7.0/24",
                    "--cgroup-root",
                    f"/{cgroup_root}",
                    "--oci-runtime",
                    "skiff-runc",
                ],
                cwd=ROOT,
                stdout=open(base / "daemon.log", "ab"),
                stderr=subprocess.STDOUT,
            )
        )
        eventually(sock.exists, 30, "the runtime's socket", interval=0.1)
        api = pb_grpc.RuntimeServiceStub(grpc.insecure_channel(f"unix://{sock}"))
        # The kubelet's serving certificate, made the way `skiff up` makes it.
        certs = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "apiserver.kubelet_certs",
                    "serving",
                    "--state-dir",
                    str(apiserver.state_dir),
                    "--node",
                    NODE,
                    "--ip",
                    "127.0.0.1",
                    "--out",
                    str(base / "kubelet-pki"),
                ],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        port_file = base / "kubelet.port"
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).with_name("kubelet_api_process.py")),
                    "--socket",
                    str(sock),
                    "--node",
                    NODE,
                    "--cert",
                    certs["tls-cert-file"],
                    "--key",
                    certs["tls-private-key-file"],
                    "--client-ca",
                    certs["client-ca-file"],
                    "--kubeconfig",
                    str(apiserver.kubeconfig),
                    "--port-file",
                    str(port_file),
                ],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=open(base / "kubelet.log", "ab"),
                stderr=subprocess.STDOUT,
            )
        )
        eventually(port_file.exists, 30, "the kubelet's server", interval=0.1)
        kubelet_port = int(port_file.read_text())

        client = apiserver.client()
        client.post(
            "/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
        ).raise_for_status()
        node_obj = client.get(f"/api/v1/nodes/{NODE}").json()
        node_obj["status"] = {
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": NODE},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
        }
        client.put(f"/api/v1/nodes/{NODE}/status", json=node_obj).raise_for_status()
        containers = [
            {"name": "main", "image": "busybox"},
            {"name": "httpd", "image": "busybox"},
            {"name": "talker", "image": "busybox", "stdin": True},
            {"name": "short", "image": "busybox"},
            {"name": "shell", "image": "busybox", "stdin": True, "tty": True},
        ]
        pod = client.post(
            f"/api/v1/namespaces/{NS}/pods",
            json={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": POD},
                "spec": {"nodeName": NODE, "containers": containers},
            },
        )
        pod.raise_for_status()
        uid = pod.json()["metadata"]["uid"]

        sandbox_config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=POD, uid=uid, namespace=NS),
            hostname=POD,
            log_directory=str(base / "pods" / f"{NS}_{POD}_{uid}"),
            labels={
                "io.kubernetes.pod.name": POD,
                "io.kubernetes.pod.namespace": NS,
                "io.kubernetes.pod.uid": uid,
            },
        )
        sid = api.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox_config)).pod_sandbox_id
        # The main container's first life ended; its second runs and ticks.
        first = _start_container(
            api, sid, sandbox_config, uid, "main", 0, ["sh", "-c", "echo first life; exit 1"]
        )
        eventually(
            lambda: _state(api, first) == pb.CONTAINER_EXITED,
            30,
            "the first life to end",
            interval=0.1,
        )
        ids = {
            "main": _start_container(
                api,
                sid,
                sandbox_config,
                uid,
                "main",
                1,
                [
                    "sh",
                    "-c",
                    "echo hello from main; echo to stderr >&2; i=0; "
                    "while true; do echo tick $i; i=$((i+1)); sleep 0.3; done",
                ],
            ),
            "httpd": _start_container(
                api, sid, sandbox_config, uid, "httpd", 0, ["sh", "-c", HTTPD]
            ),
            "talker": _start_container(
                api,
                sid,
                sandbox_config,
                uid,
                "talker",
                0,
                ["sh", "-c", "while read line; do echo heard: $line; done"],
                stdin=True,
            ),
        }
        for cid in ids.values():
            eventually(
                lambda c=cid: _state(api, c) == pb.CONTAINER_RUNNING,
                30,
                "a running container",
                interval=0.1,
            )

        # A shell on a terminal, for `attach -it`.
        shell = _start_container(
            api, sid, sandbox_config, uid, "shell", 0, ["sh"], stdin=True, tty=True
        )
        eventually(
            lambda: _state(api, shell) == pb.CONTAINER_RUNNING, 30, "the shell to run", interval=0.1
        )
        # One that ends by itself, for `logs -f` to end with it.
        _start_container(
            api, sid, sandbox_config, uid, "short", 0, ["sh", "-c", "echo one; sleep 1; echo two"]
        )

        def listening() -> bool:
            request = pb.ExecSyncRequest(container_id=ids["httpd"], cmd=["netstat", "-lnt"])
            return b":8080 " in api.ExecSync(request).stdout

        eventually(listening, 30, "httpd to listen in the pod", interval=0.1)
        pod_obj = client.get(f"/api/v1/namespaces/{NS}/pods/{POD}").json()
        pod_obj["status"] = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        client.put(f"/api/v1/namespaces/{NS}/pods/{POD}/status", json=pod_obj).raise_for_status()
        yield Node(base, apiserver, api, kubelet_port, sid, ids, apiserver.state_dir / "pki")
    finally:
        try:
            if api is not None:
                for s in api.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=60).items:
                    api.RemovePodSandbox(
                        pb.RemovePodSandboxRequest(pod_sandbox_id=s.id), timeout=60
                    )
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait()
            if apiserver is not None:
                apiserver.stop()
            _setns(original)
            os.close(original)
            os.close(target)
            subprocess.run(["ip", "netns", "del", netns], check=False)
            remove_tree(cgroup_root)


@pytest.fixture(autouse=True)
def _kubectl_of_this_run(request: pytest.FixtureRequest) -> Iterator[None]:
    """Stream tests that take `kubectl_binary` run once with each kubectl there is
    (1.32 and the current release): kubectl's own protocols are what they test."""
    global KUBECTL
    default = KUBECTL
    if "kubectl_binary" in request.fixturenames:
        KUBECTL = request.getfixturevalue("kubectl_binary")
    yield
    KUBECTL = default


def test_logs_tail_previous_and_follow(node: Node, kubectl_binary: str) -> None:
    out = node.kubectl("logs", POD, "-c", "main").stdout
    lines = out.splitlines()
    # stdout and stderr are separate pipes: their relative order is the shim's to pick.
    assert lines[0] == "hello from main" and {"to stderr", "tick 0"} <= set(lines[:3])
    assert node.kubectl("logs", POD, "-c", "main", "--previous").stdout == "first life\n"
    tail = node.kubectl("logs", POD, "-c", "main", "--tail=1").stdout
    assert tail.count("\n") == 1 and tail.startswith("tick ")
    stamped = node.kubectl("logs", POD, "-c", "main", "--timestamps", "--tail=1").stdout
    assert stamped.split(" ", 1)[0].endswith("Z") and " tick " in stamped
    assert node.kubectl("logs", POD, "-c", "main", "--limit-bytes=5").stdout == "hello"
    # -f keeps printing lines written after it started.
    last = int(tail.split()[1])
    follow = node.popen("logs", "-f", POD, "-c", "main", stdout=subprocess.PIPE, bufsize=0)
    try:
        assert follow.stdout is not None
        _read_until(follow.stdout.fileno(), f"tick {last + 3}\n".encode())
    finally:
        follow.kill()
        follow.wait()
    # A container that does not exist in the pod: the apiserver says so.
    bad = node.kubectl("logs", POD, "-c", "nope", check=False)
    assert bad.returncode != 0 and "container nope is not valid for pod web" in bad.stderr


def test_logs_follow_ends_when_the_container_exits(node: Node) -> None:
    assert node.kubectl("logs", "-f", POD, "-c", "short").stdout == "one\ntwo\n"


def exec_i(node: Node, script: str, **stdin: Any) -> subprocess.CompletedProcess[str]:
    """`kubectl exec -i` of a shell script in the main container, fed `input=` or `stdin=`."""
    return node.kubectl(
        "exec", "-i", POD, "-c", "main", "--", "sh", "-c", script, check=False, **stdin
    )


def test_exec_output_and_exit_codes(node: Node, kubectl_binary: str) -> None:
    ok = node.kubectl("exec", POD, "-c", "main", "--", "sh", "-c", "echo out; echo err >&2")
    assert ok.stdout == "out\n" and "err" in ok.stderr
    failed = node.kubectl("exec", POD, "-c", "main", "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3
    piped = exec_i(node, "tr a-z A-Z", input="shout\n")
    assert piped.returncode == 0 and piped.stdout == "SHOUT\n", piped.stderr


def test_exec_ends_with_its_output_and_exit_code_while_stdin_still_flows(
    node: Node, kubectl_binary: str
) -> None:
    """The command reads a line and exits while kubectl is still sending (`yes`): its
    last output and its exit code arrive all the same. The kubelet's write of more
    input may fail against the runtime's finished call, and that failure must not take
    the place of the exit code (tests/unit/kubelet/test_stream_session.py)."""
    yes = subprocess.Popen(["yes", "hi"], stdout=subprocess.PIPE)
    try:
        run = exec_i(node, "read x; echo got $x; echo bye >&2; exit 4", stdin=yes.stdout)
    finally:
        yes.kill()
        yes.wait()
        if yes.stdout is not None:
            yes.stdout.close()
    assert run.returncode == 4, run.stderr
    assert run.stdout == "got hi\n" and "bye\n" in run.stderr, run.stderr


def _read_until(fd: int, wanted: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"never saw {wanted!r}; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    assert wanted in seen, f"never saw {wanted!r}; got {seen!r}"
    return seen


def test_exec_interactive_terminal(node: Node, kubectl_binary: str) -> None:
    leader, follower = pty.openpty()
    proc = node.popen(
        "exec",
        "-it",
        POD,
        "-c",
        "main",
        "--",
        "sh",
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    try:
        os.write(leader, b"tty; echo $((6*7))\n")
        out = _read_until(leader, b"42")
        assert b"/dev/pts/" in out or b"/dev/console" in out
        os.write(leader, b"exit 4\n")
        assert proc.wait(timeout=30) == 4
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)


def test_attach_sends_input_and_shows_output(node: Node, kubectl_binary: str) -> None:
    proc = node.popen(
        "attach",
        "-i",
        POD,
        "-c",
        "talker",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"hello there\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        while line and b"heard:" not in line:
            line = proc.stdout.readline()
        assert line == b"heard: hello there\n"
    finally:
        proc.kill()
        proc.wait()


def test_attach_to_a_terminal(node: Node, kubectl_binary: str) -> None:
    leader, follower = pty.openpty()
    # kubectl sends its terminal's size on the resize channel; the shell's sees it.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = node.popen(
        "attach", "-it", POD, "-c", "shell", stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    try:
        # kubectl sends the size + 1, then the size (to make the program redraw), so
        # the shell may answer the first before the second has arrived: ask again.
        deadline = time.monotonic() + 30
        while True:
            os.write(leader, b"stty size; echo $((6*7))x\n")
            out = _read_until(leader, b"42x")
            if b"33 101" in out or time.monotonic() > deadline:
                break
        assert b"33 101" in out, out
    finally:
        proc.kill()
        proc.wait()
        os.close(leader)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_forward_carries_requests_both_ways(node: Node, kubectl_binary: str) -> None:
    web, sink = _free_port(), _free_port()
    proc = node.popen(
        "port-forward",
        f"pod/{POD}",
        f"{web}:8080",
        f"{sink}:9000",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().decode() for _ in range(2)]
        if not all(lines):
            proc.wait(timeout=30)
        assert f"Forwarding from 127.0.0.1:{web} -> 8080" in lines[0], (
            proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else lines
        )
        for _ in range(3):  # several connections over the one port-forward
            answer = httpx.get(f"http://127.0.0.1:{web}/index.html", timeout=30)
            assert answer.status_code == 200 and answer.text == "hello-through-port-forward\n"
        # A mebibyte down and one up: more than any SPDY window, in many frames.
        big = httpx.get(f"http://127.0.0.1:{web}/big", timeout=60)
        assert big.status_code == 200 and len(big.content) == 1024 * 1024
        with socket.create_connection(("127.0.0.1", sink), timeout=60) as conn:
            conn.sendall(big.content)
        digest = node.kubectl("exec", POD, "-c", "httpd", "--", "md5sum", "/tmp/www/big")
        eventually(
            lambda: (
                node.kubectl(
                    "exec", POD, "-c", "httpd", "--", "sh", "-c", "md5sum < /tmp/up", check=False
                ).stdout.split()[:1]
                == digest.stdout.split()[:1]
            ),
            30,
            "the upload to arrive whole",
            interval=0.1,
        )
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_top_nodes_and_pods(node: Node, kubectl_binary: str) -> None:
    nodes = node.kubectl("top", "nodes").stdout.splitlines()
    assert nodes[0].split()[:2] == ["NAME", "CPU(cores)"]
    assert nodes[1].split()[0] == NODE and nodes[1].split()[1].endswith("m")
    pods = node.kubectl("top", "pods").stdout.splitlines()
    assert pods[0].split()[:3] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert pods[1].split()[0] == POD and pods[1].split()[2].endswith("Mi")
    per_container = node.kubectl("top", "pod", POD, "--containers").stdout
    assert {"main", "httpd", "talker"} <= {r.split()[1] for r in per_container.splitlines()[1:]}


def test_kubelet_refuses_callers_without_a_client_certificate(node: Node) -> None:
    ca = str(node.pki / "ca.crt")
    url = f"https://127.0.0.1:{node.kubelet_port}"
    anonymous = httpx.get(f"{url}/healthz", verify=ssl.create_default_context(cafile=ca))
    assert anonymous.status_code == 401 and anonymous.text == "Unauthorized"
    with_cert = ssl.create_default_context(cafile=ca)
    with_cert.load_cert_chain(
        node.pki / "apiserver-kubelet-client.crt", node.pki / "apiserver-kubelet-client.key"
    )
    with httpx.Client(verify=with_cert) as client:
        assert client.get(f"{url}/healthz").text == "ok"
        summary = client.get(f"{url}/stats/summary").json()
        assert summary["node"]["nodeName"] == NODE
        assert {p["podRef"]["name"] for p in summary["pods"]} == {POD}
        pods = client.get(f"{url}/pods").json()
        assert [p["metadata"]["name"] for p in pods["items"]] == [POD]
        assert "kubelet_running_pods 1" in client.get(f"{url}/metrics").text
    # Through the apiserver: nodes/proxy reaches the same endpoints.
    proxied = node.kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/healthz").stdout
    assert proxied == "ok"


def test_kubelet_authorizes_its_callers_through_the_apiserver(node: Node) -> None:
    """A certificate from the cluster CA is not enough: the kubelet asks the apiserver
    (SubjectAccessReview) whether its caller may use nodes/stats, nodes/proxy, ..."""
    from apiserver import certs

    ca = str(node.pki / "ca.crt")
    url = f"https://127.0.0.1:{node.kubelet_port}"
    who = f"monitor-{uuid.uuid4().hex[:6]}"

    def client_as(user: str) -> httpx.Client:
        pair = certs.issue(
            certs.KeyPair(node.pki / "ca.crt", node.pki / "ca.key"),
            certs.KeyPair(node.pki / f"{user}.crt", node.pki / f"{user}.key"),
            common_name=user,
            client=True,
        )
        context = ssl.create_default_context(cafile=ca)
        context.load_cert_chain(pair.cert, pair.key)
        return httpx.Client(verify=context)

    with client_as(who) as client:
        r = client.get(f"{url}/stats/summary")
        assert r.status_code == 403
        assert r.text == (f"Forbidden (user={who}, verb=get, resource=nodes, subresource=stats)")
        assert client.get(f"{url}/pods").status_code == 403
    # Granted nodes/stats only: stats yes, logs and exec still no. The grant goes to a
    # user the kubelet has not seen: a denial is cached for 30 s, as the kubelet caches
    # it (tests/unit/kubelet/test_authz_tokens.py), and waiting that out costs 30 s.
    granted = f"{who}-granted"
    role = {
        "metadata": {"name": f"{who}-stats"},
        "rules": [{"apiGroups": [""], "resources": ["nodes/stats"], "verbs": ["get"]}],
    }
    with node.apiserver.client() as api:
        made = api.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", json=role)
        assert made.status_code == 201, made.text
    node.kubectl(
        "create", "clusterrolebinding", granted, f"--clusterrole={who}-stats", f"--user={granted}"
    )
    # The apiserver's authorizer has the binding (it is not cached there) before the
    # kubelet is asked, so the kubelet's first question gets the answer "allowed".
    attributes = {"verb": "get", "resource": "nodes", "subresource": "stats", "name": NODE}
    sar = {"spec": {"user": granted, "resourceAttributes": attributes}}
    with node.apiserver.client() as api:
        eventually(
            lambda: (
                api.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=sar)
                .json()
                .get("status", {})
                .get("allowed")
            ),
            30,
            "the grant in the apiserver",
            interval=0.1,
        )
    with client_as(granted) as client:
        assert client.get(f"{url}/stats/summary").status_code == 200
        assert client.get(f"{url}/containerLogs/{NS}/{POD}/main").status_code == 403
        assert client.get(f"{url}/pods").status_code == 403


def test_port_forward_to_a_closed_port_says_why(node: Node) -> None:
    local = _free_port()
    proc = node.popen(
        "port-forward",
        f"pod/{POD}",
        f"{local}:9999",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert "Forwarding from" in proc.stdout.readline().decode()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{local}/", timeout=30)
        # kubectl reports what the kubelet wrote on the error stream, then gives up.
        proc.wait(timeout=30)
        err = proc.stderr.read().decode()
        assert "error forwarding port 9999 to pod default/web" in err, err
        assert "refused" in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_python_client_execs_and_forwards_over_plain_websocket(node: Node) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    from kubernetes.stream import portforward, stream

    api = kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(str(node.apiserver.kubeconfig))
    )
    out = stream(
        api.connect_get_namespaced_pod_exec,
        POD,
        NS,
        container="main",
        command=["sh", "-c", "echo from-python"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert out == "from-python\n"
    forward = portforward(api.connect_get_namespaced_pod_portforward, POD, NS, ports="8080")
    try:
        sock = forward.socket(8080)
        sock.setblocking(True)
        sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
        answer = b""
        while b"hello-through-port-forward" not in answer:
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n")[0]
        sock.close()
    finally:
        forward.close()


def test_the_apiserver_refuses_streams_without_credentials(node: Node) -> None:
    url = node.apiserver.url.replace("https://", "wss://")
    context = ssl.create_default_context(cafile=str(node.apiserver.ca))

    async def attempt() -> int:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        try:
            async with connect(
                f"{url}/api/v1/namespaces/{NS}/pods/{POD}/exec?command=true&stdout=true",
                ssl=context,
                subprotocols=["v5.channel.k8s.io"],
            ):
                return 101
        except InvalidStatus as e:
            return e.response.status_code

    import asyncio

    assert asyncio.run(attempt()) == 401
    unknown = node.kubectl("exec", POD, "-c", "nope", "--", "true", check=False)
    assert unknown.returncode != 0 and "container nope is not valid for pod web" in unknown.stderr


def test_what_is_not_there_is_named(node: Node) -> None:
    no_previous = node.kubectl("logs", POD, "-c", "httpd", "--previous", check=False)
    assert no_previous.returncode != 0
    assert 'previous terminated container "httpd" in pod "web" not found' in no_previous.stderr
    # A pod bound to the node that the kubelet does not run (yet).
    client = node.apiserver.client()
    client.post(
        f"/api/v1/namespaces/{NS}/pods",
        json={
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "ghost"},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]},
        },
    ).raise_for_status()
    ghost = client.get(f"/api/v1/namespaces/{NS}/pods/ghost").json()
    ghost["status"] = {"phase": "Running"}
    client.put(f"/api/v1/namespaces/{NS}/pods/ghost/status", json=ghost).raise_for_status()
    try:
        # Until the kubelet has heard of the pod it does not exist there; then it waits.
        waiting = 'container "c" in pod "ghost" is waiting to start: ContainerCreating'
        eventually(
            lambda: waiting in node.kubectl("logs", "ghost", check=False).stderr,
            30,
            "the kubelet to know the pod",
            interval=0.1,
        )
        forward = node.kubectl(
            "port-forward", "pod/ghost", f"{_free_port()}:80", check=False, timeout=60
        )
        assert forward.returncode != 0 and 'pod "ghost" does not exist' in forward.stderr
        execed = node.kubectl("exec", "ghost", "--", "true", check=False)
        assert execed.returncode != 0 and 'container "c" in pod "ghost" is not running' in (
            execed.stderr
        )
    finally:
        client.delete(f"/api/v1/namespaces/{NS}/pods/ghost", params={"gracePeriodSeconds": 0})


def test_a_client_certificate_opens_an_exec_stream(node: Node) -> None:
    """Authentication on WebSocket requests by client certificate (kubectl above used a
    token), and the v5 channel protocol as a client other than kubectl sees it."""
    import asyncio

    from websockets.asyncio.client import connect

    context = ssl.create_default_context(cafile=str(node.apiserver.ca))
    context.load_cert_chain(node.pki / "admin.crt", node.pki / "admin.key")
    url = node.apiserver.url.replace("https://", "wss://")
    query = "command=sh&command=-c&command=echo+hi%3B+exit+2&container=main&stdout=true"

    async def session() -> list[bytes]:
        async with connect(
            f"{url}/api/v1/namespaces/{NS}/pods/{POD}/exec?{query}",
            ssl=context,
            subprotocols=["v5.channel.k8s.io"],  # type: ignore[list-item]
        ) as ws:
            assert ws.subprotocol == "v5.channel.k8s.io"
            return [m if isinstance(m, bytes) else m.encode() async for m in ws]

    messages = asyncio.run(session())
    assert b"\x01hi\n" in messages
    status = json.loads(messages[-1][1:])
    assert messages[-1][0] == 3 and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "2"}]


def test_logs_follow_carries_on_after_rotation(node: Node) -> None:
    """Runs last: it rotates the main container's log, as the kubelet's log manager does."""
    follow = node.popen("logs", "-f", POD, "-c", "main", stdout=subprocess.PIPE, bufsize=0)
    try:
        assert follow.stdout is not None
        fd = follow.stdout.fileno()
        _read_until(fd, b"tick ")
        cid = node.containers["main"]
        status = node.runtime.ContainerStatus(pb.ContainerStatusRequest(container_id=cid))
        path = Path(status.status.log_path)
        path.rename(path.with_name(path.name + ".20261202-000000"))
        node.runtime.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
        eventually(
            lambda: path.exists() and path.read_text(), 30, "the new log file to fill", interval=0.1
        )
        # A tick written after the rotation reaches the follower.
        after = int(path.read_text().split()[-1]) + 1
        _read_until(fd, f"tick {after}\n".encode())
    finally:
        follow.kill()
        follow.wait()


@dataclass
class DeadKubelet:
    """A kubelet's API that takes an exec stream, sends some output, and then ends it:
    for pod `on-gone` it dies (the TCP connection reset with no WebSocket close, as
    `kill -9` of the kubelet); for `on-leaving` it closes with 1001, going away (a
    kubelet shutting down with the stream still open)."""

    port: int
    node: str = "node-gone"


@pytest.fixture(scope="module")
def dead_kubelet(node: Node) -> Iterator[DeadKubelet]:
    certs = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "apiserver.kubelet_certs",
                "serving",
                "--state-dir",
                str(node.apiserver.state_dir),
                "--node",
                "node-gone",
                "--ip",
                "127.0.0.1",
                "--out",
                str(node.base / "gone-pki"),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs["tls-cert-file"], certs["tls-private-key-file"])

    def handler(ws: Any) -> None:
        ws.send(b"\x01partial output\n")
        if "/on-leaving/" in ws.request.path:
            ws.close(1001, "kubelet is shutting down")
            return
        # Reset, not close: SO_LINGER 0 makes close() send RST and nothing else.
        raw = ws.socket
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()

    from websockets.sync.server import serve as ws_serve

    # Made on this (the node's network namespace's) thread, so it listens in it.
    server = ws_serve(
        handler,
        "127.0.0.1",
        0,
        ssl=context,
        subprotocols=["v5.channel.k8s.io"],  # type: ignore[list-item]
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield DeadKubelet(server.socket.getsockname()[1])
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.mark.parametrize(
    ("pod", "says"),
    [("on-gone", "abnormally"), ("on-leaving", "shutting down")],
    ids=["dies", "shuts-down"],
)
def test_a_kubelet_ending_mid_exec_is_an_error_not_success(
    node: Node, dead_kubelet: DeadKubelet, kubectl_binary: str, pod: str, says: str
) -> None:
    """kube-apiserver tunnels the kubelet's connection, so kubectl sees it drop, or the
    kubelet's own close, and fails; a relay that closed normally instead made
    `kubectl exec` exit 0."""
    client = node.apiserver.client()
    name = dead_kubelet.node
    client.post(
        "/api/v1/nodes", json={"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    ).raise_for_status()
    try:
        node_obj = client.get(f"/api/v1/nodes/{name}").json()
        node_obj["status"] = {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": dead_kubelet.port}},
        }
        client.put(f"/api/v1/nodes/{name}/status", json=node_obj).raise_for_status()
        client.post(
            f"/api/v1/namespaces/{NS}/pods",
            json={
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod},
                "spec": {"nodeName": name, "containers": [{"name": "c", "image": "busybox"}]},
            },
        ).raise_for_status()
        pod_obj = client.get(f"/api/v1/namespaces/{NS}/pods/{pod}").json()
        pod_obj["status"] = {"phase": "Running"}
        client.put(f"/api/v1/namespaces/{NS}/pods/{pod}/status", json=pod_obj)
        result = node.kubectl("exec", pod, "--", "sleep", "3600", check=False, timeout=60)
        assert result.stdout == "partial output\n"
        assert result.returncode != 0, result.stderr
        assert says in result.stderr, result.stderr
    finally:
        client.delete(f"/api/v1/namespaces/{NS}/pods/{pod}", params={"gracePeriodSeconds": 0})
        client.delete(f"/api/v1/nodes/{name}")
