"""`metrics.k8s.io/v1beta1` served by the apiserver itself: what `kubectl top` reads.

In a kubeadm or k3s cluster metrics-server, a separate process behind the
aggregation layer, scrapes every kubelet's `/stats/summary` and serves
NodeMetrics and PodMetrics. skiff does the same work inside the apiserver,
on demand: when asked, it reads each node's summary (at most once per
`FRESH` seconds per node, the rest from a cache), and turns cumulative CPU
time into a rate from two samples of the same counter, as metrics-server
does. When there is no earlier sample to compare with (the first request, or
one long after the last), it takes a second sample `SECOND_SAMPLE_AFTER`
seconds after the first, so `kubectl top` answers at once rather than with
"metrics not available yet". Memory is the working set, as metrics-server
reports it.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api import resources
from api.selectors import parse_label_selector

from . import errors, responses
from .registry import ListOptions, Registry

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
FRESH = 5.0  # seconds a node's sample is reused
SECOND_SAMPLE_AFTER = 1.0  # seconds between the two samples of a first request
STALE = 120.0  # an older sample is not a base for a rate

KubeletGet = Callable[[str, str], Awaitable[Any]]


@dataclass
class Sample:
    taken: float  # time.monotonic() at the apiserver
    wall: datetime.datetime
    node_cpu: int
    node_memory: int
    # (namespace, pod) -> container -> (cpu ns, working set, start time)
    pods: dict[tuple[str, str], dict[str, tuple[int, int, str]]] = field(default_factory=dict)


def parse_summary(summary: dict[str, Any], taken: float) -> Sample:
    node = summary.get("node") or {}
    sample = Sample(
        taken=taken,
        wall=datetime.datetime.now(datetime.UTC),
        node_cpu=int((node.get("cpu") or {}).get("usageCoreNanoSeconds") or 0),
        node_memory=int((node.get("memory") or {}).get("workingSetBytes") or 0),
    )
    for pod in summary.get("pods") or []:
        ref = pod.get("podRef") or {}
        containers = sample.pods.setdefault((ref.get("namespace", ""), ref.get("name", "")), {})
        for c in pod.get("containers") or []:
            containers[c["name"]] = (
                int((c.get("cpu") or {}).get("usageCoreNanoSeconds") or 0),
                int((c.get("memory") or {}).get("workingSetBytes") or 0),
                str(c.get("startTime", "")),
            )
    return sample


def rate(before: int, after: int, seconds: float) -> int | None:
    """Nanocores between two readings of a cumulative CPU counter; None if it went back."""
    if seconds <= 0 or after < before:
        return None
    return int((after - before) / seconds)


def cpu_quantity(nanocores: int) -> str:
    return f"{nanocores}n"


def memory_quantity(size: int) -> str:
    return f"{size // 1024}Ki"


def _time(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(seconds: float) -> str:
    return f"{seconds:.3f}s"


def node_metrics(node: dict[str, Any], old: Sample, new: Sample) -> dict[str, Any] | None:
    cpu = rate(old.node_cpu, new.node_cpu, new.taken - old.taken)
    if cpu is None:
        return None
    meta = node["metadata"]
    return {
        "kind": "NodeMetrics",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {
            "name": meta["name"],
            "creationTimestamp": _time(new.wall),
            "labels": dict(meta.get("labels") or {}),
        },
        "timestamp": _time(new.wall),
        "window": _window(new.taken - old.taken),
        "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(new.node_memory)},
    }


def pod_metrics(pod: dict[str, Any], old: Sample, new: Sample) -> dict[str, Any] | None:
    """A pod's metrics, or None unless every running container has a rate (as
    metrics-server leaves out a pod it cannot measure whole)."""
    meta = pod["metadata"]
    key = (meta.get("namespace", ""), meta["name"])
    now, before = new.pods.get(key), old.pods.get(key)
    if not now or not before:
        return None
    containers = []
    for name, (cpu_now, memory, started) in sorted(now.items()):
        if name not in before or before[name][2] != started:
            return None  # the container restarted between the samples
        cpu = rate(before[name][0], cpu_now, new.taken - old.taken)
        if cpu is None:
            return None
        containers.append(
            {"name": name, "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}}
        )
    return {
        "kind": "PodMetrics",
        "apiVersion": f"{GROUP}/{VERSION}",
        "metadata": {
            "name": meta["name"],
            "namespace": key[0],
            "creationTimestamp": _time(new.wall),
            "labels": dict(meta.get("labels") or {}),
        },
        "timestamp": _time(new.wall),
        "window": _window(new.taken - old.taken),
        "containers": containers,
    }


class MetricsAPI:
    def __init__(self, registry: Registry, kubelet_get: KubeletGet) -> None:
        self.registry = registry
        self.kubelet_get = kubelet_get
        self._samples: dict[str, list[Sample]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def group() -> dict[str, Any]:
        gv = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
        return {"name": GROUP, "versions": [gv], "preferredVersion": gv}

    @staticmethod
    def resource_list() -> dict[str, Any]:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [
                {
                    "name": "nodes",
                    "singularName": "",
                    "namespaced": False,
                    "kind": "NodeMetrics",
                    "verbs": ["get", "list"],
                },
                {
                    "name": "pods",
                    "singularName": "",
                    "namespaced": True,
                    "kind": "PodMetrics",
                    "verbs": ["get", "list"],
                },
            ],
        }

    async def handle(self, request: Request, parts: list[str]) -> Response:
        """`parts` is the path after /apis/metrics.k8s.io."""
        if request.method != "GET":
            raise errors.method_not_allowed(request.method, request.url.path)
        if not parts:
            return responses.send({"kind": "APIGroup", "apiVersion": "v1", **self.group()})
        if parts[0] != VERSION:
            raise errors.path_not_found()
        rest = parts[1:]
        if not rest:
            return responses.send(self.resource_list())
        selector = request.query_params.get("labelSelector", "")
        try:
            labels = parse_label_selector(selector) if selector else None
        except ValueError as e:
            raise errors.bad_request(f"unable to parse requirement: {e}") from e
        if rest[0] == "nodes" and len(rest) <= 2:
            return await self._nodes(rest[1] if len(rest) == 2 else "", labels)
        if rest[0] == "pods" and len(rest) == 1:
            return await self._pods("", "", labels)
        if len(rest) in (3, 4) and rest[0] == "namespaces" and rest[2] == "pods":
            return await self._pods(rest[1], rest[3] if len(rest) == 4 else "", labels)
        raise errors.path_not_found()

    async def _objects(self, plural: str, namespace: str, name: str, labels: Any) -> list[dict]:
        info = resources.lookup("", "v1", plural)
        assert info is not None
        if name:
            return [(await self.registry.get(info, namespace, name)).obj]
        items, *_ = await self.registry.list(info, namespace, ListOptions(labels=labels))
        return items

    async def _nodes(self, name: str, labels: Any) -> Response:
        nodes = await self._objects("nodes", "", name, labels)
        pairs = await asyncio.gather(*(self._pair(n["metadata"]["name"]) for n in nodes))
        items = [
            m
            for n, p in zip(nodes, pairs, strict=True)
            if p and (m := node_metrics(n, *p)) is not None
        ]
        if name:
            if not items:
                raise errors.not_found("nodes", GROUP, name)
            return responses.send(items[0])
        return responses.send(
            {
                "kind": "NodeMetricsList",
                "apiVersion": f"{GROUP}/{VERSION}",
                "metadata": {},
                "items": items,
            }
        )

    async def _pods(self, namespace: str, name: str, labels: Any) -> Response:
        pods = [
            p
            for p in await self._objects("pods", namespace, name, labels)
            if (p.get("spec") or {}).get("nodeName")
        ]
        nodes = sorted({p["spec"]["nodeName"] for p in pods})
        pairs = dict(zip(nodes, await asyncio.gather(*(self._pair(n) for n in nodes)), strict=True))
        items = []
        for pod in pods:
            pair = pairs.get(pod["spec"]["nodeName"])
            if pair and (m := pod_metrics(pod, *pair)) is not None:
                items.append(m)
        if name:
            if not items:
                raise errors.not_found("pods", GROUP, name)
            return responses.send(items[0])
        return responses.send(
            {
                "kind": "PodMetricsList",
                "apiVersion": f"{GROUP}/{VERSION}",
                "metadata": {},
                "items": items,
            }
        )

    async def _pair(self, node: str) -> tuple[Sample, Sample] | None:
        """Two samples of `node` to take rates from, the newer one fresh; None if the
        kubelet cannot be read."""
        lock = self._locks.setdefault(node, asyncio.Lock())
        async with lock:
            samples = self._samples.setdefault(node, [])
            try:
                if not samples or time.monotonic() - samples[-1].taken > FRESH:
                    samples.append(await self._scrape(node))
                if len(samples) < 2 or samples[-1].taken - samples[-2].taken > STALE:
                    await asyncio.sleep(SECOND_SAMPLE_AFTER)
                    samples.append(await self._scrape(node))
            except errors.ApiError:
                return None
            del samples[:-2]
            return (samples[0], samples[1]) if len(samples) == 2 else None

    async def _scrape(self, node: str) -> Sample:
        summary = await self.kubelet_get(node, "/stats/summary")
        return parse_summary(summary, time.monotonic())
