"""`skiff runtime`: the CRI-like gRPC service on a unix socket.

Everything the daemon knows lives under its state directory, one directory
per sandbox and per container, so a restarted daemon finds every container
again; the containers themselves are held by their shims and never notice
the daemon going away.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc
from runtime.cgroups import Resources, open_cgroup, remove_tree
from runtime.images.pull import ImageNotFound, PullError, RegistryAuth, pull
from runtime.images.rootfs import mount_rootfs, unmount_rootfs
from runtime.images.store import ImageStore
from runtime.network.files import write_pod_files
from runtime.network.hostport import PortMapping, add_host_ports, remove_host_ports
from runtime.network.netns import remove_netns
from runtime.network.pod_network import PodNetwork, PodNetworkConfig
from runtime.runc.main import alive

from . import attach, pod_namespaces, port_forward
from . import bundle as bundles
from .exec_stream import ExecSession
from .oci import OciRuntime
from .processes import reap_later
from .shims import ShimLauncher
from .users import image_uid

VERSION = "0.1.0"


@dataclass
class Settings:
    state_dir: Path
    run_dir: Path
    image_root: Path
    oci_runtime: list[str]
    pod_cidr: str = ""
    insecure_registries: tuple[str, ...] = ()
    cgroup_root: str = "/skiff"  # pods' cgroups go below it (the kubelet's cgroup_parent too)


class Failure(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _now_ns() -> int:
    return time.time_ns()


class Runtime(pb_grpc.RuntimeServiceServicer, pb_grpc.ImageServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.images = ImageStore(settings.image_root)
        self.oci = OciRuntime(settings.oci_runtime)
        self.shims = ShimLauncher(settings.oci_runtime)
        self.sandboxes = settings.state_dir / "sandboxes"
        self.containers = settings.state_dir / "containers"
        for d in (self.sandboxes, self.containers, settings.run_dir / "netns"):
            d.mkdir(parents=True, exist_ok=True)
        # The pod CIDR: --pod-cidr, else what UpdateRuntimeConfig said before a restart.
        saved = settings.state_dir / "pod-cidr"
        pod_cidr = settings.pod_cidr or (saved.read_text().strip() if saved.exists() else "")
        self.network = self._pod_network(pod_cidr) if pod_cidr else None

    def _pod_network(self, pod_cidr: str) -> PodNetwork:
        return PodNetwork(PodNetworkConfig(pod_cidr=pod_cidr, state_dir=self.s.state_dir / "ipam"))

    # -- helpers ----------------------------------------------------------------

    def _sandbox(self, sid: str) -> dict[str, Any]:
        f = self.sandboxes / sid / "sandbox.json"
        if not f.exists():
            raise Failure(grpc.StatusCode.NOT_FOUND, f"pod sandbox {sid!r} not found")
        return json.loads(f.read_text())

    def _container(self, cid: str) -> dict[str, Any]:
        f = self.containers / cid / "container.json"
        if not f.exists():
            raise Failure(grpc.StatusCode.NOT_FOUND, f"container {cid!r} not found")
        return json.loads(f.read_text())

    def _state(self, c: dict[str, Any]) -> tuple[int, int]:
        """(CRI state, pid) from the shim's records; the OCI runtime is asked only when
        the shim is gone without a record (killed), so a status costs no process."""
        cdir = self.containers / c["id"]
        if (cdir / "exit.json").exists():
            return pb.CONTAINER_EXITED, 0
        if (cdir / "create-failed").exists():
            return pb.CONTAINER_EXITED, 0
        if not (cdir / "shim.pid").exists():
            return pb.CONTAINER_CREATED, 0
        pid = int((cdir / "pid").read_text())
        if alive(int((cdir / "shim.pid").read_text())):
            # The container is the shim's child: its pid cannot be reused while the shim
            # lives, and the shim writes exit.json as soon as it has reaped it.
            return (pb.CONTAINER_RUNNING if "started_at" in c else pb.CONTAINER_CREATED), pid
        out = self.oci.run_sync("state", c["id"])
        if out.returncode != 0:
            return pb.CONTAINER_UNKNOWN, 0
        state = json.loads(out.stdout)
        if state["status"] == "created":
            return pb.CONTAINER_CREATED, int(state["pid"])
        if state["status"] == "running":
            return pb.CONTAINER_RUNNING, int(state["pid"])
        return pb.CONTAINER_EXITED, 0

    def _status(self, c: dict[str, Any]) -> pb.ContainerStatus:
        state, pid = self._state(c)
        cdir = self.containers / c["id"]
        status = pb.ContainerStatus(
            id=c["id"],
            metadata=pb.ContainerMetadata(name=c["name"], attempt=c["attempt"]),
            state=state,
            created_at=c["created_at"],
            started_at=c.get("started_at", 0),
            image=pb.ImageSpec(image=c["image"]),
            image_ref=c["image_ref"],
            labels=c["labels"],
            annotations=c["annotations"],
            log_path=c["log_path"],
            pid=pid,
            pod_sandbox_id=c["sandbox"],
        )
        if (cdir / "exit.json").exists():
            record = json.loads((cdir / "exit.json").read_text())
            status.exit_code = int(record["exit_code"])
            status.finished_at = int(os.path.getmtime(cdir / "exit.json") * 1e9)
            status.reason = (
                "OOMKilled"
                if record.get("oom_killed")
                else ("Completed" if status.exit_code == 0 else "Error")
            )
        return status

    # -- version and sandboxes ---------------------------------------------------------

    async def Version(self, request: Any, context: Any) -> pb.VersionResponse:
        return pb.VersionResponse(
            version="0.1.0", runtime_name="skiff", runtime_version=VERSION, runtime_api_version="v1"
        )

    async def Status(self, request: Any, context: Any) -> pb.StatusResponse:
        """RuntimeReady, and NetworkReady once there is a pod CIDR to give addresses from:
        the kubelet keeps its Node NotReady while either is false, as with CRI."""
        network = pb.RuntimeCondition(type="NetworkReady", status=self.network is not None)
        if self.network is None:
            network.reason = "NetworkPluginNotReady"
            network.message = (
                "network plugin not ready: this node has no pod CIDR yet"
                " (--pod-cidr, or UpdateRuntimeConfig from the kubelet)"
            )
        conditions = [pb.RuntimeCondition(type="RuntimeReady", status=True), network]
        info = {}
        if request.verbose:
            config = {
                "ociRuntime": self.s.oci_runtime,
                "cgroupRoot": self.s.cgroup_root,
                "podCIDR": self.network.config.pod_cidr if self.network else "",
                "stateDir": str(self.s.state_dir),
            }
            info["config"] = json.dumps(config, sort_keys=True)
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=conditions), info=info)

    async def UpdateRuntimeConfig(
        self, request: Any, context: Any
    ) -> pb.UpdateRuntimeConfigResponse:
        """The node's pod CIDR, from the kubelet: pods get addresses from it from now on."""
        cidr = request.runtime_config.network_config.pod_cidr
        if not cidr:
            return pb.UpdateRuntimeConfigResponse()
        try:
            ipaddress.ip_network(cidr)
        except ValueError as e:
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT, f"pod CIDR {cidr!r}: {e}") from e
        current = self.network.config.pod_cidr if self.network else ""
        if cidr != current:
            if self.network is not None and self.network.ipam.allocations():
                raise Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"pods still hold addresses from {current}; remove them to change the CIDR",
                )
            self.network = self._pod_network(cidr)
            saved = self.s.state_dir / "pod-cidr"
            saved.write_text(cidr)
        return pb.UpdateRuntimeConfigResponse()

    async def RunPodSandbox(self, request: Any, context: Any) -> pb.RunPodSandboxResponse:
        sid = uuid.uuid4().hex
        cgroup = self._pod_cgroup(sid, request.config.linux.cgroup_parent)
        try:
            # pyroute2 runs an event loop of its own: network work goes to a thread.
            await asyncio.to_thread(self._run_sandbox, sid, request.config, cgroup)
        except BaseException:
            await asyncio.to_thread(self._teardown_network, sid, self._netns_path(sid))
            pod_namespaces.remove(self._ns_path("ipc", sid), self._ns_path("uts", sid))
            if not self._cgroup_in_use(cgroup, sid):
                await asyncio.to_thread(remove_tree, cgroup)
            shutil.rmtree(self.sandboxes / sid, ignore_errors=True)
            raise
        return pb.RunPodSandboxResponse(pod_sandbox_id=sid)

    def _pod_cgroup(self, sid: str, cgroup_parent: str) -> str:
        """The pod's cgroup: the kubelet's cgroup_parent (`kubepods/burstable/pod<uid>`)
        below --cgroup-root, else `pod<id>` there. The runtime makes the path and removes
        the pod's own cgroup (not the QoS parents) with the sandbox."""
        relative = cgroup_parent.strip("/") or f"pod{sid[:12]}"
        if ".." in relative.split("/"):
            raise Failure(
                grpc.StatusCode.INVALID_ARGUMENT, f"cgroup_parent {cgroup_parent!r}: no '..'"
            )
        return f"{self.s.cgroup_root.rstrip('/')}/{relative}"

    def _netns_path(self, sid: str) -> Path:
        return self.s.run_dir / "netns" / sid

    def _ns_path(self, kind: str, sid: str) -> Path:
        return self.s.run_dir / kind / sid

    def _cgroup_in_use(self, cgroup: str, sid: str) -> bool:
        """Whether another sandbox has the same pod cgroup: the kubelet makes a new
        sandbox for a pod before it removes the old one, and both are the pod's."""
        for sdir in self.sandboxes.iterdir():
            record = sdir / "sandbox.json"
            if sdir.name != sid and record.exists():
                if json.loads(record.read_text()).get("cgroup_parent") == cgroup:
                    return True
        return False

    def _run_sandbox(self, sid: str, config: Any, cgroup: str) -> None:
        sdir = self.sandboxes / sid
        sdir.mkdir()
        pod_cgroup = open_cgroup(cgroup)
        pod_cgroup.create()
        pod_cgroup.apply(pod_resources(config.linux.resources))
        options = config.linux.namespace_options
        host_network = options.network == pb.NamespaceOption.NODE
        host_ipc = options.ipc == pb.NamespaceOption.NODE
        hostname = config.hostname or config.metadata.name
        ipc = None if host_ipc else self._ns_path("ipc", sid)
        uts = None if host_network else self._ns_path("uts", sid)
        if not host_network and self.network is None:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this node has no pod CIDR yet (--pod-cidr, or UpdateRuntimeConfig):"
                " only hostNetwork pods can run",
            )
        net = None if host_network else self._netns_path(sid)
        pod_namespaces.create(ipc, uts, hostname, net)
        netns, ip = "", ""
        if net is not None and self.network is not None:
            netns = str(net)
            ip = self.network.setup(sid, net).ip
            mappings = [
                PortMapping(p.host_port, p.container_port, p.protocol or "TCP")
                for p in config.port_mappings
                if p.host_port
            ]
            add_host_ports(sid, ip, mappings)
        dns = config.dns_config
        write_pod_files(
            sdir / "etc",
            hostname=config.hostname or config.metadata.name,
            ip=ip or "127.0.0.1",
            dns_servers=list(dns.servers),
            searches=list(dns.searches),
            options=list(dns.options),
            host_aliases=[(a.ip, list(a.hostnames)) for a in config.host_aliases],
            domain=config.host_domain,
        )
        record = {
            "id": sid,
            "name": config.metadata.name,
            "uid": config.metadata.uid,
            "namespace": config.metadata.namespace,
            "attempt": config.metadata.attempt,
            "hostname": hostname,
            "netns": netns,
            # "host": the node's; a path: the pod's, shared by its containers
            "ipc_ns": str(ipc) if ipc else "host",
            "uts_ns": str(uts) if uts else "host",
            "host_pid": options.pid == pb.NamespaceOption.NODE,
            "ip": ip,
            "created_at": _now_ns(),
            "state": "ready",
            "log_directory": config.log_directory,
            "cgroup_parent": cgroup,  # the pod's cgroup, the runtime's to remove
            "labels": dict(config.labels),
            "annotations": dict(config.annotations),
        }
        tmp = sdir / "sandbox.json.tmp"
        tmp.write_text(json.dumps(record))
        os.replace(tmp, sdir / "sandbox.json")

    def _teardown_network(self, sid: str, netns: Path) -> None:
        if self.network is None:
            return
        remove_host_ports(sid)
        self.network.teardown(sid)
        remove_netns(netns)

    async def StopPodSandbox(self, request: Any, context: Any) -> pb.StopPodSandboxResponse:
        sandbox = self._sandbox(request.pod_sandbox_id)
        for cdir in self.containers.iterdir():
            c = json.loads((cdir / "container.json").read_text())
            if c["sandbox"] == sandbox["id"]:
                await self._stop(c, 0)
        if sandbox["netns"]:
            await asyncio.to_thread(self._teardown_network, sandbox["id"], Path(sandbox["netns"]))
        pod_namespaces.remove(
            *(Path(sandbox[k]) for k in ("ipc_ns", "uts_ns") if sandbox.get(k, "host") != "host")
        )
        sandbox["state"] = "notready"
        (self.sandboxes / sandbox["id"] / "sandbox.json").write_text(json.dumps(sandbox))
        return pb.StopPodSandboxResponse()

    async def RemovePodSandbox(self, request: Any, context: Any) -> pb.RemovePodSandboxResponse:
        sid = request.pod_sandbox_id
        if not (self.sandboxes / sid).exists():
            return pb.RemovePodSandboxResponse()  # already gone: idempotent, as CRI asks
        await self.StopPodSandbox(request, context)
        for cdir in list(self.containers.iterdir()):
            c = json.loads((cdir / "container.json").read_text())
            if c["sandbox"] == sid:
                await self._remove(c)
        sandbox = self._sandbox(sid)
        # The pod's own cgroup, in every hierarchy (runc also makes it in those skiff
        # does not limit); its QoS parents (kubepods/burstable) stay, as the kubelet's.
        cgroup = sandbox["cgroup_parent"]
        if not self._cgroup_in_use(cgroup, sid):
            await asyncio.to_thread(remove_pod_cgroup, cgroup)
        shutil.rmtree(self.sandboxes / sid)
        return pb.RemovePodSandboxResponse()

    def _sandbox_status(self, s: dict[str, Any]) -> pb.PodSandboxStatus:
        return pb.PodSandboxStatus(
            id=s["id"],
            metadata=pb.PodSandboxMetadata(
                name=s["name"], uid=s["uid"], namespace=s["namespace"], attempt=s["attempt"]
            ),
            state=pb.SANDBOX_READY if s["state"] == "ready" else pb.SANDBOX_NOTREADY,
            created_at=s["created_at"],
            ip=s["ip"],
            labels=s["labels"],
            annotations=s["annotations"],
        )

    async def PodSandboxStatus(self, request: Any, context: Any) -> pb.PodSandboxStatusResponse:
        return pb.PodSandboxStatusResponse(
            status=self._sandbox_status(self._sandbox(request.pod_sandbox_id))
        )

    async def ListPodSandbox(self, request: Any, context: Any) -> pb.ListPodSandboxResponse:
        items = []
        for sdir in sorted(self.sandboxes.iterdir()):
            if not (sdir / "sandbox.json").exists():
                continue  # being created right now
            s = json.loads((sdir / "sandbox.json").read_text())
            if all(s["labels"].get(k) == v for k, v in request.label_selector.items()):
                items.append(self._sandbox_status(s))
        return pb.ListPodSandboxResponse(items=items)

    # -- containers ------------------------------------------------------------------

    async def CreateContainer(self, request: Any, context: Any) -> pb.CreateContainerResponse:
        sandbox = self._sandbox(request.pod_sandbox_id)
        config = request.config
        image = self.images.get(config.image.image)
        if image is None:
            raise Failure(grpc.StatusCode.NOT_FOUND, f"image {config.image.image!r} not found")
        cid = uuid.uuid4().hex
        cdir = self.containers / cid
        (cdir / "bundle").mkdir(parents=True)
        rootfs = mount_rootfs(image, cdir / "bundle")
        sdir = self.sandboxes / sandbox["id"] / "etc"
        pod_files = {n: str(sdir / n) for n in ("hosts", "resolv.conf", "hostname")}
        cgroup = f"{sandbox['cgroup_parent'].rstrip('/')}/{cid}"
        try:
            oci = bundles.oci_config(
                config,
                image,
                rootfs,
                hostname=sandbox["hostname"],
                netns=sandbox["netns"],
                ipc_ns=sandbox.get("ipc_ns", ""),
                uts_ns=sandbox.get("uts_ns", ""),
                host_pid=sandbox.get("host_pid", False),
                cgroup=cgroup,
                pod_files=pod_files,
            )
            if not oci["process"]["args"]:
                raise ValueError("the container has no command and its image no Entrypoint or Cmd")
        except ValueError as e:
            unmount_rootfs(cdir / "bundle")
            shutil.rmtree(cdir)
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from e
        (cdir / "bundle" / "config.json").write_text(json.dumps(oci))
        log_dir = Path(sandbox["log_directory"] or cdir)
        record = {
            "id": cid,
            "sandbox": sandbox["id"],
            "name": config.metadata.name,
            "attempt": config.metadata.attempt,
            "image": config.image.image,
            "image_ref": image.id,
            "labels": dict(config.labels),
            "annotations": dict(config.annotations),
            "created_at": _now_ns(),
            "log_path": str(log_dir / (config.log_path or f"{config.metadata.name}.log")),
            "cgroup": cgroup,
        }
        (cdir / "container.json").write_text(json.dumps(record))
        if config.tty:
            (cdir / "tty").touch()  # tells the shim to take the terminal's master side
        if config.stdin:
            (cdir / "stdin").touch()  # the shim keeps the container's stdin open for Attach
            if config.stdin_once:
                (cdir / "stdin-once").touch()
        process = await self.shims.start(cdir, record)
        reap_later(process)
        created = await _until(
            lambda: (cdir / "shim.pid").exists() or (cdir / "create-failed").exists(), 30
        )
        if not created or (cdir / "create-failed").exists():
            failed = cdir / "create-failed"
            reason = failed.read_text().strip() if failed.exists() else "no answer in 30 s"
            raise Failure(grpc.StatusCode.INTERNAL, f"creating container {cid} failed: {reason}")
        return pb.CreateContainerResponse(container_id=cid)

    async def StartContainer(self, request: Any, context: Any) -> pb.StartContainerResponse:
        c = self._container(request.container_id)
        state, _ = self._state(c)
        if state != pb.CONTAINER_CREATED:
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"container {c['id']} is not in the created state",
            )
        out = await self.oci.run("start", c["id"])
        if out.returncode != 0:
            raise Failure(grpc.StatusCode.INTERNAL, out.stderr.strip())
        c["started_at"] = _now_ns()
        (self.containers / c["id"] / "container.json").write_text(json.dumps(c))
        return pb.StartContainerResponse()

    async def _stop(self, c: dict[str, Any], grace: int) -> None:
        """SIGTERM, then SIGKILL once `grace` seconds have passed, as the kubelet asks."""
        cdir = self.containers / c["id"]
        state, _ = self._state(c)
        if state == pb.CONTAINER_EXITED:
            return
        if state == pb.CONTAINER_CREATED:
            await self.oci.run("delete", "--force", c["id"])
            return
        await self.oci.run("kill", c["id"], "TERM")
        if not await _until(lambda: (cdir / "exit.json").exists(), max(grace, 0)):
            await self.oci.run("kill", c["id"], "KILL")
            await _until(lambda: (cdir / "exit.json").exists(), 10)

    async def StopContainer(self, request: Any, context: Any) -> pb.StopContainerResponse:
        await self._stop(self._container(request.container_id), int(request.timeout))
        return pb.StopContainerResponse()

    async def _remove(self, c: dict[str, Any]) -> None:
        await self._stop(c, 0)
        await self.oci.run("delete", "--force", c["id"])
        cdir = self.containers / c["id"]
        shim_pid = cdir / "shim.pid"
        if shim_pid.exists() and not (cdir / "exit.json").exists():
            try:
                os.kill(int(shim_pid.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
        unmount_rootfs(cdir / "bundle")
        shutil.rmtree(cdir, ignore_errors=True)

    async def RemoveContainer(self, request: Any, context: Any) -> pb.RemoveContainerResponse:
        if (self.containers / request.container_id).exists():
            await self._remove(self._container(request.container_id))
        return pb.RemoveContainerResponse()

    async def ListContainers(self, request: Any, context: Any) -> pb.ListContainersResponse:
        out = []
        for cdir in sorted(self.containers.iterdir()):
            c = json.loads((cdir / "container.json").read_text())
            if request.pod_sandbox_id and c["sandbox"] != request.pod_sandbox_id:
                continue
            if all(c["labels"].get(k) == v for k, v in request.label_selector.items()):
                out.append(self._status(c))
        return pb.ListContainersResponse(containers=out)

    async def ContainerStatus(self, request: Any, context: Any) -> pb.ContainerStatusResponse:
        return pb.ContainerStatusResponse(
            status=self._status(self._container(request.container_id))
        )

    async def ExecSync(self, request: Any, context: Any) -> pb.ExecSyncResponse:
        c = self._container(request.container_id)
        proc = await asyncio.create_subprocess_exec(
            *self.oci.exec_argv(c["id"], list(request.cmd)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                proc.communicate(), timeout=request.timeout or None
            )
        except TimeoutError as e:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise Failure(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"command timed out after {request.timeout}s"
            ) from e
        return pb.ExecSyncResponse(stdout=stdout, stderr=stderr, exit_code=proc.returncode or 0)

    async def Exec(self, request_iterator: Any, context: Any) -> AsyncIterator[pb.ExecOutput]:
        """The first message names the container and command; the rest carry input."""
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            return
        try:
            c = self._container(first.container_id)
            state, pid = self._state(c)
            if state != pb.CONTAINER_RUNNING:
                raise Failure(
                    grpc.StatusCode.FAILED_PRECONDITION, f"container {c['id']} is not running"
                )
            if not first.cmd:
                raise Failure(grpc.StatusCode.INVALID_ARGUMENT, "exec needs a command")
        except Failure as e:
            await context.abort(e.code, e.message)
        console = ""
        if first.tty and not self.oci.is_skiff_runc:
            console_dir = tempfile.mkdtemp(prefix="skiff-console-")
            console = os.path.join(console_dir, "console.sock")
        argv = self.oci.exec_argv(c["id"], list(first.cmd), first.tty, console)
        session = ExecSession(argv, first.tty, first.stdin, pid, console)

        async def inputs() -> AsyncIterator[Any]:
            yield first
            async for message in request_iterator:
                yield message

        try:
            async for out in session.run(inputs(), first.resize_width, first.resize_height):
                yield out
        finally:
            if console:
                shutil.rmtree(os.path.dirname(console), ignore_errors=True)

    async def ReopenContainerLog(self, request: Any, context: Any) -> pb.ReopenContainerLogResponse:
        """After the kubelet renamed the log file: the shim starts a new one at the path."""
        c = self._container(request.container_id)
        cdir = self.containers / c["id"]
        if self._state(c)[0] != pb.CONTAINER_RUNNING or not (cdir / "shim.pid").exists():
            raise Failure(
                grpc.StatusCode.FAILED_PRECONDITION, f"container {c['id']} is not running"
            )
        ack = cdir / "log-reopened"
        before = ack.read_text() if ack.exists() else ""
        os.kill(int((cdir / "shim.pid").read_text()), signal.SIGUSR1)
        if not await _until(lambda: ack.exists() and ack.read_text() != before, 10):
            raise Failure(grpc.StatusCode.INTERNAL, f"the shim of {c['id']} did not reopen its log")
        return pb.ReopenContainerLogResponse()

    async def Attach(self, request_iterator: Any, context: Any) -> AsyncIterator[pb.AttachOutput]:
        """The first message names the container and the streams wanted; the rest carry
        input and resizes. Output from now on, then the exit code (see attach.py)."""
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            return
        try:
            c = self._container(first.container_id)
            if not (first.stdin or first.stdout or first.stderr):
                raise Failure(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "one of stdin, stdout and stderr must be requested",
                )
            cdir = self.containers / c["id"]
            if self._state(c)[0] != pb.CONTAINER_RUNNING:
                raise Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"container {c['id']} is not running: cannot attach",
                )
            try:
                sock = attach.connect(cdir)
            except attach.ShimGone as e:
                if (cdir / "exit.json").exists():  # it exited just now
                    raise Failure(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"container {c['id']} is not running: cannot attach",
                    ) from e
                raise Failure(
                    grpc.StatusCode.UNAVAILABLE, f"the shim of container {c['id']}: {e}"
                ) from e
        except Failure as e:
            await context.abort(e.code, e.message)
        async with contextlib.aclosing(attach.relay(sock, first, request_iterator)) as outputs:
            async for out in outputs:
                if out is not None:
                    yield out
                    continue
                # The shim closed without an exit message, after all it had sent was
                # relayed: it was killed (its record says how the container ended, if
                # it got that far).
                exit_file = cdir / "exit.json"
                if await _until(exit_file.exists, 2):
                    code = int(json.loads(exit_file.read_text())["exit_code"])
                    yield pb.AttachOutput(exited=True, exit_code=code)
                else:
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE, f"the shim of container {c['id']} went away"
                    )

    async def PortForward(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[pb.PortForwardOutput]:
        """TCP to localhost:port inside the pod's network namespace (port_forward.py)."""
        try:
            first = await request_iterator.__anext__()
        except StopAsyncIteration:
            return
        try:
            sandbox = self._sandbox(first.pod_sandbox_id)
            if sandbox["state"] != "ready":
                raise Failure(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"pod sandbox {sandbox['id']} is not ready",
                )
            if not 0 < first.port < 65536:
                raise Failure(grpc.StatusCode.INVALID_ARGUMENT, f"invalid port {first.port}")
        except Failure as e:
            await context.abort(e.code, e.message)
        try:
            sock = await port_forward.connect_in(sandbox["netns"], first.port)
        except OSError as e:
            yield pb.PortForwardOutput(
                error=port_forward.failure_message(first.port, sandbox["id"], e)
            )
            return
        async for out in port_forward.relay(sock, first, request_iterator):
            yield out

    async def ListContainerStats(self, request: Any, context: Any) -> pb.ListContainerStatsResponse:
        """CPU and memory of running containers, from their cgroups."""
        stats = []
        for cdir in sorted(self.containers.iterdir()):
            if request.container_id and cdir.name != request.container_id:
                continue
            try:
                c = json.loads((cdir / "container.json").read_text())
            except FileNotFoundError:  # being created or removed right now
                continue
            if request.pod_sandbox_id and c["sandbox"] != request.pod_sandbox_id:
                continue
            if self._state(c)[0] != pb.CONTAINER_RUNNING:
                continue
            cgroup = open_cgroup(c["cgroup"])
            try:
                memory = cgroup.memory_stats()
                cpu = cgroup.cpu_usage_ns()
            except (OSError, ValueError):  # it exited and its cgroup went meanwhile
                continue
            stats.append(
                pb.ContainerStats(
                    container_id=c["id"],
                    pod_sandbox_id=c["sandbox"],
                    metadata=pb.ContainerMetadata(name=c["name"], attempt=c["attempt"]),
                    labels=c["labels"],
                    timestamp=_now_ns(),
                    cpu_usage_core_nanoseconds=cpu,
                    memory_working_set_bytes=memory["working_set"],
                    memory_rss_bytes=memory["rss"],
                    memory_usage_bytes=memory["usage"],
                )
            )
        return pb.ListContainerStatsResponse(stats=stats)

    # -- images ----------------------------------------------------------------------

    def _image(self, i: Any) -> pb.Image:
        uid, username = image_uid(str(i.config.get("User") or ""))
        return pb.Image(
            id=i.id,
            repo_tags=i.repo_tags,
            repo_digests=i.repo_digests,
            size=i.size,
            uid=uid or 0,
            has_uid=uid is not None,
            username=username,
        )

    async def ListImages(self, request: Any, context: Any) -> pb.ListImagesResponse:
        return pb.ListImagesResponse(images=[self._image(i) for i in self.images.list()])

    async def ImageStatus(self, request: Any, context: Any) -> pb.ImageStatusResponse:
        image = self.images.get(request.image.image)
        if image is None:
            return pb.ImageStatusResponse()  # CRI: no image, no error
        info = {"config": json.dumps(image.config, sort_keys=True)} if request.verbose else {}
        return pb.ImageStatusResponse(image=self._image(image), info=info)

    async def RemoveImage(self, request: Any, context: Any) -> pb.RemoveImageResponse:
        if self.images.get(request.image.image) is not None:
            self.images.remove(request.image.image)
        return pb.RemoveImageResponse()

    async def ImageFsInfo(self, request: Any, context: Any) -> pb.ImageFsInfoResponse:
        used, inodes = self.images.fs_info()
        return pb.ImageFsInfoResponse(used_bytes=used, inodes_used=inodes)

    async def PullImage(self, request: Any, context: Any) -> pb.PullImageResponse:
        """From the node's store when it is there, else from its registry."""
        name = request.image.image
        image = self.images.get(name)
        if image is None:
            a = request.auth
            auth = (
                RegistryAuth(a.username, a.password, a.registry_token)
                if (a.username or a.registry_token)
                else None
            )
            try:
                image = await asyncio.to_thread(
                    pull,
                    self.images,
                    name,
                    auth=auth,
                    insecure_registries=self.s.insecure_registries,
                )
            except ValueError as e:  # a reference that is not one
                raise Failure(grpc.StatusCode.INVALID_ARGUMENT, f"pulling {name}: {e}") from e
            except PullError as e:
                missing = isinstance(e, ImageNotFound)
                code = grpc.StatusCode.NOT_FOUND if missing else grpc.StatusCode.UNAVAILABLE
                raise Failure(code, f"pulling {name}: {e}") from e
        return pb.PullImageResponse(image_ref=image.id)


def remove_pod_cgroup(cgroup: str, timeout: float = 5.0) -> None:
    """The pod's cgroup and the containers' below it, deepest first. A cgroup stays
    busy for a moment after its last process was killed, so try again for a while;
    after that the error says what is still there."""
    deadline = time.monotonic() + timeout
    while True:
        remove_tree(cgroup)
        try:
            open_cgroup(cgroup).delete(timeout=0)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def pod_resources(r: Any) -> Resources:
    """LinuxContainerResources (0: not set) as cgroup limits for the pod's cgroup."""
    return Resources(
        cpu_shares=r.cpu_shares or None,
        cpu_quota=r.cpu_quota or None,
        cpu_period=r.cpu_period or 100_000,
        memory_limit=r.memory_limit_in_bytes or None,
        pids_limit=r.pids_limit or None,
    )


async def _until(check: Any, seconds: float) -> bool:
    """Poll `check` for up to `seconds`, every 2 ms at first and backing off to 50 ms,
    so that quick things are seen quickly; whether it became true."""
    deadline = time.monotonic() + seconds
    interval = 0.002
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 0.05)


class _Errors(grpc.aio.ServerInterceptor):
    """Failure -> its gRPC status; anything else -> INTERNAL with the message."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        async def wrapped(request: Any, context: Any) -> Any:
            try:
                return await inner(request, context)
            except Failure as e:
                await context.abort(e.code, e.message)
            except grpc.aio.AbortError:
                raise
            except Exception as e:
                await context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _prepare_socket(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)


async def serve(settings: Settings, socket_path: Path) -> None:
    runtime = Runtime(settings)
    server = grpc.aio.server(interceptors=[_Errors()])
    pb_grpc.add_RuntimeServiceServicer_to_server(runtime, server)
    pb_grpc.add_ImageServiceServicer_to_server(runtime, server)
    await asyncio.to_thread(_prepare_socket, socket_path)
    # Bound under another name and renamed once the server runs: whoever waits for the
    # socket to appear (scripts/up.sh, tests) may use it at once. grpc binds and listens
    # in two steps, and a connect in between is refused.
    binding = socket_path.with_name(f".{socket_path.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(binding)
    server.add_insecure_port(f"unix://{binding}")
    # Worker threads for blocking calls (pyroute2, file work, in-process OCI calls);
    # nothing that waits for a long-lived process holds one (see processes.py).
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=32))
    await server.start()
    os.replace(binding, socket_path)
    ours = os.stat(socket_path).st_ino
    await runtime.shims.refill()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=2)
    with contextlib.suppress(FileNotFoundError):  # gone: clients say "no runtime"
        if os.stat(socket_path).st_ino == ours:  # not a newer daemon's
            os.unlink(socket_path)
    await runtime.shims.close()
