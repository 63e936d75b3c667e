"""Host-local IPAM: addresses from the node's pod CIDR, remembered on disk.

The bridge takes the first address; pods get the next free ones. The state is
one JSON file guarded by a file lock, so that two runtimes (or a restarted
one) never hand out the same address twice, and an owner asking again gets
the address it already has.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class AddressesExhausted(Exception):
    pass


class HostLocalIPAM:
    def __init__(self, cidr: str, state_dir: Path) -> None:
        self.network = ipaddress.ip_network(cidr)
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.file = state_dir / f"{str(self.network).replace('/', '_')}.json"

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return next(self.network.hosts())  # type: ignore[return-value]

    def _locked(self, change: Callable[[dict[str, str]], T]) -> T:
        with open(self.state_dir / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            owners = json.loads(self.file.read_text()) if self.file.exists() else {}
            result = change(owners)
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps(owners, sort_keys=True))
            os.replace(tmp, self.file)
            return result

    def allocate(self, owner: str) -> ipaddress.IPv4Address:
        def take(owners: dict[str, str]) -> ipaddress.IPv4Address:
            if owner in owners:
                return ipaddress.IPv4Address(owners[owner])
            used = set(owners.values()) | {str(self.gateway)}
            for host in self.network.hosts():
                if str(host) not in used:
                    owners[owner] = str(host)
                    return host  # type: ignore[return-value]
            raise AddressesExhausted(f"no free address left in {self.network}")

        return self._locked(take)

    def release(self, owner: str) -> None:
        self._locked(lambda owners: owners.pop(owner, None))

    def allocations(self) -> dict[str, str]:
        return json.loads(self.file.read_text()) if self.file.exists() else {}
