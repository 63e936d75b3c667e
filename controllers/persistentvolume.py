"""The PersistentVolume controller (Kubernetes' "persistentvolume-binder"): binds claims
to volumes and moves volumes through Available, Bound, Released and Failed.

`decide_claim` and `decide_volume` are pure: given one object and what the caches hold,
they say what to write and which Event to record. The shell applies it. Provisioning is
not here: an external provisioner (skiff's runs on each node, kubelet/localpath.py)
watches for the `volume.kubernetes.io/storage-provisioner` annotation this controller
sets, creates a volume pre-bound to the claim, and deletes released volumes whose
reclaim policy is Delete.
"""

from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass, field
from typing import Any

from api import storage as st
from client import errors
from client.controller import Context, Controller, Result

Event = tuple[str, str, str]  # type, reason, message


@dataclass
class ClaimPlan:
    bind_to: str = ""  # volume to bind the claim to (both sides are written)
    by_controller: bool = False  # the controller chose the volume (annotation on both)
    annotations: dict[str, str] = field(default_factory=dict)  # to add to the claim
    phase: str = ""  # claim phase to set when not binding ('' keeps it)
    event: Event | None = None


@dataclass
class VolumePlan:
    phase: str = ""  # '' keeps it
    message: str = ""
    unbind: bool = False  # clear a controller-made claimRef whose claim went elsewhere
    event: Event | None = None


def external_provisioning(provisioner: str) -> str:
    return (
        f"Waiting for a volume to be created either by the external provisioner "
        f"'{provisioner}' or manually by the system administrator. If volume creation is "
        "delayed, please verify that the provisioner is running and correctly registered."
    )


def decide_claim(
    claim: dict[str, Any],
    volumes: list[dict[str, Any]],
    storage_class: dict[str, Any] | None,
    selected_node: dict[str, Any] | None,
) -> ClaimPlan:
    """syncClaim: bind, wait (for a consumer or a provisioner), or say why not."""
    meta, spec = claim["metadata"], claim.get("spec") or {}
    phase = (claim.get("status") or {}).get("phase", "Pending")
    annotations = meta.get("annotations") or {}
    name = spec.get("volumeName", "")
    if name:  # bound, or pre-bound to a volume by name
        pv = next((v for v in volumes if v["metadata"]["name"] == name), None)
        if pv is None:
            if phase == "Bound" or annotations.get(st.BIND_COMPLETED):
                return ClaimPlan(
                    phase="Lost",
                    event=(
                        "Warning",
                        "ClaimLost",
                        "Bound claim has lost reference to PersistentVolume. Data on the "
                        "volume is lost!",
                    ),
                )
            return ClaimPlan(phase="Pending")
        ref = (pv.get("spec") or {}).get("claimRef")
        if not ref:
            why = st.mismatch(pv, claim)
            if why:
                return ClaimPlan(
                    phase="Pending",
                    event=(
                        "Warning",
                        "VolumeMismatch",
                        f'Cannot bind to requested volume "{name}": {why}',
                    ),
                )
            return ClaimPlan(bind_to=name)
        if st.claim_ref_is(pv, claim):
            needs = phase != "Bound" or (pv.get("status") or {}).get("phase") != "Bound"
            return ClaimPlan(bind_to=name if needs or not ref.get("uid") else "")
        if phase == "Bound":
            return ClaimPlan(
                phase="Lost",
                event=(
                    "Warning",
                    "ClaimMisbound",
                    "Two claims are bound to the same volume, this one is bound incorrectly",
                ),
            )
        return ClaimPlan(
            phase="Pending",
            event=(
                "Warning",
                "FailedBinding",
                f'volume "{name}" already bound to a different claim.',
            ),
        )

    class_name = st.claim_class(claim)
    delayed = st.is_delayed(storage_class)
    if delayed and selected_node is None:
        # Only a pre-bound volume may be taken before a consumer is scheduled.
        prebound = [v for v in volumes if (v.get("spec") or {}).get("claimRef")]
        pv = st.find_best_volume(claim, prebound)
        if pv is not None:
            return ClaimPlan(bind_to=pv["metadata"]["name"])
        return ClaimPlan(
            phase="Pending",
            event=(
                "Normal",
                "WaitForFirstConsumer",
                "waiting for first consumer to be created before binding",
            ),
        )
    pv = st.find_best_volume(claim, volumes, selected_node if delayed else None)
    if pv is not None:
        return ClaimPlan(
            bind_to=pv["metadata"]["name"],
            by_controller=not (pv.get("spec") or {}).get("claimRef"),
        )
    if class_name and storage_class is None:
        return ClaimPlan(
            phase="Pending",
            event=(
                "Warning",
                "ProvisioningFailed",
                f'storageclass.storage.k8s.io "{class_name}" not found',
            ),
        )
    provisioner = (storage_class or {}).get("provisioner", "")
    if provisioner and provisioner != st.NO_PROVISIONER:
        return ClaimPlan(
            phase="Pending",
            annotations={
                st.STORAGE_PROVISIONER: provisioner,
                st.BETA_STORAGE_PROVISIONER: provisioner,
            },
            event=("Normal", "ExternalProvisioning", external_provisioning(provisioner)),
        )
    message = (
        "no persistent volumes available for this claim and no storage class is set"
        if not class_name
        else "no persistent volumes available for this claim"
    )
    return ClaimPlan(phase="Pending", event=("Normal", "FailedBinding", message))


def decide_volume(pv: dict[str, Any], claim: dict[str, Any] | None) -> VolumePlan:
    """syncVolume: the phase the volume is in given its claim, and what reclaiming means.

    `claim` is the object its claimRef names (by namespace/name), or None.
    """
    spec, meta = pv.get("spec") or {}, pv["metadata"]
    phase = (pv.get("status") or {}).get("phase", "Pending")
    ref = spec.get("claimRef") or {}
    if not ref:
        return VolumePlan(phase="Available" if phase != "Available" else "")
    if not ref.get("uid"):  # pre-bound by name, the claim not bound yet
        return VolumePlan(phase="Available" if phase != "Available" else "")
    gone = claim is None or claim["metadata"].get("uid") != ref.get("uid")
    if not gone:
        assert claim is not None
        bound_to = (claim.get("spec") or {}).get("volumeName", "")
        if bound_to and bound_to != meta["name"]:
            if (meta.get("annotations") or {}).get(st.BOUND_BY_CONTROLLER):
                return VolumePlan(phase="Available", unbind=True)
            return VolumePlan(phase="Released" if phase != "Released" else "")
        return VolumePlan(phase="Bound" if phase != "Bound" else "")
    if phase in ("Released", "Failed"):
        return VolumePlan()
    policy = spec.get("persistentVolumeReclaimPolicy", "Retain")
    if policy == "Retain":
        return VolumePlan(phase="Released")
    provisioner = (meta.get("annotations") or {}).get(st.PROVISIONED_BY, "")
    if policy == "Delete" and provisioner:
        # Its provisioner deletes it (with the data) once it sees it Released.
        return VolumePlan(phase="Released")
    if policy == "Delete":
        message = (
            f'error getting deleter volume plugin for volume "{meta["name"]}": '
            "no deletable volume plugin matched"
        )
        return VolumePlan(
            phase="Failed", message=message, event=("Warning", "VolumeFailedDelete", message)
        )
    message = "No recycler plugin found for the volume!"
    return VolumePlan(
        phase="Failed", message=message, event=("Warning", "VolumeFailedRecycle", message)
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PersistentVolumeController(Controller):
    """Keys are `claim:<ns>/<name>` and `volume:<name>`; each sync reads the caches."""

    name = "persistentvolume-binder"
    workers = 1  # binding two claims to one volume must not race inside one process

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.claims = ctx.informers.get("v1", "PersistentVolumeClaim")
        self.volumes = ctx.informers.get("v1", "PersistentVolume")
        self.classes = ctx.informers.get("storage.k8s.io/v1", "StorageClass")
        self.nodes = ctx.informers.get("v1", "Node")

        def claim_key(c: dict[str, Any]) -> str:
            return f"claim:{c['metadata']['namespace']}/{c['metadata']['name']}"

        def on_volume(v: dict[str, Any]) -> None:
            self.enqueue(f"volume:{v['metadata']['name']}")
            ref = (v.get("spec") or {}).get("claimRef") or {}
            if ref.get("name"):
                self.enqueue(f"claim:{ref.get('namespace')}/{ref['name']}")

        def on_claim(c: dict[str, Any]) -> None:
            self.enqueue(claim_key(c))
            name = (c.get("spec") or {}).get("volumeName")
            if name:
                self.enqueue(f"volume:{name}")

        def on_claim_deleted(c: dict[str, Any]) -> None:
            for v in self.volumes.store.list():
                if st.claim_ref_is(v, c):
                    self.enqueue(f"volume:{v['metadata']['name']}")

        def on_class(_: dict[str, Any]) -> None:
            for c in self.claims.store.list():
                if not (c.get("spec") or {}).get("volumeName"):
                    self.enqueue(claim_key(c))

        self.claims.add_handlers(
            on_add=on_claim, on_update=lambda _old, new: on_claim(new), on_delete=on_claim_deleted
        )
        self.volumes.add_handlers(
            on_add=on_volume,
            on_update=lambda _old, new: on_volume(new),
            on_delete=lambda v: [
                self.enqueue(claim_key(c))
                for c in self.claims.store.list()
                if (c.get("spec") or {}).get("volumeName") == v["metadata"]["name"]
            ],
        )
        self.classes.add_handlers(on_add=on_class, on_update=lambda _o, n: on_class(n))

    async def reconcile(self, key: str) -> Result:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            await self._sync_claim(rest)
        else:
            await self._sync_volume(rest)
        return Result.done()

    async def _sync_claim(self, key: str) -> None:
        claim = self.claims.store.get(key)
        if claim is None or claim["metadata"].get("deletionTimestamp"):
            return
        class_name = st.claim_class(claim)
        storage_class = self.classes.store.get(class_name) if class_name else None
        node_name = (claim["metadata"].get("annotations") or {}).get(st.SELECTED_NODE)
        node = self.nodes.store.get(node_name) if node_name else None
        if node_name and node is None:
            node = {"metadata": {"name": node_name, "labels": {}}}
        plan = decide_claim(claim, self.volumes.store.list(), storage_class, node)
        if plan.bind_to:
            await self._bind(claim, plan.bind_to, plan.by_controller)
        else:
            await self._update_claim(claim, plan.annotations, plan.phase)
        if plan.event:
            await self.ctx.recorder.event(claim, *plan.event)

    async def _update_claim(
        self, claim: dict[str, Any], annotations: dict[str, str], phase: str
    ) -> None:
        client = self.ctx.client
        have = claim["metadata"].get("annotations") or {}
        if any(have.get(k) != v for k, v in annotations.items()):
            claim = copy.deepcopy(claim)
            claim["metadata"].setdefault("annotations", {}).update(annotations)
            claim = await client.update(claim)
        if phase and (claim.get("status") or {}).get("phase") != phase:
            claim = copy.deepcopy(claim)
            claim["status"] = {"phase": phase}
            await client.update_status(claim)

    async def _bind(self, claim: dict[str, Any], pv_name: str, by_controller: bool) -> None:
        """bind(): volume first (claimRef, phase Bound), then the claim (volumeName, status)."""
        client = self.ctx.client
        pv = copy.deepcopy(self.volumes.store.get(pv_name))
        if pv is None:
            return
        spec, meta = pv.setdefault("spec", {}), pv["metadata"]
        ref = spec.get("claimRef") or {}
        if (
            ref.get("uid") != claim["metadata"].get("uid")
            or ref.get("name") != claim["metadata"]["name"]
        ):
            spec["claimRef"] = st.claim_ref(claim)
            if by_controller:
                meta.setdefault("annotations", {})[st.BOUND_BY_CONTROLLER] = "yes"
            pv = await client.update(pv)
        if (pv.get("status") or {}).get("phase") != "Bound":
            pv["status"] = {"phase": "Bound", "lastPhaseTransitionTime": _now()}
            pv = await client.update_status(pv)
        claim = copy.deepcopy(claim)
        cmeta, cspec = claim["metadata"], claim.setdefault("spec", {})
        annotations = cmeta.setdefault("annotations", {})
        if cspec.get("volumeName") != pv_name or annotations.get(st.BIND_COMPLETED) != "yes":
            cspec["volumeName"] = pv_name
            annotations[st.BIND_COMPLETED] = "yes"
            if by_controller:
                annotations[st.BOUND_BY_CONTROLLER] = "yes"
            claim = await client.update(claim)
        status = {
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes") or []),
            "capacity": dict(spec.get("capacity") or {}),
        }
        if {k: (claim.get("status") or {}).get(k) for k in status} != status:
            claim["status"] = {**(claim.get("status") or {}), **status}
            await client.update_status(claim)

    async def _sync_volume(self, name: str) -> None:
        pv = self.volumes.store.get(name)
        if pv is None:
            return
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        claim = self.claims.store.get(f"{ref.get('namespace')}/{ref.get('name')}") if ref else None
        if ref and claim is None:
            # The cache may lag a fresh claim: ask the server before calling it gone.
            try:
                claim = await self.ctx.client.get(
                    "v1", "PersistentVolumeClaim", ref.get("namespace", ""), ref.get("name", "")
                )
            except errors.NotFound:
                claim = None
        plan = decide_volume(pv, claim)
        client = self.ctx.client
        if plan.unbind:
            pv = copy.deepcopy(pv)
            pv["spec"].pop("claimRef", None)
            pv["metadata"].get("annotations", {}).pop(st.BOUND_BY_CONTROLLER, None)
            pv = await client.update(pv)
        if plan.phase:
            pv = copy.deepcopy(pv)
            pv["status"] = {"phase": plan.phase, "lastPhaseTransitionTime": _now()}
            if plan.message:
                pv["status"]["message"] = plan.message
            await client.update_status(pv)
        if plan.event:
            await self.ctx.recorder.event(pv, *plan.event)
