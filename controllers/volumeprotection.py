"""The pvc-protection and pv-protection controllers: lift the finalizers the
StorageObjectInUseProtection admission puts on claims and volumes once nothing uses
them, so that deleting a claim under a running pod leaves it Terminating until the pod
is gone, and a volume goes only once no claim is bound to it."""

from __future__ import annotations

import copy
from typing import Any

from api import storage as st
from client import errors
from client.controller import Context, Controller, Result

PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"


def claim_in_use(claim: dict[str, Any], pods: list[dict[str, Any]]) -> bool:
    """A pod on a node that is not finished uses the claim (an unscheduled pod does not:
    the scheduler will not place a pod whose claim is being deleted)."""
    name = claim["metadata"]["name"]
    for pod in pods:
        if not (pod.get("spec") or {}).get("nodeName"):
            continue
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if name in st.claim_names(pod):
            return True
    return False


def volume_in_use(pv: dict[str, Any]) -> bool:
    return (pv.get("status") or {}).get("phase") == "Bound"


def without(obj: dict[str, Any], finalizer: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["finalizers"] = [
        f for f in out["metadata"].get("finalizers") or [] if f != finalizer
    ]
    return out


class VolumeProtectionController(Controller):
    name = "pvc-protection-controller"
    workers = 1

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.claims = ctx.informers.get("v1", "PersistentVolumeClaim")
        self.volumes = ctx.informers.get("v1", "PersistentVolume")
        self.pods = ctx.informers.get("v1", "Pod")

        def claim_key(c: dict[str, Any]) -> None:
            if c["metadata"].get("deletionTimestamp"):
                self.enqueue(f"claim:{c['metadata']['namespace']}/{c['metadata']['name']}")

        def volume_key(v: dict[str, Any]) -> None:
            if v["metadata"].get("deletionTimestamp"):
                self.enqueue(f"volume:{v['metadata']['name']}")

        def pod_gone(p: dict[str, Any]) -> None:
            for name in st.claim_names(p):
                self.enqueue(f"claim:{p['metadata']['namespace']}/{name}")

        self.claims.add_handlers(on_add=claim_key, on_update=lambda _o, n: claim_key(n))
        self.volumes.add_handlers(on_add=volume_key, on_update=lambda _o, n: volume_key(n))
        self.pods.add_handlers(on_update=lambda _o, n: pod_gone(n), on_delete=pod_gone)

    async def reconcile(self, key: str) -> Result:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            obj = self.claims.store.get(rest)
            finalizer = PVC_PROTECTION
            busy = obj is not None and claim_in_use(
                obj, self.pods.store.by_index("namespace", obj["metadata"]["namespace"])
            )
        else:
            obj = self.volumes.store.get(rest)
            finalizer = PV_PROTECTION
            busy = obj is not None and volume_in_use(obj)
        if obj is None or busy or not obj["metadata"].get("deletionTimestamp"):
            return Result.done()
        if finalizer not in (obj["metadata"].get("finalizers") or []):
            return Result.done()
        try:
            await self.ctx.client.update(without(obj, finalizer))
        except errors.NotFound:
            pass
        return Result.done()
