"""Endpoints and EndpointSlice controller: which pod addresses stand behind each Service.

For a Service with a selector, the pods it selects that have an IP become
its endpoints: ready pods as addresses, the others as not-ready addresses
(unless `publishNotReadyAddresses`). Named target ports are resolved per
pod, because two pods may call the same port name by different numbers.
The same facts are also written as one EndpointSlice per Service, where a
pod being deleted stays listed with `terminating: true` (and `ready: false`)
so that proxies can drain it.
"""

from __future__ import annotations

from typing import Any

from api.meta import namespaced_key, owner_reference
from api.pods import is_ready
from api.selectors import selector_from_dict
from client import errors
from client.controller import Context, Controller, Result

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"


def _port_number(pod: dict[str, Any], target: Any) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return int(p["containerPort"])
    return None


def _ports_for(service: dict[str, Any], pod: dict[str, Any]) -> list[dict[str, Any]]:
    ports = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = _port_number(pod, sp.get("targetPort", sp.get("port")))
        if number is None:
            continue
        port = {"port": number, "protocol": sp.get("protocol", "TCP")}
        if sp.get("name"):
            port["name"] = sp["name"]
        ports.append(port)
    return ports


def _target_ref(pod: dict[str, Any]) -> dict[str, Any]:
    meta = pod["metadata"]
    return {
        "kind": "Pod",
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta.get("uid", ""),
    }


def _dns_hostname(service: dict[str, Any], pod: dict[str, Any]) -> str:
    """A pod with `hostname` and a `subdomain` naming this Service is reachable in DNS
    as <hostname>.<service>.<ns>.svc..., so its endpoint carries the hostname."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == service["metadata"]["name"]:
        return str(spec["hostname"])
    return ""


def decide_endpoints(service: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Endpoints `subsets`: addresses grouped by the port set they serve."""
    spec = service.get("spec") or {}
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[str, dict[str, Any]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or pod["metadata"].get("deletionTimestamp"):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        ports = _ports_for(service, pod)
        key = repr(sorted((p.get("name", ""), p["port"], p["protocol"]) for p in ports))
        subset = groups.setdefault(key, {"addresses": [], "notReadyAddresses": [], "ports": ports})
        address: dict[str, Any] = {"ip": ip, "targetRef": _target_ref(pod)}
        if (pod.get("spec") or {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        bucket = "addresses" if is_ready(pod) or publish_all else "notReadyAddresses"
        subset[bucket].append(address)
    subsets = []
    for subset in groups.values():
        cleaned = {k: v for k, v in subset.items() if v}
        if cleaned.get("addresses") or cleaned.get("notReadyAddresses"):
            subsets.append(cleaned)
    return subsets


def decide_slice_endpoints(
    service: dict[str, Any], pods: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(endpoints, ports) of the Service's EndpointSlice, terminating pods included."""
    endpoints, ports = [], []
    publish_all = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        serving = is_ready(pod) or publish_all
        endpoint: dict[str, Any] = {
            "addresses": [ip],
            "conditions": {
                "ready": serving and not terminating,
                "serving": serving,
                "terminating": terminating,
            },
            "targetRef": _target_ref(pod),
        }
        if (pod.get("spec") or {}).get("nodeName"):
            endpoint["nodeName"] = pod["spec"]["nodeName"]
        hostname = _dns_hostname(service, pod)
        if hostname:
            endpoint["hostname"] = hostname
        endpoints.append(endpoint)
        ports = ports or _ports_for(service, pod)
    return endpoints, ports


class EndpointsController(Controller):
    name = "endpoints-controller"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.services = ctx.informers.get("v1", "Service")
        self.pods = ctx.informers.get("v1", "Pod")
        self.endpoints = ctx.informers.get("v1", "Endpoints")
        self.slices = ctx.informers.get("discovery.k8s.io/v1", "EndpointSlice")
        self.services.add_handlers(
            on_add=lambda s: self.enqueue(namespaced_key(s)),
            on_update=lambda _o, s: self.enqueue(namespaced_key(s)),
            on_delete=lambda s: self.enqueue(namespaced_key(s)),
        )
        self.pods.add_handlers(
            on_add=self._pod,
            on_update=lambda o, p: (self._pod(o), self._pod(p)),
            on_delete=self._pod,
        )

    def _pod(self, pod: dict[str, Any]) -> None:
        labels = pod["metadata"].get("labels") or {}
        for svc in self.services.store.by_index("namespace", pod["metadata"]["namespace"]):
            selector = (svc.get("spec") or {}).get("selector")
            if selector and selector_from_dict({"matchLabels": selector}).matches(labels):
                self.enqueue(namespaced_key(svc))

    async def reconcile(self, key: str) -> Result:
        ns, _, name = key.partition("/")
        svc = self.services.store.get(key)
        api = self.ctx.client
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            if svc is None:  # Service gone: its endpoints go too (slices by owner GC)
                try:
                    await api.delete("v1", "Endpoints", ns, name)
                except errors.NotFound:
                    pass
            return Result.done()
        selector = selector_from_dict({"matchLabels": svc["spec"]["selector"]})
        pods = [
            p
            for p in self.pods.store.by_index("namespace", ns)
            if selector.matches(p["metadata"].get("labels") or {})
        ]
        await self._write_endpoints(svc, decide_endpoints(svc, pods))
        await self._write_slice(svc, *decide_slice_endpoints(svc, pods))
        return Result.done()

    async def _write_endpoints(self, svc: dict[str, Any], subsets: list[dict[str, Any]]) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        current = self.endpoints.store.get(f"{ns}/{name}")
        labels = dict(svc["metadata"].get("labels") or {})
        if current is None:
            body = {
                "apiVersion": "v1",
                "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "subsets": subsets,
            }
            try:
                await self.ctx.client.create(body)
            except errors.AlreadyExists:
                self.enqueue(f"{ns}/{name}")  # cache was behind: try again with it
            return
        if (current.get("subsets") or []) != subsets:
            updated = {**current, "subsets": subsets}
            await self.ctx.client.update(updated)

    async def _write_slice(
        self, svc: dict[str, Any], endpoints: list[dict[str, Any]], ports: list[dict[str, Any]]
    ) -> None:
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        mine = [
            s
            for s in self.slices.store.by_index("namespace", ns)
            if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
        ]
        body_fields = {"addressType": "IPv4", "endpoints": endpoints, "ports": ports}
        if not mine:
            # Named after the Service: a second create, from a cache that has not seen
            # the first yet, fails with AlreadyExists instead of making a duplicate slice.
            await self._create_slice(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY: CONTROLLER_NAME},
                        "ownerReferences": [owner_reference(svc)],
                    },
                    **body_fields,
                }
            )
            return
        current = mine[0]
        if any(current.get(k) != v for k, v in body_fields.items()):
            await self.ctx.client.update({**current, **body_fields})

    async def _create_slice(self, body: dict[str, Any]) -> None:
        try:
            await self.ctx.client.create(body)
        except errors.AlreadyExists:
            # The cache is behind: the slice exists. Reconcile again once it shows.
            meta = body["metadata"]
            self.queue.add_after(f"{meta['namespace']}/{meta['name']}", 0.5)
