"""What the scheduler keeps of each pod: the fields it reads, nothing else.

kube-scheduler's informers keep whole pods minus managedFields; this one keeps
less, as client-go's transform functions allow (SharedInformer.SetTransform):
a pod bound elsewhere is only ever counted (its requests, host ports, labels
for affinity and spread, its own required anti-affinity), and a pending one is
matched against nodes. Everything below is read somewhere in scheduler/ or in
the api/ helpers it calls; a field added to a plugin must be added here too
(tests/unit/scheduler/test_pod_fields.py lists them).

Never send a pod from this cache back to the API whole: the scheduler binds
with a Binding and patches the PodScheduled condition, nothing else.

Pods of one template are alike: their containers, tolerations, labels and
affinity are equal values, and the scheduler never changes a cached pod (it
copies what it changes: `Cache.assume`). So equal values are kept once, shared
by every pod that has them (a defaulted Deployment pod: 3.1 KiB as kept fields,
~1.5 KiB with its containers, tolerations and labels shared).
"""

from __future__ import annotations

from typing import Any

from api.interning import interned
from client.informer import Shape, SharedValues, keep_fields

# Who reads each: the queue (priority, creationTimestamp), needs_scheduling and
# the pod handlers (schedulerName, nodeName, deletionTimestamp, phase), the Event
# recorder and the trace (apiVersion, kind, name, namespace, uid, resourceVersion),
# NodeResourcesFit and the cache (requests of containers and init containers,
# overhead), NodePorts (containers' ports), NodeAffinity (nodeSelector,
# affinity.nodeAffinity), InterPodAffinity (labels, affinity.pod(Anti)Affinity),
# TaintToleration (tolerations), PodTopologySpread (topologySpreadConstraints,
# labels), VolumeBinding (persistentVolumeClaim volumes), MarkUnschedulable
# (status.conditions, rewritten with PodScheduled replaced).
FIELDS: Shape = {
    "apiVersion": True,
    "kind": True,
    "metadata": {
        "name": True,
        "namespace": True,
        "uid": True,
        "resourceVersion": True,
        "creationTimestamp": True,
        "deletionTimestamp": True,
        "labels": True,
    },
    "spec": {
        "nodeName": True,
        "schedulerName": True,
        "priority": True,
        "nodeSelector": True,
        "affinity": True,
        "tolerations": True,
        "topologySpreadConstraints": True,
        "overhead": True,
        "containers": [{"name": True, "resources": {"requests": True}, "ports": True}],
        "initContainers": [{"name": True, "resources": {"requests": True}}],
        "volumes": [{"name": True, "persistentVolumeClaim": True}],
    },
    "status": {"phase": True, "conditions": True, "nominatedNodeName": True},
}


# The values shared between pods, by where they are.
SHARED: dict[str, tuple[str, ...]] = {
    "metadata": ("labels",),
    "spec": (
        "containers",
        "initContainers",
        "tolerations",
        "affinity",
        "nodeSelector",
        "topologySpreadConstraints",
        "overhead",
    ),
    "status": ("conditions",),
}
_SHARED = SharedValues()


def for_scheduler(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the scheduler's informer keeps it: the fields in FIELDS, with
    keys and short strings interned and equal values (SHARED) kept once."""
    kept: dict[str, Any] = interned(keep_fields(pod, FIELDS))
    spec = kept.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("volumes"), list):
        # Only claims matter to VolumeBinding: a pod's other volumes are left out.
        claims = [
            v for v in spec["volumes"] if isinstance(v, dict) and v.get("persistentVolumeClaim")
        ]
        if claims:
            spec["volumes"] = claims
        else:
            del spec["volumes"]
    return _SHARED.share(kept, SHARED)
