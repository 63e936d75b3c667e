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
"""

from __future__ import annotations

from typing import Any

from api.interning import interned
from client.informer import Shape, keep_fields

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


def for_scheduler(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the scheduler's informer keeps it: the fields in FIELDS, with
    keys and short strings shared with every other cached pod."""
    return interned(keep_fields(pod, FIELDS))  # type: ignore[no-any-return]
