"""Which pod CIDRs are taken: the node IPAM's memory, as Kubernetes' range allocator keeps it.

The informer cache cannot be the memory: a CIDR written to one Node shows up
in the cache only when the watch delivers that write, so a second Node
reconciled before then would see the CIDR as free and get it too (and two
nodes would hand out the same pod addresses). Kubernetes' range allocator
therefore keeps the allocated set itself: rebuilt from every Node's
`spec.podCIDR` once the caches are synced, a CIDR occupied the moment it is
chosen (before the patch is sent) and released when its Node is deleted or
the patch fails. This class is that set; it is pure and does no I/O.
"""

from __future__ import annotations

import ipaddress


class CIDRSet:
    def __init__(self, cluster_cidr: str, mask: int) -> None:
        self.cluster = ipaddress.ip_network(cluster_cidr)
        self.mask = mask
        self._by_node: dict[str, str] = {}

    def occupy(self, node: str, cidr: str) -> None:
        """Record a CIDR a Node already has (start-up, or a Node created with one)."""
        self._by_node[node] = cidr

    def allocate(self, node: str) -> str | None:
        """The CIDR for `node`: the one already chosen for it, else the first free one
        (None when the cluster CIDR is used up)."""
        if node in self._by_node:
            return self._by_node[node]
        taken = set(self._by_node.values())
        for subnet in self.cluster.subnets(new_prefix=self.mask):
            if str(subnet) not in taken:
                self._by_node[node] = str(subnet)
                return str(subnet)
        return None

    def peek(self, node: str) -> str | None:
        """The CIDR `allocate(node)` would give, without taking it."""
        if node in self._by_node:
            return self._by_node[node]
        taken = set(self._by_node.values())
        return next(
            (str(s) for s in self.cluster.subnets(new_prefix=self.mask) if str(s) not in taken),
            None,
        )

    def release(self, node: str) -> str | None:
        """Free the node's CIDR (its Node is gone, or writing the CIDR to it failed)."""
        return self._by_node.pop(node, None)

    def of(self, node: str) -> str | None:
        return self._by_node.get(node)
