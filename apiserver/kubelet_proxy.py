"""pods/log, exec, attach, portforward and nodes/proxy: relayed to the node's kubelet.

As kube-apiserver does, the apiserver looks up the pod's node, finds the
kubelet at the node's InternalIP and `status.daemonEndpoints.kubeletEndpoint.Port`,
and calls it over HTTPS with its own client certificate
(`pki/apiserver-kubelet-client.crt`, see kubelet_certs.py):

    GET  pods/{p}/log?container=c&...      → GET /containerLogs/{ns}/{p}/{c}?...  (streamed)
    GET  pods/{p}/exec?command=..          → WebSocket /exec/{ns}/{p}/{c}?...
    GET  pods/{p}/attach?..                → WebSocket /attach/{ns}/{p}/{c}?...
    GET  pods/{p}/portforward              → WebSocket /portForward/{ns}/{p}
    *    nodes/{n}/proxy/{path}            → * /{path}

For a WebSocket request the apiserver opens a WebSocket to the kubelet with
the subprotocols the client offered, accepts the client's upgrade with the
one the kubelet chose, and then copies messages both ways untouched — which
serves the v5/v4 channel protocol of exec and attach and the SPDY/3.1 frames
kubectl tunnels port-forward in alike. kubectl 1.32 and later speak
WebSocket first; their SPDY fallback (`POST` with `Upgrade: SPDY/3.1`) is
answered with the same checks and a BadRequest naming the WebSocket
protocols, since it is only tried when the WebSocket upgrade failed.

The metrics API (`metrics.k8s.io`, metrics_api.py) and its discovery entry are
served from here too, since they also read the kubelets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import httpx
import websockets
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.asyncio.client import connect as ws_connect
from websockets.frames import EXTERNAL_CLOSE_CODES

from api import resources

from . import discovery, errors, responses
from .metrics_api import GROUP, MetricsAPI
from .registry import Registry
from .ws_tls import kubelet_connection

log = logging.getLogger("skiff.apiserver.kubelet")

POD_STREAMS = frozenset({"log", "exec", "attach", "portforward"})
DEFAULT_KUBELET_PORT = 10250
UPGRADE_REQUIRED = "Upgrade request required"  # the kubelet's answer to a plain GET
# Query parameters the apiserver uses itself and does not pass on.
LOCAL_PARAMS = frozenset({"container", "insecureSkipTLSVerifyBackend"})


class KubeletConnector:
    """How the apiserver calls kubelets: TLS with its client certificate."""

    def __init__(self, ca: Path, cert: Path, key: Path) -> None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        # The chain must lead to the cluster CA, but the name is not checked: a
        # node's address may change after its certificate was issued, and
        # kube-apiserver does not check kubelet serving names either.
        context.check_hostname = False
        context.load_cert_chain(str(cert), str(key))
        self.ssl = context
        self.http = httpx.AsyncClient(verify=context, timeout=httpx.Timeout(30.0, read=None))

    async def close(self) -> None:
        await self.http.aclose()


def _error_from_kubelet(code: int, body: bytes) -> errors.ApiError:
    """A kubelet's non-2xx answer as kube-apiserver reports it (its text as the message)."""
    text = body.decode(errors="replace").strip() or f"the kubelet answered {code}"
    with contextlib.suppress(ValueError, AttributeError):
        status = json.loads(text)
        if isinstance(status, dict) and status.get("kind") == "Status":
            text = str(status.get("message") or text)
    reason = {
        400: "BadRequest",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        503: "ServiceUnavailable",
    }.get(code, "InternalError")
    return errors.ApiError(code if code >= 400 else 500, reason, text)


class KubeletProxy:
    """ASGI layer in front of the resource handlers for the kubelet-backed paths."""

    def __init__(self, app: ASGIApp, registry: Registry, connector: KubeletConnector) -> None:
        self.app = app
        self.registry = registry
        self.connector = connector
        self.metrics = MetricsAPI(registry, self.kubelet_get)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        parts = [p for p in scope["path"].split("/") if p]
        websocket = scope["type"] == "websocket"
        try:
            if parts == ["apis"] and not websocket:
                await self._groups()(scope, receive, send)
                return
            if len(parts) >= 2 and parts[:2] == ["apis", GROUP] and not websocket:
                state = scope.setdefault("state", {})
                state.update(group=GROUP, verb="get", resource=parts[-1])
                response = await self.metrics.handle(Request(scope, receive), parts[2:])
                await response(scope, receive, send)
                return
            target = await self._target(scope, parts)
        except errors.ApiError as e:
            await self._refuse(scope, receive, send, e)
            return
        if target is None:
            await self.app(scope, receive, send)
            return
        url, stream_kind = target
        try:
            if websocket:
                await self._relay_websocket(scope, receive, send, url)
                return
            if stream_kind in ("exec", "attach", "portforward"):
                raise await self._no_spdy(stream_kind, url)
            response = await self._relay_http(Request(scope, receive), url)
        except errors.ApiError as e:
            await self._refuse(scope, receive, send, e)
            return
        await response(scope, receive, send)

    # -- where to -------------------------------------------------------------

    async def _target(self, scope: Scope, parts: list[str]) -> tuple[str, str] | None:
        """(kubelet URL, kind) for a kubelet-backed path, None for any other path."""
        if (
            len(parts) == 7
            and parts[:3] == ["api", "v1", "namespaces"]
            and parts[4] == "pods"
            and parts[6] in POD_STREAMS
        ):
            ns, name, sub = parts[3], parts[5], parts[6]
            state = scope.setdefault("state", {})
            state.update(
                verb="create" if sub != "log" else "get",
                resource="pods",
                subresource=sub,
                version="v1",
                scope="resource",
            )
            return await self._pod_target(scope, ns, name, sub), sub
        if len(parts) >= 5 and parts[:3] == ["api", "v1", "nodes"] and parts[4] == "proxy":
            node, _, port = parts[3].partition(":")
            host, kubelet_port = await self._node_address(node)
            rest = "/".join(quote(p) for p in parts[5:])
            query = scope.get("query_string", b"").decode("latin-1")
            url = f"https://{_host(host)}:{port or kubelet_port}/{rest}"
            return (url + (f"?{query}" if query else "")), "proxy"
        return None

    async def _node_address(self, node_name: str) -> tuple[str, int]:
        info = resources.lookup("", "v1", "nodes")
        assert info is not None
        node = (await self.registry.get(info, "", node_name)).obj
        status = node.get("status") or {}
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        host = next(
            (addresses[t] for t in ("InternalIP", "ExternalIP", "Hostname") if addresses.get(t)), ""
        )
        if not host:
            known = [f"{t}:{a}" for t, a in addresses.items()]
            raise errors.ApiError(
                503,
                "ServiceUnavailable",
                f"no preferred addresses found; known addresses: [{' '.join(known)}]",
            )
        endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
        return host, int(endpoint.get("Port") or DEFAULT_KUBELET_PORT)

    async def _pod_target(self, scope: Scope, ns: str, name: str, sub: str) -> str:
        info = resources.lookup("", "v1", "pods")
        assert info is not None
        pod = (await self.registry.get(info, ns, name)).obj
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if not node:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        host, port = await self._node_address(node)
        passed = urlencode([(k, v) for k, v in pairs if k not in LOCAL_PARAMS])
        suffix = f"?{passed}" if passed else ""
        base = f"https://{_host(host)}:{port}"
        if sub == "portforward":
            return f"wss://{_host(host)}:{port}/portForward/{quote(ns)}/{quote(name)}{suffix}"
        container = _container(pod, dict(pairs).get("container", ""), sub)
        phase = (pod.get("status") or {}).get("phase")
        if sub in ("exec", "attach") and phase in ("Succeeded", "Failed"):
            raise errors.bad_request(
                f"cannot {sub} into a container in a completed pod; current phase is {phase}"
            )
        path = f"{quote(ns)}/{quote(name)}/{quote(container)}{suffix}"
        if sub == "log":
            return f"{base}/containerLogs/{path}"
        return f"wss://{_host(host)}:{port}/{sub}/{path}"

    # -- relays ---------------------------------------------------------------

    async def kubelet_get(self, node: str, path: str) -> Any:
        """GET a kubelet's JSON document (the metrics API reads /stats/summary)."""
        host, port = await self._node_address(node)
        url = f"https://{_host(host)}:{port}{path}"
        try:
            answer = await self.connector.http.get(url, timeout=10.0)
        except httpx.HTTPError as e:
            raise errors.ApiError(503, "ServiceUnavailable", f'Get "{url}": {e}') from e
        if answer.status_code != 200:
            raise _error_from_kubelet(answer.status_code, answer.content)
        return answer.json()

    async def _relay_http(self, request: Request, url: str) -> Response:
        client = self.connector.http
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("accept", "content-type")
        }
        body = await request.body()
        outgoing = client.build_request(request.method, url, headers=headers, content=body or None)
        try:
            answer = await client.send(outgoing, stream=True)
        except httpx.HTTPError as e:
            raise errors.ApiError(
                500, "InternalError", f'{request.method.title()} "{url}": {e or type(e).__name__}'
            ) from e
        if answer.status_code >= 300:
            body = await answer.aread()
            await answer.aclose()
            raise _error_from_kubelet(answer.status_code, body)
        kept = {
            k: v
            for k, v in answer.headers.items()
            if k.lower() in ("content-type", "content-disposition")
        }
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=kept,
            background=_Close(answer),
        )

    async def _relay_websocket(self, scope: Scope, receive: Receive, send: Send, url: str) -> None:
        offered = list(scope.get("subprotocols") or [])
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        try:
            upstream = await ws_connect(
                url,
                ssl=self.connector.ssl,
                # As a header: `websockets` refuses names with "/" (see ws_tls.py).
                additional_headers=(
                    {"Sec-WebSocket-Protocol": ", ".join(offered)} if offered else None
                ),
                max_size=None,
                compression=None,
                open_timeout=15,
                ping_interval=None,
                close_timeout=2,
                create_connection=kubelet_connection(offered),  # type: ignore[arg-type]
            )
        except websockets.exceptions.InvalidStatus as e:
            await _send_http_error(
                send, _error_from_kubelet(e.response.status_code, e.response.body or b"")
            )
            return
        except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as e:
            await _send_http_error(
                send,
                errors.ApiError(
                    500, "InternalError", f"error dialing backend: {e or type(e).__name__}"
                ),
            )
            return
        await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})

        async def down() -> None:
            with contextlib.suppress(websockets.exceptions.ConnectionClosed):
                async for data in upstream:
                    if isinstance(data, bytes):
                        await send({"type": "websocket.send", "bytes": data})
                    else:
                        await send({"type": "websocket.send", "text": data})

        async def up() -> None:
            """The client's messages to the kubelet until the client leaves. A failed
            write (the kubelet has closed: the command ended while input was still
            coming) ends only the input: down() still relays what the kubelet sent."""
            delivering = True
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message["type"] != "websocket.receive" or not delivering:
                    continue
                try:
                    if message.get("bytes") is not None:
                        await upstream.send(message["bytes"])
                    elif message.get("text") is not None:
                        await upstream.send(message["text"])
                except websockets.exceptions.ConnectionClosed:
                    delivering = False

        tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
        code, reason = 1000, ""
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if tasks[0].done() and upstream.close_code is not None:
                code, reason = client_close(upstream.close_code, upstream.close_reason or "")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await upstream.close()
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code, "reason": reason})

    async def _no_spdy(self, kind: str, url: str) -> errors.ApiError:
        """The answer to kubectl's SPDY fallback, which it sends only after its WebSocket
        upgrade failed: why the kubelet refused (it answers a plain GET of the same
        URL with the same checks), or else that only WebSocket is served."""
        plain = "https://" + url.removeprefix("wss://")
        try:
            answer = await self.connector.http.get(plain, timeout=10.0)
        except httpx.HTTPError as e:
            return errors.ApiError(
                500, "InternalError", f"error dialing backend: {e or type(e).__name__}"
            )
        if answer.status_code >= 300 and answer.text.strip() != UPGRADE_REQUIRED:
            return _error_from_kubelet(answer.status_code, answer.content)
        return errors.bad_request(
            f"pods/{kind} needs a WebSocket upgrade (v5.channel.k8s.io, v4.channel.k8s.io, "
            "or SPDY/3.1+portforward.k8s.io for port-forward); skiff does not serve the "
            "older SPDY upgrade"
        )

    # -- answers --------------------------------------------------------------

    def _groups(self) -> Response:
        doc = dict(discovery.api_group_list())
        groups = [g for g in doc["groups"] if g.get("name") != GROUP]
        doc["groups"] = [*groups, self.metrics.group()]
        return responses.send(doc)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, error: errors.ApiError
    ) -> None:
        if scope["type"] == "websocket":
            message = await receive()
            if message["type"] == "websocket.connect":
                await _send_http_error(send, error)
            return
        await responses.send_error(error)(scope, receive, send)


class _Close:
    """Closes the kubelet's response once the client has had all of it (or left)."""

    def __init__(self, answer: httpx.Response) -> None:
        self.answer = answer

    async def __call__(self) -> None:
        await self.answer.aclose()


async def _send_http_error(send: Send, error: errors.ApiError) -> None:
    body = json.dumps(error.status()).encode()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": error.code,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


def client_close(code: int, reason: str) -> tuple[int, str]:
    """The close kubectl gets when the kubelet's WebSocket has ended with `code`.

    kube-apiserver tunnels the kubelet's connection, so kubectl sees the kubelet's own
    close, or the connection dropping when the kubelet died. client-go takes only 1000
    as the end of the stream; any other close (or a drop, 1006) makes `kubectl exec`
    fail with "error reading from error stream: next reader: websocket: close ...".
    A code that may be sent is passed on; one that may not (1005 no status, 1006
    dropped, 1015 TLS) becomes 1011 with a reason naming what happened, so an ended
    kubelet never looks like a command that succeeded.
    """
    if code == 1000 or code in EXTERNAL_CLOSE_CODES or 3000 <= code < 5000:
        return code, _truncate(reason)
    what = {
        1005: "closed without a status code",
        1006: "connection to the kubelet was lost (no close frame)",
        1015: "TLS failure on the connection to the kubelet",
    }.get(code, f"closed with code {code}")
    return 1011, _truncate(f"kubelet stream ended abnormally: {what}")


def _truncate(reason: str) -> str:
    """A close reason fits in a control frame: at most 123 bytes of UTF-8."""
    data = reason.encode()
    return data[:123].decode(errors="ignore") if len(data) > 123 else reason


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _container(pod: dict[str, Any], wanted: str, sub: str) -> str:
    """The container the request is about: the named one, or the pod's only one."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    apps = [c["name"] for c in spec.get("containers") or []]
    inits = [c["name"] for c in spec.get("initContainers") or []]
    ephemeral = [c["name"] for c in spec.get("ephemeralContainers") or []]
    if not wanted:
        if len(apps) == 1:
            return apps[0]
        message = (
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(apps)}]"
        )
        if inits:
            message += f" or one of the init containers: [{' '.join(inits)}]"
        raise errors.bad_request(message)
    if wanted not in (*apps, *inits, *ephemeral):
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted
