"""The `kubernetes` Service's Endpoints and EndpointSlice: every live apiserver.

The `kubernetes` Service has no selector; the apiservers say where they are,
as kube-apiserver's "lease" endpoint reconciler does
(pkg/controlplane/reconcilers/lease.go):

- each apiserver keeps a key `/registry/masterleases/<its advertise address>`
  in etcd, attached to an etcd lease of `LEASE_TTL` (15 s) that it renews
  every `INTERVAL` (10 s): while the apiserver lives, so does its key; once
  it dies without a word (SIGKILL, power off), etcd deletes the key when the
  lease runs out;
- every apiserver writes the Endpoints `default/kubernetes` (and the
  EndpointSlice of the same name) to the sorted set of addresses with a live
  key, on its own secure port (all apiservers of a cluster serve on one port,
  as in Kubernetes);
- on a graceful stop an apiserver revokes its lease (its key goes at once)
  and writes the Endpoints without itself, so clients stop being sent to it
  before it is gone.

Besides the 10 s tick each apiserver watches the lease keys, so a key that
comes or goes (another apiserver starting, stopping, or its lease expiring)
is reflected in the Endpoints without waiting for the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aetcd import rpc

from api import resources

from . import errors
from .registry import Registry, WriteOptions
from .storage import Store

log = logging.getLogger("skiff.apiserver.endpoints")

LEASE_PREFIX = "/registry/masterleases/"
LEASE_TTL = 15  # seconds: kube-apiserver's masterleases TTL
INTERVAL = 10.0  # seconds: how often kube-apiserver renews it and reconciles
NAME = "kubernetes"
NAMESPACE = "default"


def live_addresses(keys: list[str]) -> list[str]:
    """The addresses named by lease keys, sorted as IPs (not as strings), valid ones only."""
    found = set()
    for key in keys:
        name = key.removeprefix(LEASE_PREFIX)
        with contextlib.suppress(ValueError):
            found.add(ipaddress.ip_address(name))
    return [str(ip) for ip in sorted(found, key=lambda ip: (ip.version, ip))]


def desired_endpoints(addresses: list[str], port: int) -> dict[str, Any]:
    """The Endpoints `default/kubernetes` for these apiservers (no subsets when none)."""
    subsets = []
    if addresses:
        subsets = [
            {
                "addresses": [{"ip": ip} for ip in addresses],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "subsets": subsets,
    }


def desired_slice(addresses: list[str], port: int) -> dict[str, Any]:
    """The EndpointSlice `default/kubernetes` for these apiservers."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in addresses],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }


def decide(current: dict[str, Any] | None, desired: dict[str, Any], fields: tuple[str, ...]) -> str:
    """What to do with one object: "create", "update" or "keep" (its `fields` match)."""
    if current is None:
        return "create"
    if all(current.get(f) == desired.get(f) for f in fields):
        labels = (current.get("metadata") or {}).get("labels") or {}
        wanted = desired["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in wanted.items()):
            return "keep"
    return "update"


def one_line(e: BaseException) -> str:
    """An etcd error as one log line (gRPC's own repr spans several)."""
    if isinstance(e, rpc.AioRpcError):
        return f"etcd: {e.code().name}: {e.details()}"
    return str(e) or type(e).__name__


ENDPOINTS_FIELDS = ("subsets",)
SLICE_FIELDS = ("addressType", "endpoints", "ports")


class EndpointReconciler:
    """One apiserver's lease and its share of keeping `default/kubernetes` true.

    Run it once per apiserver instance (one advertise address), not once per
    worker process: the lease key is per address, and several writers of one
    address would only repeat each other."""

    def __init__(self, store: Store, registry: Registry, address: str, port: int) -> None:
        self.store = store
        self.registry = registry
        self.address = address
        self.port = port
        self.key = (LEASE_PREFIX + address).encode()
        self.lease_id = 0
        self._changed = asyncio.Event()

    # -- the lease -------------------------------------------------------------

    def _client(self) -> Any:
        client = self.store.client  # replaced when the apiserver reconnects to etcd
        if client is None or client.kvstub is None or client.leasestub is None:
            raise ConnectionError("not connected to etcd")
        return client

    async def _refresh(self) -> bool:
        """Renew the lease; False when etcd no longer knows it (expired meanwhile)."""
        client = self._client()

        async def one() -> AsyncIterator[Any]:
            yield rpc.LeaseKeepAliveRequest(ID=self.lease_id)

        async for reply in client.leasestub.LeaseKeepAlive(one(), timeout=5):
            return int(reply.TTL) > 0
        return False

    async def update_lease(self) -> None:
        """Keep this apiserver's key alive (a new lease when the old one ran out)."""
        client = self._client()
        if not self.lease_id or not await self._refresh():
            grant = await client.leasestub.LeaseGrant(
                rpc.LeaseGrantRequest(TTL=LEASE_TTL), timeout=5
            )
            self.lease_id = int(grant.ID)
        value = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": self.address},
            "subsets": [{"addresses": [{"ip": self.address}]}],
        }
        # Put every tick, also when renewed: the key may have been deleted by hand.
        await client.kvstub.Put(
            rpc.PutRequest(key=self.key, value=json.dumps(value).encode(), lease=self.lease_id),
            timeout=5,
        )

    async def remove_lease(self) -> None:
        """Revoke the lease: etcd deletes this apiserver's key with it, at once."""
        client = self._client()
        if self.lease_id:
            with contextlib.suppress(rpc.AioRpcError):  # already expired
                await client.leasestub.LeaseRevoke(
                    rpc.LeaseRevokeRequest(ID=self.lease_id), timeout=5
                )
            self.lease_id = 0
        await client.kvstub.DeleteRange(rpc.DeleteRangeRequest(key=self.key), timeout=5)

    async def live(self) -> tuple[list[str], int]:
        """(addresses with a live lease, the etcd revision they were read at)."""
        page = await self.store.list(LEASE_PREFIX)
        return live_addresses([s.obj["metadata"]["name"] for s in page.items]), page.revision

    # -- the objects -------------------------------------------------------------

    async def _write(self, plural: str, group: str, desired: dict, fields: tuple[str, ...]) -> None:
        info = resources.lookup(group, "v1", plural)
        assert info is not None
        try:
            current: dict | None = (await self.registry.get(info, NAMESPACE, NAME)).obj
        except errors.ApiError as e:
            if e.code != 404:
                raise
            current = None
        action = decide(current, desired, fields)
        if action == "create":
            try:
                await self.registry.create(info, NAMESPACE, desired, WriteOptions())
                return
            except errors.ApiError as e:
                if e.code != 409:
                    raise
                # another apiserver created it meanwhile: update it below
        elif action == "keep":
            return

        def compute(cur: dict) -> dict:
            meta = cur.get("metadata") or {}
            labels = {**(meta.get("labels") or {}), **(desired["metadata"].get("labels") or {})}
            out = {**cur, **{f: desired[f] for f in fields}}
            out["metadata"] = {**meta, "labels": labels} if labels else meta
            return out

        await self.registry.update(info, NAMESPACE, NAME, compute, WriteOptions())

    async def reconcile(self, addresses: list[str]) -> None:
        await self._write(
            "endpoints", "", desired_endpoints(addresses, self.port), ENDPOINTS_FIELDS
        )
        await self._write(
            "endpointslices", "discovery.k8s.io", desired_slice(addresses, self.port), SLICE_FIELDS
        )

    async def tick(self) -> None:
        """Renew the lease, then write the Endpoints for every live apiserver (this one
        included even if its key was read a moment too early)."""
        await self.update_lease()
        addresses, _ = await self.live()
        if self.address not in addresses:
            addresses = live_addresses([*addresses, self.address])
        await self.reconcile(addresses)

    async def start(self) -> None:
        """The first tick, before the apiserver serves: the Endpoints name it from the start."""
        await self.tick()

    async def run(self) -> None:
        """Tick every INTERVAL and whenever a lease key changes; on cancellation (the
        apiserver stopping gracefully) remove this apiserver from the Endpoints."""
        watcher = asyncio.create_task(self._watch(), name="masterleases watch")
        try:
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), INTERVAL)
                self._changed.clear()  # before reading: a change after it sets it again
                try:
                    await self.tick()
                except Exception as e:  # etcd away: the next tick tries again
                    log.warning("kubernetes endpoints: %s", one_line(e))
                    await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            try:
                await asyncio.wait_for(self.leave(), 5.0)
            except Exception as e:
                log.warning("removing this apiserver from the kubernetes endpoints: %s",
                            one_line(e))  # fmt: skip
            raise

    async def leave(self) -> None:
        """Graceful stop: the lease revoked, the Endpoints written without this apiserver."""
        await self.remove_lease()
        addresses, _ = await self.live()
        await self.reconcile([a for a in addresses if a != self.address])
        log.info("removed %s from the kubernetes endpoints", self.address)

    async def _watch(self) -> None:
        """Set `_changed` when a lease key is created or deleted. Not on renewals: each
        apiserver's tick re-puts its key, and reacting to those would have the
        apiservers wake each other in an endless round."""
        while True:
            try:
                revision = await self.store.revision()
                async for event in self.store.watch(LEASE_PREFIX, revision + 1):
                    if event.type == rpc.Event.DELETE or event.kv.version == 1:
                        self._changed.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # etcd away or compacted: watch again from now
                self._changed.set()
                await asyncio.sleep(1.0)
