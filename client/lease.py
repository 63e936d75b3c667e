"""Writing coordination.k8s.io/v1 Leases: node heartbeats and leader election.

A Lease is a tiny object that one holder renews; others read its renewTime to
decide whether the holder is alive. The kubelet renews `kube-node-lease/<node>`
(the node-lifecycle controller reads it), and leader election renews a Lease
that only one candidate may hold. Both build the Lease's spec the same way,
with `held_spec`; every write is guarded by resourceVersion, so a concurrent
writer makes ours fail with a Conflict instead of being overwritten.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from api.meta import now_micro

from . import errors
from .rest import Client

API_VERSION = "coordination.k8s.io/v1"
KIND = "Lease"
CONFLICT_RETRIES = 5  # as the kubelet's lease controller retries an update

log = logging.getLogger("skiff.lease")


def held_spec(
    current: dict[str, Any] | None, *, holder: str, duration_seconds: int, renew_time: str
) -> dict[str, Any]:
    """The Lease spec once `holder` has renewed (or taken) it at `renew_time`.

    A change of holder sets acquireTime and counts one more leaseTransition,
    as client-go does; a renewal by the same holder moves renewTime only.
    Pure: the caller chooses the time (MicroTime, e.g. `api.meta.now_micro()`).
    """
    current = current or {}
    spec = {
        **current,
        "holderIdentity": holder,
        "leaseDurationSeconds": int(duration_seconds),
        "renewTime": renew_time,
    }
    if not current:
        spec["acquireTime"] = renew_time
        spec["leaseTransitions"] = 0
    elif (current.get("holderIdentity") or "") != holder:
        spec["acquireTime"] = renew_time
        spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
    return spec


def new_lease(
    *,
    namespace: str,
    name: str,
    spec: dict[str, Any],
    owner_references: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Lease object to create."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner_references:
        meta["ownerReferences"] = owner_references
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}


async def get_lease(client: Client, namespace: str, name: str) -> dict[str, Any] | None:
    """The stored Lease, or None when there is none."""
    try:
        return await client.get(API_VERSION, KIND, namespace, name)
    except errors.NotFound:
        return None


async def renew_lease(
    client: Client,
    *,
    namespace: str,
    name: str,
    holder: str,
    duration_seconds: int,
    owner_references: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Create the Lease if absent, else set its holder and renewTime; the stored Lease.

    For a heartbeat (the kubelet's node Lease): whoever held it before, the
    caller holds it after. A write that races another (Conflict, or a create
    that finds the Lease made meanwhile) is retried from a fresh read.
    `owner_references` are set on create, and added when the stored Lease
    lacks them (the kubelet makes its Node the owner, so the Lease goes with it).
    """
    last: Exception | None = None
    for attempt in range(CONFLICT_RETRIES):
        if attempt:
            await asyncio.sleep(0.05 * attempt)
        lease = await get_lease(client, namespace, name)
        spec = held_spec(
            (lease or {}).get("spec"),
            holder=holder,
            duration_seconds=duration_seconds,
            renew_time=now_micro(),
        )
        try:
            if lease is None:
                return await client.create(
                    new_lease(
                        namespace=namespace,
                        name=name,
                        spec=spec,
                        owner_references=owner_references,
                    )
                )
            lease = {**lease, "spec": spec}
            if owner_references and not lease["metadata"].get("ownerReferences"):
                lease["metadata"] = {**lease["metadata"], "ownerReferences": owner_references}
            return await client.update(lease)
        except errors.Conflict as e:  # AlreadyExists is a Conflict too
            log.debug("renewing Lease %s/%s raced another writer: %s", namespace, name, e)
            last = e
    assert last is not None
    raise last
