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

from dataclasses import dataclass, field
from typing import Any

from api.meta import namespaced_key, owner_reference
from api.pods import is_ready
from api.selectors import selector_from_dict
from client import errors
from client.actions import Handler, Step
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


@dataclass(frozen=True)
class CreateEndpoints:
    subsets: list[dict[str, Any]] = field(hash=False)


@dataclass(frozen=True)
class UpdateEndpoints:
    subsets: list[dict[str, Any]] = field(hash=False)


@dataclass(frozen=True)
class DeleteEndpoints:
    name: str


@dataclass(frozen=True)
class CreateSlice:
    endpoints: list[dict[str, Any]] = field(hash=False)
    ports: list[dict[str, Any]] = field(hash=False)


@dataclass(frozen=True)
class UpdateSlice:
    name: str
    endpoints: list[dict[str, Any]] = field(hash=False)
    ports: list[dict[str, Any]] = field(hash=False)


Action = CreateEndpoints | UpdateEndpoints | DeleteEndpoints | CreateSlice | UpdateSlice


def decide(
    service: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    endpoints: dict[str, Any] | None,
    slices: list[dict[str, Any]],
    *,
    name: str = "",
) -> list[Action]:
    """Endpoints and the EndpointSlice of a Service, brought in line with its pods.

    `pods` are the pods its selector matches; `endpoints` and `slices` what the
    cache holds for it. A Service that is gone takes its Endpoints along (its
    slice goes by owner reference, through the garbage collector); a Service
    without a selector is left to whoever manages its endpoints by hand.
    """
    if service is None:
        return [DeleteEndpoints(name)] if endpoints is not None else []
    if not (service.get("spec") or {}).get("selector"):
        return []
    actions: list[Action] = []
    subsets = decide_endpoints(service, pods)
    if endpoints is None:
        actions.append(CreateEndpoints(subsets))
    elif (endpoints.get("subsets") or []) != subsets:
        actions.append(UpdateEndpoints(subsets))
    slice_endpoints, ports = decide_slice_endpoints(service, pods)
    fields = {"addressType": "IPv4", "endpoints": slice_endpoints, "ports": ports}
    if not slices:
        actions.append(CreateSlice(slice_endpoints, ports))
    elif any(slices[0].get(k) != v for k, v in fields.items()):
        actions.append(UpdateSlice(slices[0]["metadata"]["name"], slice_endpoints, ports))
    return actions


def _addresses(subsets: list[dict[str, Any]]) -> str:
    ready = [a.get("ip", "") for s in subsets for a in s.get("addresses") or []]
    waiting = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    return f"{len(ready)} ready ({', '.join(ready[:8])}{'…' if len(ready) > 8 else ''})" + (
        f", {waiting} not ready" if waiting else ""
    )


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
        pods: list[dict[str, Any]] = []
        selector_map = ((svc or {}).get("spec") or {}).get("selector")
        if selector_map:
            selector = selector_from_dict({"matchLabels": selector_map})
            pods = [
                p
                for p in self.pods.store.by_index("namespace", ns)
                if selector.matches(p["metadata"].get("labels") or {})
            ]
        mine = [
            s
            for s in self.slices.store.by_index("namespace", ns)
            if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
        ]
        endpoints = self.endpoints.store.get(key)
        actions = decide(svc, pods, endpoints, mine, name=name)
        if actions:
            owner = svc or endpoints
            await self.apply(
                actions,
                owner,
                decide=decide,
                observed=f"{len(pods)} pods match the selector" if svc else "Service gone",
                wanted=f"endpoints: {_addresses(decide_endpoints(svc, pods))}" if svc else "none",
            )
        return Result.done()

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            CreateEndpoints: self._create_endpoints,
            UpdateEndpoints: self._update_endpoints,
            DeleteEndpoints: self._delete_endpoints,
            CreateSlice: self._create_slice,
            UpdateSlice: self._update_slice,
        }

    async def _create_endpoints(self, action: CreateEndpoints, step: Step) -> None:
        svc = step.owner or {}
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        body = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": dict(svc["metadata"].get("labels") or {}),
            },
            "subsets": action.subsets,
        }
        try:
            await step.api.create(body)
        except errors.AlreadyExists:
            step.note = "the cache was behind; trying again with it"
            self.enqueue(f"{ns}/{name}")
            return
        step.event("Normal", "UpdatedEndpoints", f"Endpoints {_addresses(action.subsets)}")

    async def _update_endpoints(self, action: UpdateEndpoints, step: Step) -> None:
        svc = step.owner or {}
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        current = self.endpoints.store.get(f"{ns}/{name}")
        if current is None:
            return
        await step.api.update({**current, "subsets": action.subsets})
        step.event("Normal", "UpdatedEndpoints", f"Endpoints {_addresses(action.subsets)}")

    async def _delete_endpoints(self, action: DeleteEndpoints, step: Step) -> None:
        owner = step.owner or {}
        try:
            await step.api.delete("v1", "Endpoints", owner["metadata"]["namespace"], action.name)
        except errors.NotFound:
            step.note = "already gone"
            return
        step.event("Normal", "DeletedEndpoints", f"Deleted Endpoints {action.name}: Service gone")

    async def _create_slice(self, action: CreateSlice, step: Step) -> None:
        svc = step.owner or {}
        ns, name = svc["metadata"]["namespace"], svc["metadata"]["name"]
        # Named after the Service: a second create, from a cache that has not seen
        # the first yet, fails with AlreadyExists instead of making a duplicate slice.
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY: CONTROLLER_NAME},
                "ownerReferences": [owner_reference(svc)],
            },
            "addressType": "IPv4",
            "endpoints": action.endpoints,
            "ports": action.ports,
        }
        try:
            await step.api.create(body)
        except errors.AlreadyExists:
            # The cache is behind: the slice exists. Reconcile again once it shows.
            step.note = "the cache was behind; trying again with it"
            self.queue.add_after(f"{ns}/{name}", 0.5)
            return
        step.event(
            "Normal",
            "UpdatedEndpointSlice",
            f"EndpointSlice {name}: {len(action.endpoints)} endpoints",
        )

    async def _update_slice(self, action: UpdateSlice, step: Step) -> None:
        svc = step.owner or {}
        current = self.slices.store.get(f"{svc['metadata']['namespace']}/{action.name}")
        if current is None:
            return
        fields = {"addressType": "IPv4", "endpoints": action.endpoints, "ports": action.ports}
        await step.api.update({**current, **fields})
        step.event(
            "Normal",
            "UpdatedEndpointSlice",
            f"EndpointSlice {action.name}: {len(action.endpoints)} endpoints",
        )
