"""The runtime daemon over gRPC, as the kubelet will drive it: sandboxes with a pod
network inside a throwaway node namespace, containers held by shims, and a daemon
that can be killed without its containers noticing."""

from __future__ import annotations

import io
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc
from runtime.images.store import ImageStore
from tests.polling import eventually
from tests.runtime_daemon import RuntimeDaemon

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").exists(), reason="needs root and busybox-static"
)


def sandbox(api: Any, name: str) -> str:
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
        hostname=name,
        dns_config=pb.DNSConfig(servers=["10.96.0.10"], searches=["default.svc.cluster.local"]),
    )
    return api.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id


def container(api: Any, sid: str, name: str, args: list[str]) -> str:
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image="busybox"), command=args
    )
    return api.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sid, config=config)
    ).container_id


def status(api: Any, cid: str) -> Any:
    return api.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status


def wait_state(api: Any, cid: str, state: int, timeout: float = 20) -> Any:
    return eventually(
        lambda: (s := status(api, cid)).state == state and s,
        timeout,
        lambda: f"state {state} of {cid[:13]}: it stayed {status(api, cid).state}",
        interval=0.1,
    )


@pytest.mark.parametrize("daemon", ["skiff-runc", "runc", "crun"], indirect=True)
def test_sandbox_container_lifecycle_and_exec(daemon: RuntimeDaemon) -> None:
    api = daemon.client()
    sid = sandbox(api, "web")
    sb = api.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert sb.state == pb.SANDBOX_READY and sb.ip.startswith("10.244.3.")
    cid = container(api, sid, "main", ["sh", "-c", "echo started; sleep 30"])
    assert status(api, cid).state == pb.CONTAINER_CREATED
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    running = wait_state(api, cid, pb.CONTAINER_RUNNING)
    assert running.pid > 0
    out = api.ExecSync(
        pb.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "hostname; cat /etc/resolv.conf; ip -4 addr"]
        )
    )
    text = out.stdout.decode()
    assert out.exit_code == 0 and text.splitlines()[0] == "web"
    assert "nameserver 10.96.0.10" in text and sb.ip in text
    # A process that ignores SIGTERM is killed after the grace period.
    stubborn = container(api, sid, "stubborn", ["sh", "-c", "trap '' TERM; sleep 100"])
    api.StartContainer(pb.StartContainerRequest(container_id=stubborn))
    wait_state(api, stubborn, pb.CONTAINER_RUNNING)
    api.StopContainer(pb.StopContainerRequest(container_id=stubborn, timeout=1))
    stopped = wait_state(api, stubborn, pb.CONTAINER_EXITED)
    assert stopped.exit_code == 137 and stopped.reason == "Error"
    log = Path(status(api, cid).log_path).read_text()
    assert " stdout F started" in log
    with pytest.raises(grpc.RpcError) as e:
        status(api, "no-such-container")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # Removing the pod removes everything it made: containers, their cgroups, its own.
    api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert api.ListContainers(pb.ListContainersRequest(pod_sandbox_id=sid)).containers == []
    left = Path("/sys/fs/cgroup").glob(f"*/{daemon.cgroup_root}/pod{sid[:12]}*")
    assert not list(left)  # in every hierarchy: runc makes the pod's in all of them


@pytest.mark.parametrize("daemon", ["skiff-runc", "runc", "crun"], indirect=True)
def test_memory_hog_is_oom_killed_and_reported(daemon: RuntimeDaemon) -> None:
    api = daemon.client()
    sid = sandbox(api, "hog")
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="hog"),
        image=pb.ImageSpec(image="busybox"),
        command=["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
        linux=pb.LinuxContainerConfig(
            resources=pb.LinuxContainerResources(memory_limit_in_bytes=32 * 1024 * 1024)
        ),
    )
    cid = api.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sid, config=config)
    ).container_id
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    done = wait_state(api, cid, pb.CONTAINER_EXITED, timeout=60)
    assert done.reason == "OOMKilled" and done.exit_code != 0
    assert "survived" not in Path(done.log_path).read_text()


def catches(pid: int, sig: int) -> bool:
    """Whether process `pid` has a handler for `sig` (/proc/PID/status, SigCgt)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_containers_survive_a_killed_daemon(daemon: RuntimeDaemon) -> None:
    api = daemon.client()
    sid = sandbox(api, "survivor")
    long = container(api, sid, "long", ["sleep", "60"])
    # `short` exits with 4 when told (SIGUSR1), so that it exits while no daemon runs.
    script = "trap 'exit 4' USR1; while true; do sleep 0.1; done"
    short = container(api, sid, "short", ["sh", "-c", script])
    for cid in (long, short):
        api.StartContainer(pb.StartContainerRequest(container_id=cid))
    pid = wait_state(api, long, pb.CONTAINER_RUNNING).pid
    short_pid = wait_state(api, short, pb.CONTAINER_RUNNING).pid
    # Running is reported once the process is there, maybe before `sh` set its trap: a
    # USR1 sent before that is lost (or kills it). Wait for the handler (SigCgt).
    eventually(lambda: catches(short_pid, signal.SIGUSR1), 20, "`short`'s USR1 trap", interval=0.05)
    daemon.kill()
    os.kill(short_pid, signal.SIGUSR1)
    eventually(  # its shim reaps it, no daemon needed
        lambda: not Path(f"/proc/{short_pid}").exists(),
        20,
        "`short` to exit while the daemon is down",
        interval=0.05,
    )
    assert daemon.proc is not None and daemon.proc.poll() is not None  # still down
    daemon.start()
    api = daemon.client()
    again = status(api, long)
    assert again.state == pb.CONTAINER_RUNNING and again.pid == pid
    finished = wait_state(api, short, pb.CONTAINER_EXITED)
    assert finished.exit_code == 4
    listed = {c.id for c in api.ListContainers(pb.ListContainersRequest()).containers}
    assert {long, short} <= listed


def exec_stream(
    api: Any, messages: list[Any], pause: float = 0.0, after: dict[int, bytes] | None = None
) -> tuple[bytes, bytes, int]:
    """Run a streaming Exec. Message i waits until stdout shows `after[i]` (when given),
    so that input that depends on earlier output is sent only once that output is there;
    `pause` adds a delay before each message after the first."""
    seen = threading.Condition()
    stdout = b""

    def requests() -> Iterator[Any]:
        for i, m in enumerate(messages):
            if i and pause:
                time.sleep(pause)
            if after and i in after:
                with seen:
                    if not seen.wait_for(lambda n=i: after[n] in stdout, timeout=30):
                        return  # the assertions on the output say what was missing
            yield m

    stderr, code = b"", -1
    for out in api.Exec(requests(), timeout=30):
        with seen:
            stdout += out.stdout
            seen.notify_all()
        stderr += out.stderr
        if out.exited:
            code = out.exit_code
    return stdout, stderr, code


@pytest.mark.parametrize("daemon", ["skiff-runc", "runc"], indirect=True)
def test_streaming_exec_with_stdin_and_a_terminal(daemon: RuntimeDaemon) -> None:
    api = daemon.client()
    sid = sandbox(api, "shell")
    cid = container(api, sid, "main", ["sleep", "60"])
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    wait_state(api, cid, pb.CONTAINER_RUNNING)
    # Pipes: stdin goes in, stdout and stderr come back apart, then the exit code.
    out, err, code = exec_stream(
        api,
        [
            pb.ExecInput(
                container_id=cid,
                cmd=["sh", "-c", "read line; echo got:$line; hostname; echo oops >&2; exit 3"],
                stdin=True,
            ),
            pb.ExecInput(stdin_data=b"hello\n"),
        ],
    )
    assert (out, err, code) == (b"got:hello\nshell\n", b"oops\n", 3)
    # A terminal: an interactive shell, resized while it runs, as `kubectl exec -it` does.
    out, err, code = exec_stream(
        api,
        [
            pb.ExecInput(
                container_id=cid,
                cmd=["sh"],
                tty=True,
                stdin=True,
                resize_width=100,
                resize_height=30,
            ),
            pb.ExecInput(stdin_data=b"stty size; tty; echo pid $$\n"),
            pb.ExecInput(resize_width=120, resize_height=40),
            pb.ExecInput(stdin_data=b"stty size; exit 5\n"),
        ],
        after={2: b"30 100"},  # resize once the first size is printed
    )
    text = out.decode().replace("\r", "")
    assert code == 5, (text, err)
    assert "30 100\n" in text and "40 120\n" in text
    assert "\n/dev/pts/0\n" in text  # a terminal of the container's own devpts
    assert "pid 1\n" not in text  # its own process, beside the container's PID 1
    with pytest.raises(grpc.RpcError) as e:
        exec_stream(api, [pb.ExecInput(container_id="nope", cmd=["true"])])
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_reopen_container_log_after_rotation(daemon: RuntimeDaemon) -> None:
    api = daemon.client()
    sid = sandbox(api, "rotate")
    cid = container(
        api,
        sid,
        "ticker",
        ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"],
    )
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    log = Path(wait_state(api, cid, pb.CONTAINER_RUNNING).log_path)
    eventually(
        lambda: "tick 3" in (log.read_text() if log.exists() else ""), 10, "tick 3", interval=0.1
    )
    rotated = log.with_name(log.name + ".1")
    log.rename(rotated)  # what the kubelet's log rotation does, then it asks to reopen
    api.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
    eventually(
        lambda: len(log.read_text().splitlines() if log.exists() else []) >= 2,
        10,
        "two lines in the reopened log",
        interval=0.1,
    )
    old_lines, new_lines = rotated.read_text().splitlines(), log.read_text().splitlines()
    assert new_lines and all(" stdout F tick " in line for line in new_lines)
    last_old = int(old_lines[-1].rsplit(" ", 1)[1])
    assert int(new_lines[0].rsplit(" ", 1)[1]) == last_old + 1  # nothing lost in between
    api.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))
    with pytest.raises(grpc.RpcError) as e:
        api.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_image_config_is_honoured(daemon: RuntimeDaemon, tmp_path: Path) -> None:
    """Entrypoint, Cmd, Env, WorkingDir and User from the image; the pod's env on top."""
    store = ImageStore(tmp_path / "images")
    busybox = store.get("busybox")
    assert busybox is not None
    base = store.blob(f"sha256:{busybox.layer_dirs[0].name}")
    extra = tmp_path / "users.tar"
    with tarfile.open(extra, "w") as tar:
        for name, data in {
            "etc/passwd": b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            "etc/group": b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        srv = tarfile.TarInfo("srv")
        srv.type, srv.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(srv)
    store.add(
        "example.com/app:1",
        [base, extra],
        {
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ['echo "$(id -u) $(id -g) $(id -G) $(pwd) $GREETING $FROM_POD"'],
            "Env": ["PATH=/bin", "GREETING=hello", "FROM_POD=image"],
            "WorkingDir": "/srv",
            "User": "app",
            "ExposedPorts": {"8080/tcp": {}},
        },
    )
    images = pb_grpc.ImageServiceStub(grpc.insecure_channel(f"unix://{daemon.socket}"))
    status = images.ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image="example.com/app:1"), verbose=True)
    )
    assert status.image.username == "app" and not status.image.has_uid
    assert json.loads(status.info["config"])["ExposedPorts"] == {"8080/tcp": {}}
    api = daemon.client()
    sid = sandbox(api, "configured")
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app"),
        image=pb.ImageSpec(image="example.com/app:1"),
        envs=[pb.KeyValue(key="FROM_POD", value="pod")],
    )
    cid = api.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sid, config=config)
    ).container_id
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    done = wait_state(api, cid, pb.CONTAINER_EXITED)
    assert done.exit_code == 0
    assert (
        Path(done.log_path).read_text().split(" F ", 1)[1] == "1000 1000 1000 50 /srv hello pod\n"
    )
    # A user the image does not define is a clear error, and nothing is left behind.
    config.linux.security_context.run_as_user = 0
    bad = pb.ContainerConfig()
    bad.CopyFrom(config)
    bad.metadata.name = "bad"
    store.add("example.com/nouser:1", [base], {"Cmd": ["true"], "User": "ghost"})
    bad.image.image = "example.com/nouser:1"
    before = set(os.listdir(daemon.base / "state" / "containers"))
    with pytest.raises(grpc.RpcError) as e:
        api.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=bad))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'ghost' is not in its /etc/passwd" in e.value.details()
    assert set(os.listdir(daemon.base / "state" / "containers")) == before


def test_host_network_pod_shares_the_node_namespace(daemon: RuntimeDaemon) -> None:
    api = daemon.client()
    config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name="hostnet", uid=uuid.uuid4().hex, namespace="default"),
        hostname="hostnet",
        linux=pb.LinuxPodSandboxConfig(
            namespace_options=pb.NamespaceOption(network=pb.NamespaceOption.NODE)
        ),
    )
    sid = api.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
    assert api.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.ip == ""
    cid = container(api, sid, "main", ["sleep", "30"])
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    wait_state(api, cid, pb.CONTAINER_RUNNING)
    inside = api.ExecSync(
        pb.ExecSyncRequest(container_id=cid, cmd=["readlink", "/proc/self/ns/net"])
    ).stdout.decode()
    node = subprocess.run(
        ["ip", "netns", "exec", daemon.netns, "readlink", "/proc/self/ns/net"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert inside.strip() == node.strip()  # the node's own network namespace
    links = api.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["ip", "-o", "link"]))
    assert "eth0" not in links.stdout.decode()  # no veth of its own
    hostname = api.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["hostname"]))
    assert hostname.stdout.decode().strip() == socket.gethostname()  # the node's, too


def test_clear_errors_for_images_and_specs(daemon: RuntimeDaemon) -> None:
    images = pb_grpc.ImageServiceStub(grpc.insecure_channel(f"unix://{daemon.socket}"))
    with pytest.raises(grpc.RpcError) as e:
        images.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image="Not/A Reference")))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid reference" in e.value.details()
    api = daemon.client()
    sid = sandbox(api, "errors")
    missing = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="m"), image=pb.ImageSpec(image="example.com/none:1")
    )
    with pytest.raises(grpc.RpcError) as e:
        api.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid, config=missing))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "image 'example.com/none:1' not found" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        api.StartContainer(pb.StartContainerRequest(container_id="nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("daemon", ["skiff-runc", "runc"], indirect=True)
def test_containers_of_a_pod_share_ipc_and_uts(daemon: RuntimeDaemon) -> None:
    """As with Kubernetes' pause container: one IPC and UTS namespace per pod."""
    api = daemon.client()

    def namespaces(cid: str) -> list[str]:
        cmd = ["sh", "-c", "for n in ipc uts pid; do readlink /proc/self/ns/$n; done"]
        return api.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd)).stdout.decode().split()

    pod, other = sandbox(api, "shared"), sandbox(api, "other")
    cids = [
        container(api, sid, f"c{i}", ["sleep", "30"]) for i, sid in enumerate([pod, pod, other])
    ]
    for cid in cids:
        api.StartContainer(pb.StartContainerRequest(container_id=cid))
        wait_state(api, cid, pb.CONTAINER_RUNNING)
    one, two, three = (namespaces(cid) for cid in cids)
    assert one[:2] == two[:2]  # ipc and uts shared within the pod
    assert one[2] != two[2]  # each container its own pid namespace (the default)
    assert one[0] != three[0] and one[1] != three[1]  # not shared across pods
    hostname = api.ExecSync(pb.ExecSyncRequest(container_id=cids[1], cmd=["hostname"]))
    assert hostname.stdout.decode().strip() == "shared"
    api.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
    left = [p for kind in ("ipc", "uts") for p in (daemon.base / "run" / kind).glob(f"{pod}*")]
    assert left == []  # the pod's namespaces are gone with it


@pytest.mark.parametrize("daemon", ["skiff-runc", "runc"], indirect=True)
def test_container_with_a_terminal(daemon: RuntimeDaemon) -> None:
    """`tty: true`: the process runs on a terminal of the container's own, and what it
    writes there is the container's log (one stream, stdout, as with containerd)."""
    api = daemon.client()
    sid = sandbox(api, "terminal")
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="tty"),
        image=pb.ImageSpec(image="busybox"),
        command=["sh", "-c", "tty; echo to-stderr >&2; exit 2"],
        tty=True,
    )
    cid = api.CreateContainer(
        pb.CreateContainerRequest(pod_sandbox_id=sid, config=config)
    ).container_id
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    done = wait_state(api, cid, pb.CONTAINER_EXITED)
    assert done.exit_code == 2
    lines = [line.split(" ", 3)[1:] for line in Path(done.log_path).read_text().splitlines()]
    assert [stream for stream, _, _ in lines] == ["stdout", "stdout"]
    assert [text.rstrip("\r") for _, _, text in lines] == ["/dev/pts/0", "to-stderr"]


def test_many_containers_created_at_once(daemon: RuntimeDaemon) -> None:
    """Concurrent CreateContainer calls share the one spare shim without mixing up
    containers: each runs its own command and logs only its own output."""
    from concurrent.futures import ThreadPoolExecutor

    api = daemon.client()
    sid = sandbox(api, "crowd")

    def one(i: int) -> str:
        cid = container(api, sid, f"c{i}", ["sh", "-c", f"echo I am {i}"])
        api.StartContainer(pb.StartContainerRequest(container_id=cid))
        return cid

    with ThreadPoolExecutor(8) as pool:
        cids = list(pool.map(one, range(12), timeout=120))
    assert len(set(cids)) == 12
    for i, cid in enumerate(cids):
        done = wait_state(api, cid, pb.CONTAINER_EXITED)
        assert done.exit_code == 0
        assert Path(done.log_path).read_text().split(" F ", 1)[1] == f"I am {i}\n"


def test_many_sandboxes_at_once_get_distinct_addresses(daemon: RuntimeDaemon) -> None:
    from concurrent.futures import ThreadPoolExecutor

    api = daemon.client()

    def with_host_port(i: int) -> str:  # the first pods race to make the hostPort chain
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=f"p{i}", uid=uuid.uuid4().hex, namespace="d"),
            hostname=f"p{i}",
            port_mappings=[pb.PortMapping(container_port=80, host_port=30080 + i)],
        )
        return api.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id

    with ThreadPoolExecutor(8) as pool:
        sids = list(pool.map(with_host_port, range(10), timeout=120))
    ips = [
        api.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=s)).status.ip for s in sids
    ]
    assert len(set(ips)) == 10 and all(ip.startswith("10.244.3.") for ip in ips)
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda s: api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s)),
                sids,
                timeout=120,
            )
        )
    assert api.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    links = subprocess.run(
        ["ip", "-n", daemon.netns, "-o", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert "veth" not in links  # every pod's veth went with it


def test_skiff_crictl(daemon: RuntimeDaemon) -> None:
    """What a user runs on a node to look into it, as with crictl."""
    api = daemon.client()
    sid = sandbox(api, "looked-at")
    script = "trap 'exit 0' TERM; echo out; echo err >&2; sleep 30 & wait"
    cid = container(api, sid, "main", ["sh", "-c", script])
    api.StartContainer(pb.StartContainerRequest(container_id=cid))
    wait_state(api, cid, pb.CONTAINER_RUNNING)

    def crictl(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "crictl", "-r", str(daemon.socket), *args],
            input=stdin.decode(),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    pods = crictl("pods").stdout.splitlines()
    assert pods[0].split()[:2] == ["POD", "ID"] and sid[:13] in pods[1] and "Ready" in pods[1]
    ps = crictl("ps").stdout
    assert cid[:13] in ps and "Running" in ps and "looked-at" in ps
    assert "docker.io/library/busybox" in crictl("images").stdout
    logs = eventually(
        lambda: "out" in (r := crictl("logs", cid[:8])).stdout and r,
        10,
        lambda: f"the output in `crictl logs`: {crictl('logs', cid[:8])}",
        interval=0.1,
    )
    assert logs.stdout == "out\n" and logs.stderr == "err\n"
    inside = crictl("exec", cid[:8], "hostname")
    assert inside.returncode == 0 and inside.stdout == "looked-at\n"
    piped = crictl("exec", "-i", cid[:8], "sh", "-c", "read x; echo got $x; exit 4", stdin=b"hi\n")
    assert piped.returncode == 4 and piped.stdout == "got hi\n"
    # -it on a terminal of our own (`script` makes one): raw mode, the container's pty.
    command = [sys.executable, "-m", "cli.main", "crictl", "-r", str(daemon.socket)]
    command += ["exec", "-it", cid[:8], "sh", "-c", "tty; exit 5"]
    on_tty = subprocess.run(
        ["script", "-qec", shlex.join(command), "/dev/null"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert on_tty.returncode == 5 and "/dev/pts/0" in on_tty.stdout, on_tty
    assert json.loads(crictl("inspect", cid[:8]).stdout)["state"] == "Running"
    nope = crictl("inspect", "zzz")
    assert nope.returncode == 1 and nope.stderr == "skiff crictl: no container matches 'zzz'\n"
    assert crictl("stop", cid[:8]).returncode == 0
    assert "Exited" in crictl("ps", "-a").stdout and cid[:13] not in crictl("ps").stdout
    assert crictl("rmp", sid[:8]).returncode == 0
    assert len(crictl("pods").stdout.splitlines()) == 1


@pytest.mark.no_pod_cidr
def test_pod_cidr_from_update_runtime_config(daemon: RuntimeDaemon) -> None:
    """The kubelet learns the node's pod CIDR from the Node object and tells the runtime,
    which remembers it across restarts."""
    api = daemon.client()
    with pytest.raises(grpc.RpcError) as e:
        sandbox(api, "early")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no pod CIDR yet" in e.value.details()

    def update(cidr: str) -> None:
        config = pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr=cidr))
        api.UpdateRuntimeConfig(pb.UpdateRuntimeConfigRequest(runtime_config=config))

    with pytest.raises(grpc.RpcError) as e:
        update("not-a-cidr")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    update("10.244.5.0/24")
    sid = sandbox(api, "later")
    ip = api.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.ip
    assert ip.startswith("10.244.5.")
    with pytest.raises(grpc.RpcError) as e:  # not while pods hold addresses from the old one
        update("10.244.6.0/24")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    daemon.stop()
    daemon.start()  # still no --pod-cidr: it remembers
    api = daemon.client()
    again = sandbox(api, "after-restart")
    ip2 = api.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=again)).status.ip
    assert ip2.startswith("10.244.5.") and ip2 != ip


def test_skiff_crictl_runs_a_pod_from_config_files(daemon: RuntimeDaemon, tmp_path: Path) -> None:
    """crictl's way of running something on a node by hand: config files in, IDs out."""
    pod = tmp_path / "pod.yaml"
    pod.write_text(
        "metadata: {name: by-hand, namespace: default, uid: u-1}\n"
        "hostname: by-hand\n"
        "dnsConfig: {servers: [10.96.0.10]}\n"
    )
    box = tmp_path / "container.yaml"
    box.write_text(
        "metadata: {name: hello}\n"
        "image: {image: busybox}\n"
        "command: [sh, -c, 'echo hello from crictl; hostname']\n"
    )

    def crictl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli.main", "crictl", "-r", str(daemon.socket), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )

    ran = crictl("run", str(box), str(pod))
    assert ran.returncode == 0, ran.stderr
    cid = ran.stdout.strip()
    done = wait_state(daemon.client(), cid, pb.CONTAINER_EXITED)
    assert done.exit_code == 0
    assert crictl("logs", cid[:8]).stdout == "hello from crictl\nby-hand\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("metadata: {name: x}\nimage: {image: busybox}\ncomand: [true]\n")
    refused = crictl("create", done.pod_sandbox_id[:8], str(bad), str(pod))
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"skiff crictl: {bad}: ")
    assert "comand" in refused.stderr and len(refused.stderr.splitlines()) == 1
