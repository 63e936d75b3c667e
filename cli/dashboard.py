"""`skiff dashboard`: a live web view of the cluster, for people learning how it works.

It runs as the user, with the user's kubeconfig, on 127.0.0.1 (like `kubectl
proxy`): every read and every write goes to the apiserver with the user's own
credentials, so what the page may show and change is what RBAC lets that user
do, and the apiserver carries no UI code. The page is static (dashboard_static/:
one HTML file, one script, one stylesheet, nothing fetched from the internet);
this process keeps informers (list + watch) of the kinds the page draws and
relays their changes to each open page as Server-Sent Events.

    GET  /                 the page
    GET  /static/<file>    its script and stylesheet
    GET  /api/stream       text/event-stream: a `snapshot` (every cached object), then
                           one `change` per watch event ({"op": "put"|"delete", "object": ...})
    POST /api/loop         {"action": "pause"|"step"|"resume"|"slow", "seconds": N}
                           writes the loop-control ConfigMap (kube-system/skiff-loop-control)

The timeline merges Events with the reconcile trace, which the components keep
in ConfigMaps labelled skiff.io/trace=true (a few per component, bounded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from client.config import ConfigError, load_config
from client.errors import ApiError, NotFound
from client.informer import Informer
from client.rest import Client

STATIC = Path(__file__).with_name("dashboard_static")

LOOP_NAMESPACE = "kube-system"
LOOP_CONFIGMAP = "skiff-loop-control"

# (apiVersion, kind, namespace, fieldSelector, labelSelector): what the page draws.
WATCHED: list[tuple[str, str, str, str, str]] = [
    ("v1", "Node", "", "", ""),
    ("v1", "Pod", "", "", ""),
    ("apps/v1", "Deployment", "", "", ""),
    ("apps/v1", "ReplicaSet", "", "", ""),
    ("v1", "Service", "", "", ""),
    ("v1", "Endpoints", "", "", ""),
    ("v1", "Event", "", "", ""),
    ("v1", "ConfigMap", LOOP_NAMESPACE, f"metadata.name={LOOP_CONFIGMAP}", ""),
    # The reconcile trace (client/trace.py on the `study` branch, docs/architecture.md):
    # a few bounded ConfigMaps per component, kube-system/skiff-trace-<component>
    # (the head) and skiff-trace-<k>-<component> (sealed shards), labelled
    # skiff.io/trace=true, their `records` JSON lists. The page merges the
    # records of these objects by component and seq as they change.
    ("v1", "ConfigMap", LOOP_NAMESPACE, "", "skiff.io/trace=true"),
]


def slim(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as the page needs it: managedFields are noise for a learner."""
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def loop_patch(action: str, seconds: float | None, current: dict[str, str]) -> dict[str, str]:
    """The loop-control ConfigMap's data after a button press, in the keys every
    loop's gate reads (client/loopcontrol.py, as `skiff loop` writes them):

    `mode` `run` or `pause`; `steps` counts step presses and `granted` the steps
    loops took (a paused loop lets one action through while steps > granted);
    `slow` the delay before each acting reconcile (`0s`: none). Resume is
    `skiff loop resume`: run, no delay, every loop (`only` cleared); the other
    buttons keep `only` and `lastStep` as they are.
    """
    data = dict(current)
    data.setdefault("mode", "run")
    data.setdefault("slow", "0s")
    data.setdefault("steps", "0")
    data.setdefault("granted", "0")
    if action == "pause":
        data["mode"] = "pause"
    elif action == "resume":  # as `skiff loop resume`: full speed, every loop
        data.update(mode="run", slow="0s", only="")
    elif action == "step":
        data["mode"] = "pause"
        data["steps"] = str(int(data["steps"] or 0) + 1)
    elif action == "slow":
        if seconds is None or seconds < 0:
            raise ValueError("slow needs seconds >= 0")
        data["slow"] = f"{seconds:g}s"
    else:
        raise ValueError(f"unknown action {action!r}: pause, step, resume or slow")
    return data


class Hub:
    """Informers of the watched kinds, fanning their changes out to open pages."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.informers = [
            Informer(client, api_version, kind, namespace=ns, field_selector=fs, label_selector=ls)
            for api_version, kind, ns, fs, ls in WATCHED
        ]
        self.subscribers: set[asyncio.Queue[str]] = set()
        for inf in self.informers:
            inf.add_handlers(
                on_add=lambda o: self._send("put", o),
                on_update=lambda _old, o: self._send("put", o),
                on_delete=lambda o: self._send("delete", o),
            )

    async def start(self) -> None:
        for inf in self.informers:
            inf.start()
        await asyncio.gather(*(inf.wait_for_sync() for inf in self.informers))

    async def stop(self) -> None:
        for inf in self.informers:
            await inf.stop()

    def snapshot(self) -> list[dict[str, Any]]:
        return [slim(o) for inf in self.informers for o in inf.store.list()]

    def _send(self, op: str, obj: dict[str, Any]) -> None:
        message = json.dumps({"op": op, "object": slim(obj)})
        for q in self.subscribers:
            q.put_nowait(message)

    async def stream(self) -> AsyncIterator[bytes]:
        q: asyncio.Queue[str] = asyncio.Queue()
        self.subscribers.add(q)
        try:
            yield f"event: snapshot\ndata: {json.dumps(self.snapshot())}\n\n".encode()
            while True:
                try:
                    message = await asyncio.wait_for(q.get(), timeout=15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield f"event: change\ndata: {message}\n\n".encode()
        finally:
            self.subscribers.discard(q)

    async def loop(self, action: str, seconds: float | None) -> dict[str, Any]:
        """Apply a button press to the loop-control ConfigMap (created if absent)."""
        try:
            cm = await self.client.get("v1", "ConfigMap", LOOP_NAMESPACE, LOOP_CONFIGMAP)
        except NotFound:
            data = loop_patch(action, seconds, {})
            body = {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
                    "metadata": {"name": LOOP_CONFIGMAP, "namespace": LOOP_NAMESPACE}}  # fmt: skip
            return await self.client.create(body)
        cm.setdefault("apiVersion", "v1")
        cm.setdefault("kind", "ConfigMap")
        cm["data"] = loop_patch(action, seconds, cm.get("data") or {})
        return await self.client.update(cm)


def make_app(hub: Hub) -> Any:
    """The Starlette app: the static page, the event stream and the loop buttons."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def index(_: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def stream(_: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(hub.stream(), media_type="text/event-stream", headers=headers)

    async def loop(request: Request) -> Response:
        try:
            body = await request.json()
            seconds = None if body.get("seconds") is None else float(body["seconds"])
            cm = await hub.loop(str(body.get("action")), seconds)
        except (ValueError, TypeError, AttributeError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)
        except ApiError as e:
            return JSONResponse({"error": str(e)}, status_code=502)
        return JSONResponse(cm.get("data") or {})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/stream", stream),
            Route("/api/loop", loop, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC)),
        ]
    )


async def serve(kubeconfig: str | None, host: str, port: int) -> None:
    import uvicorn

    client = Client(load_config(kubeconfig), user_agent="skiff-dashboard", timeout=10)
    hub = Hub(client)
    try:
        # One plain request first: an unreachable or refusing apiserver is one line, not
        # a page that never fills.
        await client.list("v1", "Node", limit=1)
        await hub.start()
        config = uvicorn.Config(make_app(hub), host=host, port=port, log_level="warning")
        server = uvicorn.Server(config)
        print(f"skiff dashboard: http://{host}:{port}/", flush=True)
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(
                f"skiff dashboard: listening on {host}: whoever reaches it acts with this "
                "kubeconfig's rights (pause, step, slow); 127.0.0.1 and `ssh -L` are safer",
                file=sys.stderr,
                flush=True,
            )
        await server.serve()
    finally:
        await hub.stop()
        await client.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="skiff dashboard", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument("--address", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8001, help="listen port (default 8001)")
    args = p.parse_args(argv)
    try:
        asyncio.run(serve(args.kubeconfig, args.address, args.port))
    except ConfigError as e:
        print(f"skiff dashboard: {e}", file=sys.stderr)
        return 1
    except ApiError as e:
        print(f"skiff dashboard: the apiserver refused: {e}", file=sys.stderr)
        return 1
    except httpx.HTTPError as e:
        print(f"skiff dashboard: cannot reach the apiserver: {e!r}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
