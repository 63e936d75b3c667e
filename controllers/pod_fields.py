"""What the controller-manager's shared pod informer leaves out of each pod.

kube-controller-manager keeps whole pods minus managedFields; client-go's
transform functions (SharedInformer.SetTransform) allow less. The controllers
here share one pod informer and read many fields between them (endpoints: IPs,
hostname, subdomain, ports, readiness; the workload controllers: labels, owners,
phase, conditions, restart counts, exit codes; the HPA: requests; the GC and
the pod GC: owners, finalizers, node, timestamps; nodelifecycle and the
DaemonSet controller: tolerations and affinity; volume protection: claims), so
this drops, rather than keeps, by name: only what no controller reads (checked
by grepping controllers/, client/ and the api/ helpers they call for each
name), and every field not named here is kept. A controller that starts to
read one of these must take it out of DROPPED
(tests/unit/controllers/test_pod_fields.py lists what is kept).

Never send a pod from this cache back to the API whole (a PUT would erase what
was dropped): controllers patch or delete pods, by name and uid.

Pods of one template are alike, and no controller changes a cached pod in place
(each copies what it changes, as client-go requires of its informers' objects):
equal values (containers, tolerations, labels, owners...) are kept once, shared
by every pod that has them. A defaulted Deployment pod: 6.9 KiB compacted, 3.4
KiB without DROPPED, ~1.7 KiB with its equal values shared.
"""

from __future__ import annotations

from typing import Any

from client.informer import Shape, SharedValues, compact, drop_fields

# A container's process, its files and its probes: the kubelet's business.
_CONTAINER: Shape = {
    "image": True,
    "imagePullPolicy": True,
    "command": True,
    "args": True,
    "workingDir": True,
    "env": True,
    "envFrom": True,
    "volumeMounts": True,
    "volumeDevices": True,
    "livenessProbe": True,
    "readinessProbe": True,
    "startupProbe": True,
    "lifecycle": True,
    "securityContext": True,
    "terminationMessagePath": True,
    "terminationMessagePolicy": True,
    "stdin": True,
    "stdinOnce": True,
    "tty": True,
}
# Which image a container runs and its runtime's id: read by no controller (the
# state, exit code, readiness and restart count stay).
_CONTAINER_STATUS: Shape = {"image": True, "imageID": True, "containerID": True}

DROPPED: Shape = {
    "metadata": {
        "managedFields": True,
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": True},
    },
    "spec": {
        "containers": [_CONTAINER],
        "initContainers": [_CONTAINER],
        "ephemeralContainers": [_CONTAINER],
        # The content of the volumes the kubelet fills (the service account token's
        # projected volume is the largest part of a defaulted pod); each volume keeps
        # its name and any claim (persistentVolumeClaim, ephemeral) it names.
        "volumes": [{"projected": True, "configMap": True, "secret": True, "downwardAPI": True}],
    },
    "status": {
        "containerStatuses": [_CONTAINER_STATUS],
        "initContainerStatuses": [_CONTAINER_STATUS],
        "ephemeralContainerStatuses": [_CONTAINER_STATUS],
    },
}


# The values shared between pods, by where they are.
SHARED: dict[str, tuple[str, ...]] = {
    "metadata": ("labels", "ownerReferences", "finalizers"),
    "spec": (
        "containers",
        "initContainers",
        "tolerations",
        "affinity",
        "nodeSelector",
        "topologySpreadConstraints",
        "securityContext",
    ),
    "status": ("conditions",),
}
_SHARED = SharedValues()


def for_controllers(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod as the controller-manager's informer keeps it: without DROPPED, keys
    and short strings interned, equal values (SHARED) kept once."""
    return _SHARED.share(compact(drop_fields(pod, DROPPED)), SHARED)
