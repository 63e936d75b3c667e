"""Storage kinds: PersistentVolume (core/v1) and StorageClass (storage.k8s.io/v1).

The PersistentVolumeClaim lives in core.py beside the other namespaced core kinds.
"""

from __future__ import annotations

from api.schema import (
    Schema,
    any_value,
    arr,
    boolean,
    map_of,
    obj,
    quantity,
    string,
    string_map,
    strings,
    time,
)

from .meta import top_level
from .pod import CORE, NodeSelectorTerm

ObjectReference = obj(
    CORE + "ObjectReference",
    "A reference to another object.",
    apiVersion=string("API version."),
    kind=string("Kind."),
    namespace=string("Namespace."),
    name=string("Name."),
    uid=string("UID."),
    resourceVersion=string("Resource version."),
    fieldPath=string("Field within the object."),
)

# Built directly: its one field is named `required`, which obj() takes as a keyword.
VolumeNodeAffinity = Schema(
    "object",
    "Nodes this volume can be reached from.",
    {
        "required": obj(
            CORE + "NodeSelector",
            "Terms of which one must hold.",
            required=("nodeSelectorTerms",),
            nodeSelectorTerms=arr(NodeSelectorTerm, "ORed terms."),
        )
    },
    ref=CORE + "VolumeNodeAffinity",
)

PersistentVolume = top_level(
    CORE + "PersistentVolume",
    "A piece of storage in the cluster, provisioned by an administrator or by a "
    "StorageClass, bound to at most one claim.",
    spec=obj(
        CORE + "PersistentVolumeSpec",
        "What the volume is and who may bind it.",
        capacity=map_of(quantity(), "Size of the volume, e.g. storage: 1Gi."),
        accessModes=arr(
            string(enum=("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")),
            "How the volume can be mounted.",
        ),
        claimRef=ObjectReference.described("The claim bound (or pre-bound) to this volume."),
        persistentVolumeReclaimPolicy=string(
            "What happens when the claim goes: Retain, Delete or Recycle.",
            enum=("Retain", "Delete", "Recycle"),
        ),
        storageClassName=string("The StorageClass this volume belongs to; empty means none."),
        volumeMode=string("Filesystem or Block; default Filesystem.", enum=("Filesystem", "Block")),
        mountOptions=strings("Mount options."),
        nodeAffinity=VolumeNodeAffinity,
        hostPath=obj(
            CORE + "HostPathVolumeSource",
            "A directory on the node.",
            required=("path",),
            path=string("The path on the node."),
            type=string("Directory, DirectoryOrCreate, ..."),
        ),
        local=obj(
            CORE + "LocalVolumeSource",
            "A local disk or directory on one node (needs nodeAffinity).",
            required=("path",),
            path=string("The path on the node."),
            fsType=string("Filesystem type."),
        ),
        nfs=any_value("An NFS export (not supported by skiff's kubelet)."),
        csi=any_value("A CSI volume (not supported by skiff's kubelet)."),
        volumeAttributesClassName=string("Volume attributes class."),
    ),
    status=obj(
        CORE + "PersistentVolumeStatus",
        "Observed state.",
        phase=string(
            "Pending, Available, Bound, Released or Failed.",
            enum=("Pending", "Available", "Bound", "Released", "Failed"),
        ),
        message=string("Why the volume is in this phase."),
        reason=string("Short CamelCase reason."),
        lastPhaseTransitionTime=time("When the phase last changed."),
    ),
)

STORAGE = "io.k8s.api.storage.v1."

StorageClass = top_level(
    STORAGE + "StorageClass",
    "A kind of storage: which provisioner makes volumes for claims naming it, and how.",
    provisioner=string("The provisioner, e.g. rancher.io/local-path."),
    parameters=string_map("Parameters for the provisioner."),
    reclaimPolicy=string("Delete (default) or Retain.", enum=("Delete", "Retain")),
    mountOptions=strings("Mount options for the volumes."),
    allowVolumeExpansion=boolean("Whether claims may grow."),
    volumeBindingMode=string(
        "Immediate (default) or WaitForFirstConsumer.",
        enum=("Immediate", "WaitForFirstConsumer"),
    ),
    allowedTopologies=any_value("Where volumes may be provisioned."),
)
