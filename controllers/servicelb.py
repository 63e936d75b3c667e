"""ServiceLB controller: a LoadBalancer Service gets the nodes' addresses as its ingress.

Without a cloud, Kubernetes leaves `EXTERNAL-IP` at `<pending>` forever (the
most common lab complaint). k3s's ServiceLB answers instead with the
addresses of the nodes, and so does skiff: every Ready node's ExternalIP (or
its InternalIP when it has none) goes into `status.loadBalancer.ingress`,
and each node's proxy answers on those addresses at the Service's port (the
"loadbalancer IP" rules of proxy/rules.py). A Service that names a
`loadBalancerClass` belongs to someone else's load balancer and is left
alone, as k3s leaves it; one that stops being a LoadBalancer loses its
ingress.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from api.meta import namespaced_key
from client import errors
from client.controller import Context, Controller, Result


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    unschedulable = (node.get("spec") or {}).get("unschedulable", False)
    return ready is not None and ready.get("status") == "True" and not unschedulable


def node_address(node: dict[str, Any]) -> str | None:
    """ExternalIP first, else InternalIP, as k3s's ServiceLB picks (IPv4 only)."""
    addresses = (node.get("status") or {}).get("addresses") or []
    for kind in ("ExternalIP", "InternalIP"):
        for a in addresses:
            if a.get("type") == kind:
                try:
                    if ipaddress.ip_address(a.get("address", "")).version == 4:
                        return str(a["address"])
                except ValueError:
                    continue
    return None


def decide(service: dict[str, Any], nodes: list[dict[str, Any]]) -> list[dict[str, str]] | None:
    """The `status.loadBalancer.ingress` the Service should have, or None when it is
    not ours to set. Pure; sorted, so that the same nodes always give the same list."""
    spec = service.get("spec") or {}
    if spec.get("loadBalancerClass"):
        return None
    if spec.get("type") != "LoadBalancer":
        return []
    ips = {ip for n in nodes if _ready(n) and (ip := node_address(n))}
    return [{"ip": ip} for ip in sorted(ips, key=ipaddress.ip_address)]


class ServiceLBController(Controller):
    name = "servicelb-controller"
    workers = 1

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.services = ctx.informers.get("v1", "Service")
        self.nodes = ctx.informers.get("v1", "Node")
        self.services.add_handlers(
            on_add=lambda s: self.enqueue(namespaced_key(s)),
            on_update=lambda _o, s: self.enqueue(namespaced_key(s)),
        )
        self.nodes.add_handlers(
            on_add=lambda _n: self._all(),
            on_update=lambda o, n: self._all() if self._differs(o, n) else None,
            on_delete=lambda _n: self._all(),
        )

    @staticmethod
    def _differs(old: dict[str, Any], new: dict[str, Any]) -> bool:
        return (_ready(old), node_address(old)) != (_ready(new), node_address(new))

    def _all(self) -> None:
        for s in self.services.store.list():
            if (s.get("spec") or {}).get("type") == "LoadBalancer":
                self.enqueue(namespaced_key(s))

    async def reconcile(self, key: str) -> Result:
        svc = self.services.store.get(key)
        if svc is None:
            return Result.done()
        ingress = decide(svc, self.nodes.store.list())
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if ingress is None or ingress == current:
            return Result.done()
        updated = {**svc, "status": {**(svc.get("status") or {}), "loadBalancer": {}}}
        if ingress:
            updated["status"]["loadBalancer"] = {"ingress": ingress}
        try:
            await self.ctx.client.update_status(updated)
        except errors.NotFound:
            return Result.done()
        if ingress:
            ips = ", ".join(i["ip"] for i in ingress)
            await self.ctx.recorder.event(
                svc, "Normal", "UpdatedLoadBalancer", f"Updated LoadBalancer with new IPs: {ips}"
            )
        return Result.done()
