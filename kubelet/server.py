"""The kubelet's HTTPS API: logs, exec, attach, port-forward, health, metrics and stats.

The endpoints and their wording are the real kubelet's, because the
apiserver relays `kubectl logs/exec/attach/port-forward` here unchanged:

    GET /containerLogs/{ns}/{pod}/{container}   CRI log files turned back into text
    GET /exec/{ns}/{pod}[/{uid}]/{container}     WebSocket, v5/v4.channel.k8s.io
    GET /attach/{ns}/{pod}[/{uid}]/{container}   WebSocket, v5/v4.channel.k8s.io
    GET /portForward/{ns}/{pod}[/{uid}]          WebSocket: SPDY/3.1 frames inside
                                                 (SPDY/3.1+portforward.k8s.io), or
                                                 v4.channel.k8s.io with ?ports=
    GET /healthz  /metrics  /pods  /stats/summary

Everything about a container goes through the runtime's gRPC API: the
containers of a pod are found by the labels the kubelet puts on them
(contract C); the current instance is the highest attempt, the previous one
the next. Callers must present a client certificate from the cluster CA
(`--client-ca-file`); the apiserver's is CN=kube-apiserver-kubelet-client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import grpc
import uvicorn
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc

from . import logs, stats, streams
from .authz import WebhookAuthorizer, attributes, caller_of, forbidden_text
from .portforward import ChannelSession, PodConnection, SpdySession
from .tls import CertHttpProtocol, CertWebSocketProtocol, server_context

log = logging.getLogger("skiff.kubelet.server")

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"

ENDPOINTS = frozenset(
    {"containerLogs", "exec", "attach", "portForward", "healthz", "metrics", "pods", "stats"}
)
FOLLOW_POLL = 0.2  # seconds between looks at a followed log file that has not grown
# Messages of a client's input held for the runtime before the kubelet stops reading
# the client: a command that does not read its stdin (`yes | kubectl exec -i pod --
# sleep 60`) then holds kubectl back through TCP instead of filling the kubelet's memory
# (it grew by 115 MB in 6 s). While held, a client that leaves is noticed when the
# command reads on, writes or ends.
INPUT_BACKLOG = 16


class WebSocket:
    """The ASGI WebSocket messages as bytes in and out."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope, self._receive, self._send = scope, receive, send
        self.closed = False

    async def accept(self, subprotocol: str) -> bool:
        message = await self._receive()
        if message["type"] != "websocket.connect":
            return False
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol})
        return True

    async def reject(self, code: int, text: str) -> None:
        await self._receive()  # websocket.connect
        await self._send(
            {
                "type": "websocket.http.response.start",
                "status": code,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await self._send({"type": "websocket.http.response.body", "body": text.encode()})

    async def receive(self) -> bytes | None:
        """The next message, or None once the client has gone."""
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self.closed = True
                return None
            if message["type"] == "websocket.receive":
                if message.get("bytes") is not None:
                    return bytes(message["bytes"])
                return str(message.get("text") or "").encode()

    async def send(self, data: bytes) -> None:
        if not self.closed:
            await self._send({"type": "websocket.send", "bytes": data})

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": 1000})


class Problem(Exception):
    """An answer other than 200: the code and the kubelet's one-line message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _last(query: dict[str, list[str]]) -> dict[str, str]:
    return {k: v[-1] for k, v in query.items()}


def _true(value: str) -> bool:
    return value.lower() in ("1", "true")


class KubeletServer:
    def __init__(
        self,
        *,
        node_name: str,
        channel: grpc.aio.Channel,
        pods: Callable[[str, str], dict | None],
        bind_address: str,
        port: int,
        cert_file: Path,
        key_file: Path,
        client_ca_file: Path,
        authorizer: WebhookAuthorizer | None = None,
    ) -> None:
        self.node_name = node_name
        # Authorization of callers (kubelet/authz.py); None: any client the CA signed.
        self._authorizer = authorizer
        self._stub = pb_grpc.RuntimeServiceStub(channel)
        self._pods = pods
        self._bind, self._port = bind_address, port
        self._pki = (Path(cert_file), Path(key_file), Path(client_ca_file))
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._previous: dict[str, tuple[int, int]] = {}
        self._requests: Counter[tuple[str, str, str]] = Counter()

    @property
    def port(self) -> int:
        """The port listened on (the one chosen by the kernel when 0 was asked for)."""
        if self._server is not None and self._server.servers:
            return int(self._server.servers[0].sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        pki = self._pki
        for path in pki:
            if not path.exists():
                raise FileNotFoundError(f"kubelet server: {path} does not exist")
        config = uvicorn.Config(
            self,
            host=self._bind,
            port=self._port,
            http=CertHttpProtocol,
            ws=CertWebSocketProtocol,
            ws_per_message_deflate=False,
            lifespan="off",
            log_config=None,  # the kubelet's logging stays as its main set it up
            log_level="warning",
            access_log=False,
            ssl_certfile=str(pki[0]),
            ssl_keyfile=str(pki[1]),
            ssl_context_factory=lambda _config, _default: server_context(*pki),
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._server = server
        self._task = asyncio.create_task(self._serve(server), name="kubelet-server")
        while not server.started:
            if self._task.done():
                self._task.result()
                raise OSError(f"kubelet server could not listen on {self._bind}:{self._port}")
            await asyncio.sleep(0.02)
        log.info("kubelet API on https://%s:%d", self._bind, self.port)

    @staticmethod
    async def _serve(server: uvicorn.Server) -> None:
        try:
            await server.serve()
        except SystemExit as e:  # uvicorn exits when it cannot bind
            raise OSError(f"kubelet server failed to start (exit {e.code})") from None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, timeout=10)

    # -- ASGI ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return
        tls = (scope.get("extensions") or {}).get("tls") or {}
        parts = [p for p in scope["path"].split("/") if p]
        kind = parts[0] if parts else ""
        method = scope.get("method", "GET")
        known = kind if kind in ENDPOINTS else "other"  # bounded metric labels
        self._requests[(method, known, scope["type"])] += 1
        if scope["type"] == "websocket":
            ws = WebSocket(scope, receive, send)
            if not tls.get("client_cert_der"):
                await ws.reject(401, "Unauthorized")
                return
            refusal = await self._authorize(scope, tls["client_cert_der"])
            if refusal:
                await ws.reject(403, refusal)
                return
            try:
                await self._websocket(ws, kind, parts[1:])
            except Problem as e:
                if not ws.closed:
                    await ws.reject(e.code, str(e))
            return
        if not tls.get("client_cert_der"):
            await PlainTextResponse("Unauthorized", 401)(scope, receive, send)
            return
        refusal = await self._authorize(scope, tls["client_cert_der"])
        if refusal:
            await PlainTextResponse(refusal, 403)(scope, receive, send)
            return
        try:
            response = await self._http(scope, kind, parts[1:])
        except Problem as e:
            response = PlainTextResponse(str(e), e.code)
        except grpc.aio.AioRpcError as e:
            response = PlainTextResponse(f"runtime: {e.details()}", 500)
        await response(scope, receive, send)

    async def _authorize(self, scope: Scope, der: bytes) -> str:
        """ "" when the caller may make this request, else the kubelet's 403 text."""
        if self._authorizer is None:
            return ""
        caller = caller_of(der)
        verb, sub = attributes(
            scope.get("method", "GET"), scope["path"], scope["type"] == "websocket"
        )
        try:
            ok, _ = await self._authorizer.allowed(caller, verb, sub)
        except Exception as e:  # the apiserver unreachable: refuse, as the kubelet does
            log.warning("authorization of %s failed: %s", caller.name, e)
            ok = False
        return "" if ok else forbidden_text(caller, verb, sub, self.node_name)

    async def _http(self, scope: Scope, kind: str, rest: list[str]) -> Response:
        method = scope["method"]
        if kind == "portForward" and len(rest) in (2, 3):
            await self._sandbox(rest[0], rest[1])  # 404 when the pod is not here
        if kind in ("exec", "attach", "portForward", "run"):
            raise Problem(400, "Upgrade request required")
        if method != "GET":
            raise Problem(405, "405 method not allowed")
        if kind == "healthz" and not rest:
            return PlainTextResponse("ok")
        if kind == "metrics" and not rest:
            return PlainTextResponse(
                await self._metrics(), media_type="text/plain; version=0.0.4; charset=utf-8"
            )
        if kind == "pods" and not rest:
            return _json(await self._pod_list())
        if kind == "stats" and rest == ["summary"]:
            return _json(await self._summary())
        if kind == "containerLogs" and len(rest) == 3:
            return await self._logs(scope, *rest)
        raise Problem(404, "404 page not found")

    # -- containers ------------------------------------------------------------

    async def _containers(self, ns: str, pod: str, container: str) -> list[pb.ContainerStatus]:
        """The pod's instances of `container`, newest attempt first."""
        selector = {POD_NAMESPACE: ns, POD_NAME: pod, CONTAINER_NAME: container}
        api_pod = self._pods(ns, pod)
        uid = ((api_pod or {}).get("metadata") or {}).get("uid")
        if uid:
            selector[POD_UID] = uid
        found = await self._stub.ListContainers(pb.ListContainersRequest(label_selector=selector))
        return sorted(
            found.containers, key=lambda c: (c.metadata.attempt, c.created_at), reverse=True
        )

    async def _sandbox(self, ns: str, pod: str) -> tuple[pb.PodSandboxStatus, str]:
        selector = {POD_NAMESPACE: ns, POD_NAME: pod}
        api_pod = self._pods(ns, pod)
        uid = ((api_pod or {}).get("metadata") or {}).get("uid", "")
        if uid:
            selector[POD_UID] = uid
        found = await self._stub.ListPodSandbox(pb.ListPodSandboxRequest(label_selector=selector))
        ready = [s for s in found.items if s.state == pb.SANDBOX_READY]
        if not ready:
            raise Problem(404, f'pod "{pod}" does not exist')
        best = max(ready, key=lambda s: s.created_at)
        return best, uid or best.labels.get(POD_UID, "")

    async def _running(self, container_id: str) -> bool:
        try:
            got = await self._stub.ContainerStatus(
                pb.ContainerStatusRequest(container_id=container_id)
            )
        except grpc.aio.AioRpcError:
            return False
        return got.status.state == pb.CONTAINER_RUNNING

    # -- logs ------------------------------------------------------------------

    async def _logs(self, scope: Scope, ns: str, pod: str, container: str) -> Response:
        query = _last(_query(scope))
        try:
            opts = logs.parse_options(query, datetime.datetime.now(datetime.UTC))
        except logs.OptionsError as e:
            raise Problem(400, str(e)) from None
        instances = await self._containers(ns, pod, container)
        if not instances:
            if self._pods(ns, pod) is None:
                raise Problem(404, f'pod "{pod}" does not exist')
            raise Problem(
                400,
                f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating',
            )
        if opts.previous:
            if len(instances) < 2:
                raise Problem(
                    400, f'previous terminated container "{container}" in pod "{pod}" not found'
                )
            target = instances[1]
        else:
            target = instances[0]
        follow = opts.follow and not opts.previous
        return StreamingResponse(
            self._log_stream(target, opts, follow), media_type="text/plain; charset=utf-8"
        )

    async def _log_stream(
        self, target: pb.ContainerStatus, opts: logs.LogOptions, follow: bool
    ) -> AsyncIterator[bytes]:
        limiter = logs.Limiter(opts.limit_bytes)
        path = target.log_path
        try:
            f = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, IsADirectoryError):
            return
        try:
            records, rest = logs.split_records(await asyncio.to_thread(f.read))
            lines = [line for r in records if (line := logs.parse_line(r)) is not None]
            out = b"".join(logs.render(line, opts.timestamps) for line in logs.select(lines, opts))
            out = limiter.take(out)
            if out:
                yield out
            if not follow or limiter.done:
                return
            buffer = rest
            while not limiter.done:
                chunk = await asyncio.to_thread(f.read)
                if not chunk:
                    if await asyncio.to_thread(_rotated, f, path):
                        # The log was rotated and the runtime reopened it at the path:
                        # the old file is complete, carry on with the new one.
                        f.close()
                        f = await asyncio.to_thread(open, path, "rb")
                        continue
                    if not await self._running(target.id):
                        chunk = await asyncio.to_thread(f.read)  # written while exiting
                        if not chunk:
                            return
                    else:
                        await asyncio.sleep(FOLLOW_POLL)
                        continue
                records, buffer = logs.split_records(buffer + chunk)
                out = b"".join(
                    logs.render(line, opts.timestamps)
                    for r in records
                    if (line := logs.parse_line(r)) is not None
                )
                out = limiter.take(out)
                if out:
                    yield out
        finally:
            f.close()

    # -- exec, attach, port-forward --------------------------------------------

    async def _websocket(self, ws: WebSocket, kind: str, rest: list[str]) -> None:
        if kind in ("exec", "attach") and len(rest) in (3, 4):
            ns, pod, container = rest[0], rest[1], rest[-1]
            protocol = streams.choose(ws.scope.get("subprotocols") or [], streams.CHANNEL_PROTOCOLS)
            if protocol is None:
                raise Problem(
                    400,
                    "unable to upgrade: no supported stream protocol offered "
                    f"(supported: {', '.join(streams.CHANNEL_PROTOCOLS)})",
                )
            await self._stream_session(ws, protocol, kind == "attach", ns, pod, container)
            return
        if kind == "portForward" and len(rest) in (2, 3):
            await self._port_forward(ws, rest[0], rest[1])
            return
        raise Problem(404, "404 page not found")

    async def _stream_session(
        self, ws: WebSocket, protocol: str, attach: bool, ns: str, pod: str, container: str
    ) -> None:
        query = _query(ws.scope)
        flags = _last(query)
        command = query.get("command", [])
        stdin = _true(flags.get("stdin", ""))
        tty = _true(flags.get("tty", ""))
        stdout = _true(flags.get("stdout", "true" if attach else ""))
        stderr = _true(flags.get("stderr", "")) and not tty
        if not await ws.accept(protocol):
            return
        instances = await self._containers(ns, pod, container)
        if not instances or not await self._running(instances[0].id):
            await ws.send(
                streams.status_frame(
                    streams.failure(f'container "{container}" in pod "{pod}" is not running')
                )
            )
            await ws.close()
            return
        if not attach and not command:
            await ws.send(streams.status_frame(streams.failure("you must specify a command")))
            await ws.close()
            return
        cid = instances[0].id
        message_type: Any = pb.AttachInput if attach else pb.ExecInput
        first = (
            pb.AttachInput(container_id=cid, stdin=stdin, tty=tty, stdout=stdout, stderr=stderr)
            if attach
            else pb.ExecInput(container_id=cid, cmd=command, tty=tty, stdin=stdin)
        )
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=INPUT_BACKLOG)

        async def requests() -> AsyncIterator[Any]:
            yield first
            while (message := await queue.get()) is not None:
                yield message

        call = self._stub.Attach(requests()) if attach else self._stub.Exec(requests())

        async def from_client() -> None:
            while (message := await ws.receive()) is not None:
                parsed = streams.parse(message)
                if parsed is None:
                    continue
                channel, data = parsed
                if channel == streams.STDIN and data:
                    await queue.put(message_type(stdin_data=data))
                elif channel == streams.RESIZE:
                    size = streams.parse_resize(data)
                    if size:
                        await queue.put(message_type(resize_width=size[0], resize_height=size[1]))
                elif channel == streams.CLOSE and data[:1] == bytes([streams.STDIN]):
                    await queue.put(message_type(stdin_close=True))

        def ended(code: int) -> dict[str, Any]:
            return streams.success() if attach else streams.exit_status(code, list(command))

        async def to_client() -> dict[str, Any]:
            """The output, then how the command ended.

            The runtime's exit message is its last: from then on the outcome is
            known and the call's own end is not waited for. When kubectl's input is
            still flowing as the command exits, our write of it can lose the race with
            the runtime's end of the call, and gRPC then fails the call (INTERNAL,
            "Internal error from Core") although every output message has arrived.
            """
            try:
                async for out in call:
                    if out.stdout and stdout:
                        await ws.send(streams.frame(streams.STDOUT, out.stdout))
                    if out.stderr and (stderr or tty):
                        await ws.send(streams.frame(streams.STDERR, out.stderr))
                    if out.exited:
                        return ended(out.exit_code)
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.CANCELLED:
                    return streams.success()
                return streams.failure(f"error in {'attach' if attach else 'exec'}: {e.details()}")
            return ended(0)

        reader = asyncio.create_task(from_client())
        writer = asyncio.create_task(to_client())
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if writer in done:
                await ws.send(streams.status_frame(writer.result()))
            else:  # the client went away: stop the command's stream
                call.cancel()
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            # The end of the input. A full backlog means the runtime is not taking
            # input: its call has ended, or was cancelled above.
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
            await ws.close()

    async def _port_forward(self, ws: WebSocket, ns: str, pod: str) -> None:
        offered = ws.scope.get("subprotocols") or []
        protocol = streams.choose(offered, (streams.SPDY_PORTFORWARD, streams.V4))
        if protocol is None:
            raise Problem(
                400,
                "unable to upgrade: no supported port-forward protocol offered "
                f"(supported: {streams.SPDY_PORTFORWARD}, {streams.V4})",
            )
        sandbox, uid = await self._sandbox(ns, pod)
        pod_name = f"{ns}/{pod}"

        def connect(port: int) -> PodConnection:
            return PodConnection(self._stub, sandbox.id, port)

        if protocol == streams.V4:
            try:
                ports = [int(p) for p in _last(_query(ws.scope)).get("ports", "").split(",")]
                if not ports or not all(0 < p < 65536 for p in ports):
                    raise ValueError
            except ValueError:
                raise Problem(400, 'query parameter "ports" must name ports 1-65535') from None
            if not await ws.accept(protocol):
                return
            session = ChannelSession(ws.send, connect, ports, pod=pod_name, uid=uid)
            await session.start()
            waiting = asyncio.create_task(session.wait())
            try:
                while (message := await ws.receive()) is not None:
                    session.receive(message)
                    if waiting.done():
                        break
            finally:
                await session.close()
                waiting.cancel()
                await ws.close()
            return
        if not await ws.accept(protocol):
            return
        spdy_session = SpdySession(ws.send, connect, pod=pod_name, uid=uid)
        try:
            while (message := await ws.receive()) is not None:
                if not await spdy_session.receive(message):
                    break
        except Exception as e:
            log.warning("port-forward to %s ended: %s", pod_name, e)
        finally:
            await spdy_session.close()
            await ws.close()

    # -- node views ------------------------------------------------------------

    async def _pod_list(self) -> dict[str, Any]:
        sandboxes = await self._stub.ListPodSandbox(pb.ListPodSandboxRequest())
        items, seen = [], set()
        for s in sandboxes.items:
            key = (s.labels.get(POD_NAMESPACE, ""), s.labels.get(POD_NAME, ""))
            if s.state != pb.SANDBOX_READY or key in seen or not all(key):
                continue
            seen.add(key)
            pod = self._pods(*key)
            if pod is not None:
                items.append(pod)
        return {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}

    async def _summary(self) -> dict[str, Any]:
        node = await asyncio.to_thread(stats.read_node)
        got = await self._stub.ListContainerStats(pb.ListContainerStatsRequest())
        listed = await self._stub.ListContainers(pb.ListContainersRequest())
        started = {c.id: c.started_at or c.created_at for c in listed.containers}
        samples = [
            stats.ContainerSample(
                pod_namespace=s.labels.get(POD_NAMESPACE, ""),
                pod_name=s.labels.get(POD_NAME, ""),
                pod_uid=s.labels.get(POD_UID, ""),
                name=s.labels.get(CONTAINER_NAME, s.metadata.name),
                time_ns=s.timestamp or node.time_ns,
                start_ns=started.get(s.container_id, s.timestamp),
                cpu_ns=s.cpu_usage_core_nanoseconds,
                working_set=s.memory_working_set_bytes,
                rss=s.memory_rss_bytes,
                usage=s.memory_usage_bytes,
            )
            for s in got.stats
            if s.labels.get(POD_NAME)
        ]
        return stats.summary(self.node_name, node, samples, self._previous)

    async def _metrics(self) -> str:
        sandboxes = await self._stub.ListPodSandbox(pb.ListPodSandboxRequest())
        containers = await self._stub.ListContainers(pb.ListContainersRequest())
        states = Counter(pb.ContainerState.Name(c.state) for c in containers.containers)
        running_pods = sum(1 for s in sandboxes.items if s.state == pb.SANDBOX_READY)
        lines = [
            "# HELP kubelet_node_name The node's name. The count is always 1.",
            "# TYPE kubelet_node_name gauge",
            f'kubelet_node_name{{node="{self.node_name}"}} 1',
            "# HELP kubelet_running_pods Number of pods that have a running pod sandbox",
            "# TYPE kubelet_running_pods gauge",
            f"kubelet_running_pods {running_pods}",
            "# HELP kubelet_running_containers Number of containers currently running",
            "# TYPE kubelet_running_containers gauge",
        ]
        names = {
            "CONTAINER_RUNNING": "running",
            "CONTAINER_EXITED": "exited",
            "CONTAINER_CREATED": "created",
            "CONTAINER_UNKNOWN": "unknown",
        }
        for state, label in names.items():
            lines.append(
                f'kubelet_running_containers{{container_state="{label}"}} {states.get(state, 0)}'
            )
        lines += [
            "# HELP kubelet_http_requests_total Number of the http requests received since "
            "the server started",
            "# TYPE kubelet_http_requests_total counter",
        ]
        for (method, path, kind), count in sorted(self._requests.items()):
            lines.append(
                f'kubelet_http_requests_total{{method="{method}",path="{path}",'
                f'server_type="{"websocket" if kind == "websocket" else "readwrite"}"}} {count}'
            )
        return "\n".join(lines) + "\n"


def _rotated(f: Any, path: str) -> bool:
    """Whether `path` now names another file than the open one (a new log after rotation)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False  # renamed, not yet reopened


def _json(obj: Any) -> Response:
    return Response(json.dumps(obj), media_type="application/json")
