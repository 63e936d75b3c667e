"""`skiff crictl`: look at and into a node's pods and containers, as crictl does for
containerd and CRI-O (and `k3s crictl` for k3s).

    skiff crictl pods                      pod sandboxes
    skiff crictl ps [-a]                   running containers (-a: all)
    skiff crictl images                    the node's images
    skiff crictl inspect CONTAINER         a container's status as JSON
    skiff crictl logs CONTAINER            its log, as `kubectl logs` shows it
    skiff crictl exec [-it] CONTAINER CMD  run a command inside (-it: with a terminal)
    skiff crictl attach [-it] CONTAINER    its output from now on (-i: and its stdin)
    skiff crictl stats [--id C] [-p POD]   CPU and memory of running containers
    skiff crictl port-forward POD [LOCAL:]PORT   127.0.0.1:LOCAL here to PORT in the pod
    skiff crictl stop CONTAINER | rm CONTAINER | stopp POD | rmp POD
    skiff crictl runp POD.yaml             a pod sandbox from a config file, as crictl's
    skiff crictl create POD CONTAINER.yaml POD.yaml    then `start CONTAINER`
    skiff crictl run CONTAINER.yaml POD.yaml           all three at once

IDs may be shortened to any unique prefix. It talks to `skiff runtime` over its
socket (`--runtime-endpoint`, default /run/skiff/runtime.sock).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import grpc

from proto import DEFAULT_SOCKET
from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc

STATES = {
    pb.CONTAINER_CREATED: "Created",
    pb.CONTAINER_RUNNING: "Running",
    pb.CONTAINER_EXITED: "Exited",
    pb.CONTAINER_UNKNOWN: "Unknown",
}


class Usage(Exception):
    """A mistake of the caller's, said in one line."""


def _age(ns: int) -> str:
    seconds = max(0, int(datetime.datetime.now().timestamp() - ns / 1e9))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _the_one(items: Any, prefix: str, what: str) -> Any:
    """The item whose id starts with `prefix`, as crictl resolves shortened ids."""
    found = [item for item in items if item.id.startswith(prefix)]
    if len(found) != 1:
        raise Usage(f"{'no' if not found else 'more than one'} {what} matches {prefix!r}")
    return found[0]


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


class Crictl:
    def __init__(self, endpoint: str) -> None:
        channel = grpc.insecure_channel(f"unix://{endpoint}")
        self.runtime = pb_grpc.RuntimeServiceStub(channel)
        self.images = pb_grpc.ImageServiceStub(channel)

    def _container(self, prefix: str) -> Any:
        containers = self.runtime.ListContainers(pb.ListContainersRequest()).containers
        return _the_one(containers, prefix, "container")

    def _pod(self, prefix: str) -> Any:
        return _the_one(
            self.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items, prefix, "pod"
        )

    def pods(self) -> None:
        rows = [["POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT"]]
        for s in self.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items:
            state = "Ready" if s.state == pb.SANDBOX_READY else "NotReady"
            meta = s.metadata
            rows.append(
                [s.id[:13], _age(s.created_at), state, meta.name, meta.namespace, str(meta.attempt)]
            )
        _table(rows)

    def ps(self, all_states: bool) -> None:
        pods = {s.id: s for s in self.runtime.ListPodSandbox(pb.ListPodSandboxRequest()).items}
        rows = [["CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"]]
        for c in self.runtime.ListContainers(pb.ListContainersRequest()).containers:
            if c.state != pb.CONTAINER_RUNNING and not all_states:
                continue
            pod = pods.get(c.pod_sandbox_id)
            row = [c.id[:13], c.image.image, _age(c.created_at), STATES.get(c.state, "?")]
            row += [c.metadata.name, str(c.metadata.attempt), c.pod_sandbox_id[:13]]
            rows.append([*row, pod.metadata.name if pod else ""])
        _table(rows)

    def list_images(self) -> None:
        rows = [["IMAGE", "TAG", "IMAGE ID", "SIZE"]]
        for i in self.images.ListImages(pb.ListImagesRequest()).images:
            for tag in i.repo_tags:
                repository, _, version = tag.rpartition(":")
                rows.append([repository, version, i.id[7:20], f"{i.size / 1e6:.3g}MB"])
        _table(rows)

    def inspect(self, prefix: str) -> None:
        c = self.runtime.ContainerStatus(
            pb.ContainerStatusRequest(container_id=self._container(prefix).id)
        ).status
        out = {
            "id": c.id,
            "name": c.metadata.name,
            "state": STATES.get(c.state, "?"),
            "pid": c.pid,
            "image": c.image.image,
            "imageRef": c.image_ref,
            "podSandboxId": c.pod_sandbox_id,
            "createdAt": c.created_at,
            "startedAt": c.started_at,
            "finishedAt": c.finished_at,
            "exitCode": c.exit_code,
            "reason": c.reason,
            "logPath": c.log_path,
            "labels": dict(c.labels),
        }
        print(json.dumps(out, indent=2))

    def logs(self, prefix: str) -> None:
        """The CRI log without its timestamps and stream tags, partial lines joined."""
        path = self._container(prefix).log_path
        try:
            with open(path, "rb") as f:
                for record in f:
                    _, stream, tag, text = record.rstrip(b"\n").split(b" ", 3)
                    target = sys.stderr.buffer if stream == b"stderr" else sys.stdout.buffer
                    target.write(text + (b"\n" if tag == b"F" else b""))
        except FileNotFoundError as e:
            raise Usage(f"no log at {path}") from e

    def exec(self, prefix: str, cmd: list[str], interactive: bool, tty: bool) -> int:
        cid = self._container(prefix).id
        if not interactive and not tty:
            out = self.runtime.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd))
            sys.stdout.buffer.write(out.stdout)
            sys.stderr.buffer.write(out.stderr)
            return int(out.exit_code)
        return _stream_exec(self.runtime, cid, cmd, interactive, tty)

    def attach(self, prefix: str, interactive: bool, tty: bool) -> int:
        cid = self._container(prefix).id
        return _stream(self.runtime.Attach, pb.AttachInput, {"container_id": cid}, interactive, tty)

    def stats(self, container: str, pod: str, output: str) -> None:
        """As crictl: CPU % over one second (two samples), memory as the working set."""
        import time

        cid = self._container(container).id if container else ""
        sid = self._pod(pod).id if pod else ""
        request = pb.ListContainerStatsRequest(container_id=cid, pod_sandbox_id=sid)
        first = {s.container_id: s for s in self.runtime.ListContainerStats(request).stats}
        time.sleep(1)
        rows = [["CONTAINER", "NAME", "CPU %", "MEM"]]
        records = []
        for s in self.runtime.ListContainerStats(request).stats:
            before = first.get(s.container_id)
            cpu = 0.0
            if before is not None and s.timestamp > before.timestamp:
                used = s.cpu_usage_core_nanoseconds - before.cpu_usage_core_nanoseconds
                cpu = 100.0 * used / (s.timestamp - before.timestamp)
            rows.append([s.container_id[:13], s.metadata.name, f"{cpu:.2f}", _bytes(s)])
            records.append(
                {
                    "id": s.container_id,
                    "podSandboxId": s.pod_sandbox_id,
                    "name": s.metadata.name,
                    "cpuPercent": round(cpu, 2),
                    "cpuUsageCoreNanoSeconds": s.cpu_usage_core_nanoseconds,
                    "memoryWorkingSetBytes": s.memory_working_set_bytes,
                    "memoryRssBytes": s.memory_rss_bytes,
                    "memoryUsageBytes": s.memory_usage_bytes,
                }
            )
        if output == "json":
            print(json.dumps({"stats": records}, indent=2))
        else:
            _table(rows)

    def port_forward(self, pod: str, ports: str) -> None:
        """Listen on 127.0.0.1:LOCAL and forward each connection to PORT in the pod."""
        import socket
        import threading

        sid = self._pod(pod).id
        local, _, remote = ports.rpartition(":")
        try:
            remote_port, local_port = int(remote), int(local or remote)
        except ValueError as e:
            raise Usage(f"{ports!r}: ports are numbers, as [LOCAL:]REMOTE") from e
        server = socket.create_server(("127.0.0.1", local_port))
        print(f"Forwarding from 127.0.0.1:{server.getsockname()[1]} -> {remote_port}", flush=True)
        with server, contextlib.suppress(KeyboardInterrupt):
            while True:
                conn, _ = server.accept()
                print(f"Handling connection for {local_port}", flush=True)
                threading.Thread(
                    target=_forward, args=(self.runtime, conn, sid, remote_port), daemon=True
                ).start()

    def runp(self, pod_file: str) -> str:
        config = _config(pod_file, pb.PodSandboxConfig())
        return str(
            self.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
        )

    def create(self, pod_prefix: str, container_file: str, pod_file: str) -> str:
        sid = self._pod(pod_prefix).id
        config = _config(container_file, pb.ContainerConfig())
        pod_config = _config(pod_file, pb.PodSandboxConfig())
        if not self.images.ImageStatus(pb.ImageStatusRequest(image=config.image)).HasField("image"):
            self.images.PullImage(pb.PullImageRequest(image=config.image))  # as crictl does
        request = pb.CreateContainerRequest(
            pod_sandbox_id=sid, config=config, sandbox_config=pod_config
        )
        return str(self.runtime.CreateContainer(request).container_id)

    def start(self, prefix: str) -> str:
        cid = self._container(prefix).id
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=cid))
        return cid

    def remove(self, what: str, prefix: str) -> None:
        if what == "stop":
            cid = self._container(prefix).id
            self.runtime.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=10))
        elif what == "rm":
            cid = self._container(prefix).id
            self.runtime.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
        elif what == "stopp":
            sid = self._pod(prefix).id
            self.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        else:
            sid = self._pod(prefix).id
            self.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
        print(cid if what in ("stop", "rm") else sid)


def _config(path: str, message: Any) -> Any:
    """A CRI config from a YAML or JSON file (crictl's format: the messages' fields, in
    camelCase or snake_case); an unknown field is an error, not silently dropped."""
    import yaml
    from google.protobuf import json_format

    try:
        with open(path) as f:
            data = yaml.safe_load(f)
        return json_format.ParseDict(data or {}, message)
    except OSError as e:
        raise Usage(f"{path}: {e.strerror}") from e
    except (yaml.YAMLError, json_format.ParseError) as e:
        raise Usage(f"{path}: {str(e).splitlines()[0]}") from e


def _bytes(s: Any) -> str:
    n = float(s.memory_working_set_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.4g}{unit}"
        n /= 1000
    return ""


def _forward(runtime: Any, conn: Any, sid: str, port: int) -> None:
    """One local connection through a PortForward stream, until both sides are done."""
    import socket

    def inputs() -> Iterator[Any]:
        yield pb.PortForwardInput(pod_sandbox_id=sid, port=port)
        while data := conn.recv(65536):
            yield pb.PortForwardInput(data=data)
        yield pb.PortForwardInput(close=True)

    try:
        for out in runtime.PortForward(inputs()):
            if out.error:
                print(f"error forwarding port {port} to pod {sid}: {out.error}", file=sys.stderr)
                break
            if out.data:
                conn.sendall(out.data)
            if out.closed:
                conn.shutdown(socket.SHUT_WR)
    except (OSError, grpc.RpcError) as e:
        print(f"error forwarding port {port} to pod {sid}: {e}", file=sys.stderr)
    finally:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)  # wakes the reader of `inputs` too
        conn.close()


def _stream_exec(runtime: Any, cid: str, cmd: list[str], interactive: bool, tty: bool) -> int:
    """A streaming Exec wired to this terminal (raw while it runs, as crictl does)."""
    first = {"container_id": cid, "cmd": cmd, "tty": tty}
    return _stream(runtime.Exec, pb.ExecInput, first, interactive, tty)


def _stream(
    call: Any, message: Any, first_fields: dict[str, Any], interactive: bool, tty: bool
) -> int:
    """An Exec or Attach stream wired to this terminal (raw while it runs, as crictl
    does); the exit code it ends with."""
    import select
    import shutil
    import termios
    import tty as ttymod

    size = shutil.get_terminal_size()
    first = message(
        **first_fields,
        stdin=interactive,
        resize_width=size.columns if tty else 0,
        resize_height=size.lines if tty else 0,
    )
    if message is pb.AttachInput:
        first.stdout, first.stderr, first.tty = True, not tty, tty

    def inputs() -> Iterator[Any]:
        yield first
        while interactive:
            ready, _, _ = select.select([0], [], [], 0.2)
            if ready:
                data = os.read(0, 4096)
                yield message(stdin_data=data) if data else message(stdin_close=True)
                if not data:
                    return

    saved = termios.tcgetattr(0) if tty and os.isatty(0) else None
    if saved is not None:
        ttymod.setraw(0)
    code = 0
    responses = call(inputs())
    try:
        for out in responses:
            if out.stdout:
                os.write(1, out.stdout)
            if out.stderr:
                os.write(2, out.stderr)
            if out.exited:
                # The runtime's exit message is its last: the outcome is known, and the
                # call's own end is not waited for (the kubelet does the same: with
                # input still flowing, grpc.aio can fail that end with INTERNAL; this
                # synchronous client has not shown it, but need not depend on it).
                code = out.exit_code
                break
    finally:
        # Stops gRPC's thread that reads our stdin into the call (`yes | crictl exec
        # -i ...` would feed it on); a no-op once the call has ended.
        responses.cancel()
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
    return code


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="skiff crictl", description=__doc__.split("\n")[0])
    p.add_argument("--runtime-endpoint", "-r", default=DEFAULT_SOCKET)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("pods", help="pod sandboxes")
    ps = sub.add_parser("ps", help="containers")
    ps.add_argument("-a", "--all", action="store_true", help="not only running ones")
    sub.add_parser("images", aliases=["img"], help="images")
    for name in ("inspect", "logs", "start", "stop", "rm", "stopp", "rmp"):
        sub.add_parser(name).add_argument("id")
    sub.add_parser("runp", help="run a pod sandbox from a config file").add_argument("pod")
    cr = sub.add_parser("create", help="create a container in a pod from config files")
    for name in ("pod_id", "container_config", "pod_config"):
        cr.add_argument(name)
    rn = sub.add_parser("run", help="runp + create + start, from config files")
    rn.add_argument("container_config")
    rn.add_argument("pod_config")
    ex = sub.add_parser("exec", help="run a command in a container")
    ex.add_argument("-i", "--interactive", action="store_true")
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("id")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    at = sub.add_parser("attach", help="attach to a running container")
    at.add_argument("-i", "--stdin", action="store_true", dest="interactive")
    at.add_argument("-t", "--tty", action="store_true")
    at.add_argument("id")
    st = sub.add_parser("stats", help="CPU and memory of running containers")
    st.add_argument("--id", default="", help="one container (an id prefix)")
    st.add_argument("-p", "--pod", default="", help="the containers of one pod")
    st.add_argument("-o", "--output", choices=("table", "json"), default="table")
    pf = sub.add_parser("port-forward", help="forward a local port to a port in a pod")
    pf.add_argument("id")
    pf.add_argument("ports", help="[LOCAL:]REMOTE")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.exists(a.runtime_endpoint):
        print(f"skiff crictl: no runtime at {a.runtime_endpoint} (is `skiff runtime` running?)",
              file=sys.stderr)  # fmt: skip
        return 1
    ctl = Crictl(a.runtime_endpoint)
    try:
        if a.command == "pods":
            ctl.pods()
        elif a.command == "ps":
            ctl.ps(a.all)
        elif a.command in ("images", "img"):
            ctl.list_images()
        elif a.command == "inspect":
            ctl.inspect(a.id)
        elif a.command == "logs":
            ctl.logs(a.id)
        elif a.command == "runp":
            print(ctl.runp(a.pod))
        elif a.command == "create":
            print(ctl.create(a.pod_id, a.container_config, a.pod_config))
        elif a.command == "start":
            print(ctl.start(a.id))
        elif a.command == "run":
            sid = ctl.runp(a.pod_config)
            print(ctl.start(ctl.create(sid, a.container_config, a.pod_config)))
        elif a.command == "exec":
            if not a.cmd:
                raise Usage("exec needs a command")
            return ctl.exec(a.id, a.cmd, a.interactive, a.tty)
        elif a.command == "attach":
            return ctl.attach(a.id, a.interactive, a.tty)
        elif a.command == "stats":
            ctl.stats(a.id, a.pod, a.output)
        elif a.command == "port-forward":
            ctl.port_forward(a.id, a.ports)
        else:
            ctl.remove(a.command, a.id)
        return 0
    except Usage as e:
        print(f"skiff crictl: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"skiff crictl: {e.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1


if __name__ == "__main__":
    sys.exit(main())
