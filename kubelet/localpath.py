"""The local-path provisioner, run by each node's kubelet for the volumes of that node.

It does what k3s's local-path-provisioner does, without its helper pods: the directory
is made and removed by the node it lives on, so this runs inside the kubelet of that
node rather than in the controller-manager.

- Provision: a claim of a class whose provisioner is `rancher.io/local-path` (or
  `skiff.io/local-path`), that the PV controller has handed to that provisioner (the
  `volume.kubernetes.io/storage-provisioner` annotation) and that the scheduler has
  placed on this node (`volume.kubernetes.io/selected-node`), gets a directory
  `<base>/pvc-<uid>_<namespace>_<name>` and a PersistentVolume `pvc-<uid>` pre-bound to
  it: hostPath on that directory, node affinity to this node, the class's reclaim policy.
- Delete: a volume this provisioner made on this node that is Released with reclaim
  policy Delete loses its directory, then the PersistentVolume object is deleted.
  Retain leaves both; an administrator removes them.
- The default StorageClass `local-path` is created when no class of that name exists,
  as k3s ships it (WaitForFirstConsumer, reclaim Delete, annotated default).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from api import storage as st
from client import errors
from client.controller import Context, Controller, Informers, Result
from client.events import EventRecorder
from client.rest import Client

log = logging.getLogger("skiff.kubelet.localpath")
PROVISIONER = "rancher.io/local-path"
DEFAULT_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {
        "name": "local-path",
        "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
    },
    "provisioner": PROVISIONER,
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer",
}


def volume_dir(base: Path, claim: dict[str, Any]) -> Path:
    meta = claim["metadata"]
    return base / f"pvc-{meta['uid']}_{meta['namespace']}_{meta['name']}"


def wants_volume(
    claim: dict[str, Any], storage_class: dict[str, Any] | None, node_name: str
) -> bool:
    """Whether this node's provisioner is the one to make the claim's volume now."""
    meta, spec = claim["metadata"], claim.get("spec") or {}
    annotations = meta.get("annotations") or {}
    provisioner = annotations.get(st.STORAGE_PROVISIONER) or annotations.get(
        st.BETA_STORAGE_PROVISIONER
    )
    return (
        not meta.get("deletionTimestamp")
        and not spec.get("volumeName")
        and provisioner in st.LOCAL_PATH_PROVISIONERS
        and annotations.get(st.SELECTED_NODE) == node_name
        and storage_class is not None
        and storage_class.get("provisioner") == provisioner
    )


def new_volume(
    claim: dict[str, Any], storage_class: dict[str, Any], path: Path, node_name: str
) -> dict[str, Any]:
    """The PersistentVolume for a claim, pre-bound to it (claimRef with uid)."""
    spec = claim.get("spec") or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": f"pvc-{claim['metadata']['uid']}",
            "annotations": {
                st.PROVISIONED_BY: storage_class["provisioner"],
                "local.path.provisioner/selected-node": node_name,
            },
        },
        "spec": {
            "capacity": {"storage": str(spec["resources"]["requests"]["storage"])},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "claimRef": st.claim_ref(claim),
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node_name],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def to_delete(pv: dict[str, Any], node_name: str, base: Path) -> Path | None:
    """The directory to remove for a Released volume of ours on this node, else None."""
    meta, spec = pv["metadata"], pv.get("spec") or {}
    annotations = meta.get("annotations") or {}
    if annotations.get(st.PROVISIONED_BY) not in st.LOCAL_PATH_PROVISIONERS:
        return None
    if annotations.get("local.path.provisioner/selected-node") != node_name:
        return None
    if (pv.get("status") or {}).get("phase") != "Released":
        return None
    if spec.get("persistentVolumeReclaimPolicy") != "Delete":
        return None
    path = Path(st.volume_path(pv))
    # Only ever a directory this provisioner made, directly under its base.
    if path.parent != base or not path.name.startswith("pvc-"):
        return None
    return path


class LocalPathProvisioner(Controller):
    name = "local-path-provisioner"
    workers = 1

    def __init__(self, client: Client, node_name: str, base: Path) -> None:
        informers = Informers(client)
        super().__init__(
            Context(client, informers, EventRecorder(client, f"{PROVISIONER}_{node_name}"))
        )
        self.node_name, self.base = node_name, Path(base).resolve()
        self.claims = informers.get("v1", "PersistentVolumeClaim")
        self.volumes = informers.get("v1", "PersistentVolume")
        self.classes = informers.get("storage.k8s.io/v1", "StorageClass")
        claim_key = self.enqueuer(
            lambda c: f"claim:{c['metadata']['namespace']}/{c['metadata']['name']}"
        )
        volume_key = self.enqueuer(lambda v: f"volume:{v['metadata']['name']}")
        self.claims.add_handlers(on_add=claim_key, on_update=lambda _o, n: claim_key(n))
        self.volumes.add_handlers(on_add=volume_key, on_update=lambda _o, n: volume_key(n))

    async def run(self) -> None:
        self.ctx.informers.start()
        try:
            await self.ensure_default_class()
            await super().run()
        finally:
            await self.ctx.informers.stop()

    async def ensure_default_class(self) -> None:
        try:
            await self.ctx.client.get("storage.k8s.io/v1", "StorageClass", "", "local-path")
        except errors.NotFound:
            try:
                await self.ctx.client.create(copy.deepcopy(DEFAULT_CLASS))
            except errors.AlreadyExists:
                pass

    async def reconcile(self, key: str) -> Result:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            await self._provision(rest)
        else:
            await self._delete(rest)
        return Result.done()

    async def _provision(self, key: str) -> None:
        claim = self.claims.store.get(key)
        if claim is None:
            return
        class_name = st.claim_class(claim)
        storage_class = self.classes.store.get(class_name) if class_name else None
        if not wants_volume(claim, storage_class, self.node_name):
            return
        assert storage_class is not None
        name = f"pvc-{claim['metadata']['uid']}"
        if self.volumes.store.get(name) is not None:
            return
        ref = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
        await self.ctx.recorder.event(
            claim,
            "Normal",
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{ref}"',
        )
        if (claim.get("spec") or {}).get("volumeMode") == "Block":
            # A directory is no block device: refused, as k3s's provisioner refuses it.
            await self.ctx.recorder.event(
                claim,
                "Warning",
                "ProvisioningFailed",
                f'failed to provision volume with StorageClass "{class_name}": '
                "Block volumes are not supported",
            )
            return
        path = volume_dir(self.base, claim)
        try:
            await asyncio.to_thread(_make_dir, path)
        except OSError as e:
            await self.ctx.recorder.event(
                claim, "Warning", "ProvisioningFailed", f"failed to provision volume: {e}"
            )
            raise
        try:
            await self.ctx.client.create(new_volume(claim, storage_class, path, self.node_name))
        except errors.AlreadyExists:
            return
        await self.ctx.recorder.event(
            claim, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {name}"
        )

    async def _delete(self, name: str) -> None:
        pv = self.volumes.store.get(name)
        if pv is None:
            return
        path = to_delete(pv, self.node_name, self.base)
        if path is None:
            return
        try:
            await asyncio.to_thread(shutil.rmtree, path, ignore_errors=False)
        except FileNotFoundError:
            pass
        except OSError as e:
            await self.ctx.recorder.event(pv, "Warning", "VolumeFailedDelete", str(e))
            raise
        log.info("deleted %s (%s)", name, path)
        try:
            await self.ctx.client.delete(
                "v1", "PersistentVolume", "", name, uid=pv["metadata"].get("uid")
            )
        except errors.NotFound:
            pass


def _make_dir(path: Path) -> None:
    """k3s makes the directory world-writable, so that any pod user can write to it."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o777)
