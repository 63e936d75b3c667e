"""Loop control: slow motion, pause and step for every loop, stored in the API.

One ConfigMap, `kube-system/skiff-loop-control`, that every component
watches with an informer (see docs/architecture.md, "Loop control"). Before
each action a loop calls `gate`: it sleeps the `slow` delay once per
reconcile, and while paused waits for a step. A step is taken by raising
`granted` under the ConfigMap's resourceVersion, so when several loops wait
only one of them wins each step: `skiff loop step` lets exactly one action
through. Only the worker that waits is held: informers, queues and lease
renewals run in their own tasks and carry on.
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

from . import errors
from .informer import Informer
from .rest import Client

NAMESPACE = "kube-system"
NAME = "skiff-loop-control"


def parse_duration(text: str) -> float:
    """`2s`, `500ms`, `1m`, `1.5` (seconds) -> seconds; bad text is 0."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", text or "")
    if not m:
        return 0.0
    value = float(m.group(1))
    return {"ms": value / 1000, "m": value * 60}.get(m.group(2) or "s", value)


def applies(data: dict[str, str], component: str, controller: str) -> bool:
    """Whether the control covers this loop: `only` names components or controllers."""
    only = [n.strip() for n in (data.get("only") or "").split(",") if n.strip()]
    if not only:
        return True
    names = {component, controller, controller.removesuffix("-controller")}
    names |= {component.split("-")[0]}  # kubelet-node1 -> kubelet
    return any(n in names for n in only)


class LoopControl:
    def __init__(self, client: Client, component: str) -> None:
        self.client = client
        self.component = component
        self.informer = Informer(
            client, "v1", "ConfigMap", namespace=NAMESPACE, field_selector=f"metadata.name={NAME}"
        )
        self._changed = asyncio.Event()
        self.informer.add_handlers(
            on_add=lambda _o: self._changed.set(),
            on_update=lambda _o, _n: self._changed.set(),
            on_delete=lambda _o: self._changed.set(),
        )
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self.informer.start()

    async def stop(self) -> None:
        if self._started:
            await self.informer.stop()

    def data(self) -> dict[str, str]:
        cm = self.informer.store.get(f"{NAMESPACE}/{NAME}")
        return dict((cm or {}).get("data") or {})

    def slow_for(self, controller: str) -> float:
        data = self.data()
        if not applies(data, self.component, controller):
            return 0.0
        return parse_duration(data.get("slow", "0s"))

    async def gate(self, controller: str, text: str) -> None:
        """Return when this action may go: at once, or after a step or a resume."""
        while True:
            data = self.data()
            if data.get("mode") != "pause" or not applies(data, self.component, controller):
                return
            if int(data.get("steps") or 0) > int(data.get("granted") or 0):
                if await self._take_step(controller, text):
                    return
                continue
            self._changed.clear()
            if self.data() == data:
                await self._changed.wait()

    async def _take_step(self, controller: str, text: str) -> bool:
        cm = self.informer.store.get(f"{NAMESPACE}/{NAME}")
        if cm is None:
            return False
        cm = copy.deepcopy(cm)
        data = cm.setdefault("data", {})
        data["granted"] = str(int(data.get("granted") or 0) + 1)
        data["lastStep"] = f"{self.component}/{controller}: {text}"
        try:
            # The resourceVersion guards it: of several loops, one wins each step.
            await self.client.update(cm)
        except errors.Conflict:
            await asyncio.sleep(0.05)  # another loop took it; our cache will catch up
            return False
        except errors.ApiError:
            await asyncio.sleep(0.5)
            return False
        return True


def control_body(data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "data": data,
    }
