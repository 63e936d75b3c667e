"""ClusterIPs and NodePorts, each handed out once across every apiserver.

kube-apiserver keeps a bitmap per range in etcd. skiff keeps one key per
allocated value (`/registry/ranges/serviceips/10.96.0.10`) created with the
same `version == 0` guard as any object: two apiservers racing for one IP
cannot both win, and an allocation is visible with `etcdctl get --prefix`.
"""

from __future__ import annotations

import ipaddress
import random

from .storage import Conflict, Store

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
NODE_PORT_RANGE = (30000, 32767)


class RangeFull(Exception):
    pass


class AlreadyAllocated(Exception):
    pass


class ServiceIPs:
    def __init__(self, store: Store, cidr: str = "10.96.0.0/12") -> None:
        self.store = store
        self.network = ipaddress.ip_network(cidr)

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    @property
    def kubernetes_ip(self) -> str:
        """The first address: the `kubernetes` Service, as Kubernetes reserves it."""
        return str(self.network.network_address + 1)

    @property
    def dns_ip(self) -> str:
        return str(self.network.network_address + 10)

    async def allocate(self, owner: str, ip: str | None = None) -> str:
        if ip:
            result = await self.store.create(IP_PREFIX + ip, {"owner": owner})
            if isinstance(result, Conflict):
                raise AlreadyAllocated(ip)
            return ip
        size = self.network.num_addresses
        # Random probing, as Kubernetes does, keeps two racing allocators apart;
        # the low addresses (.1 kubernetes, .10 DNS) are left for static use.
        for _ in range(64):
            candidate = str(self.network.network_address + random.randrange(16, size - 1))
            result = await self.store.create(IP_PREFIX + candidate, {"owner": owner})
            if not isinstance(result, Conflict):
                return candidate
        raise RangeFull(f"no free ClusterIP in {self.network}")

    async def release(self, ip: str) -> None:
        current = await self.store.get(IP_PREFIX + ip)
        if current is not None:
            await self.store.delete(IP_PREFIX + ip, current.revision)


class NodePorts:
    def __init__(
        self, store: Store, low: int = NODE_PORT_RANGE[0], high: int = NODE_PORT_RANGE[1]
    ) -> None:
        self.store = store
        self.low, self.high = low, high

    def contains(self, port: int) -> bool:
        return self.low <= port <= self.high

    async def allocate(self, owner: str, port: int | None = None) -> int:
        if port:
            result = await self.store.create(PORT_PREFIX + str(port), {"owner": owner})
            if isinstance(result, Conflict):
                raise AlreadyAllocated(str(port))
            return port
        for _ in range(64):
            candidate = random.randint(self.low, self.high)
            result = await self.store.create(PORT_PREFIX + str(candidate), {"owner": owner})
            if not isinstance(result, Conflict):
                return candidate
        raise RangeFull(f"no free NodePort in {self.low}-{self.high}")

    async def release(self, port: int) -> None:
        current = await self.store.get(PORT_PREFIX + str(port))
        if current is not None:
            await self.store.delete(PORT_PREFIX + str(port), current.revision)
