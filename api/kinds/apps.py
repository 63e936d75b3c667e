"""apps/v1: Deployment, ReplicaSet, DaemonSet, StatefulSet, ControllerRevision; autoscaling/v1
Scale."""

from __future__ import annotations

from api.schema import (
    any_value,
    arr,
    boolean,
    int_or_string,
    integer,
    obj,
    string,
    time,
)

from .core import PersistentVolumeClaim
from .meta import LabelSelector, ObjectMeta, top_level
from .pod import PodTemplateSpec

APPS = "io.k8s.api.apps.v1."


Condition = obj(
    APPS + "DeploymentCondition",
    "Available, Progressing or ReplicaFailure.",
    required=("type", "status"),
    type=string("Type."),
    status=string("True, False or Unknown."),
    lastUpdateTime=time("Last update."),
    lastTransitionTime=time("Last change."),
    reason=string("Reason."),
    message=string("Message."),
)

Deployment = top_level(
    APPS + "Deployment",
    "Declarative updates for pods: keeps a ReplicaSet per pod template and rolls between them.",
    spec=obj(
        APPS + "DeploymentSpec",
        "Desired state.",
        required=("selector", "template"),
        replicas=integer("Desired number of pods; default 1."),
        selector=LabelSelector.described("Which pods belong to it; immutable once set."),
        template=PodTemplateSpec.described("The pods to create; labels must match selector."),
        strategy=obj(
            APPS + "DeploymentStrategy",
            "How to replace old pods with new ones.",
            type=string(
                "RollingUpdate or Recreate; default RollingUpdate.",
                enum=("RollingUpdate", "Recreate"),
            ),
            rollingUpdate=obj(
                APPS + "RollingUpdateDeployment",
                "Rolling update limits.",
                maxUnavailable=int_or_string("Pods that may be unavailable; default 25%."),
                maxSurge=int_or_string("Pods above replicas during the update; default 25%."),
            ),
        ),
        minReadySeconds=integer("Seconds a pod must be ready to count as available."),
        revisionHistoryLimit=integer("Old ReplicaSets to keep for rollback; default 10."),
        paused=boolean("Stop rolling out template changes."),
        progressDeadlineSeconds=integer(
            "Seconds without progress before it is reported failed; default 600."
        ),
    ),
    status=obj(
        APPS + "DeploymentStatus",
        "Observed state.",
        observedGeneration=integer("Generation the controller acted on.", format="int64"),
        replicas=integer("Pods targeted by the Deployment."),
        updatedReplicas=integer("Pods with the newest template."),
        readyReplicas=integer("Ready pods."),
        availableReplicas=integer("Pods ready for at least minReadySeconds."),
        unavailableReplicas=integer("Pods still needed."),
        terminatingReplicas=integer("Terminating pods."),
        conditions=arr(Condition, "Conditions.", merge_key="type"),
        collisionCount=integer("Hash collision count."),
    ),
)

ReplicaSet = top_level(
    APPS + "ReplicaSet",
    "Keeps a number of identical pods running.",
    spec=obj(
        APPS + "ReplicaSetSpec",
        "Desired state.",
        required=("selector",),
        replicas=integer("Desired number of pods; default 1."),
        minReadySeconds=integer("Seconds a pod must be ready to count as available."),
        selector=LabelSelector.described("Which pods belong to it."),
        template=PodTemplateSpec.described("The pods to create."),
    ),
    status=obj(
        APPS + "ReplicaSetStatus",
        "Observed state.",
        replicas=integer("Current pods."),
        fullyLabeledReplicas=integer("Pods whose labels match the template's."),
        readyReplicas=integer("Ready pods."),
        availableReplicas=integer("Available pods."),
        terminatingReplicas=integer("Terminating pods."),
        observedGeneration=integer("Generation acted on.", format="int64"),
        conditions=arr(
            obj(
                APPS + "ReplicaSetCondition",
                "One aspect of the ReplicaSet's state.",
                type=string("Type of the condition."),
                status=string("True, False or Unknown."),
                lastTransitionTime=time("When the status last changed."),
                reason=string("One-word CamelCase reason."),
                message=string("Human-readable details."),
            ),
            "Conditions.",
            merge_key="type",
        ),
    ),
)

Scale = obj(
    "io.k8s.api.autoscaling.v1.Scale",
    "The replicas of a scalable resource.",
    apiVersion=string("autoscaling/v1"),
    kind=string("Scale"),
    metadata=ObjectMeta.described("Metadata of the scaled object."),
    spec=obj(
        "io.k8s.api.autoscaling.v1.ScaleSpec", "Desired.", replicas=integer("Desired replicas.")
    ),
    status=obj(
        "io.k8s.api.autoscaling.v1.ScaleStatus",
        "Observed.",
        replicas=integer("Current replicas."),
        selector=string("Label selector."),
    ),
)


# -- DaemonSet, StatefulSet, ControllerRevision ------------------------------------

WorkloadCondition = obj(
    APPS + "DaemonSetCondition",
    "One aspect of a DaemonSet's state.",
    required=("type", "status"),
    type=string("Type."),
    status=string("True, False or Unknown."),
    lastTransitionTime=time("Last change."),
    reason=string("Reason."),
    message=string("Message."),
)

DaemonSet = top_level(
    APPS + "DaemonSet",
    "Runs one copy of a pod on every eligible node, and on each node that joins later.",
    spec=obj(
        APPS + "DaemonSetSpec",
        "Desired state.",
        required=("selector", "template"),
        selector=LabelSelector.described("Which pods belong to it; immutable once set."),
        template=PodTemplateSpec.described("The pod to run on each node."),
        updateStrategy=obj(
            APPS + "DaemonSetUpdateStrategy",
            "How to replace pods when the template changes.",
            type=string(
                "RollingUpdate or OnDelete; default RollingUpdate.",
                enum=("RollingUpdate", "OnDelete"),
            ),
            rollingUpdate=obj(
                APPS + "RollingUpdateDaemonSet",
                "Rolling update limits.",
                maxUnavailable=int_or_string(
                    "Nodes whose pod may be unavailable during the update; default 1."
                ),
                maxSurge=int_or_string(
                    "Nodes that may run an old and a new pod at once; default 0."
                ),
            ),
        ),
        minReadySeconds=integer("Seconds a pod must be ready to count as available."),
        revisionHistoryLimit=integer("Old ControllerRevisions to keep; default 10."),
    ),
    status=obj(
        APPS + "DaemonSetStatus",
        "Observed state.",
        currentNumberScheduled=integer("Nodes running a pod that should."),
        numberMisscheduled=integer("Nodes running a pod that should not."),
        desiredNumberScheduled=integer("Nodes that should run a pod."),
        numberReady=integer("Nodes whose pod is ready."),
        observedGeneration=integer("Generation acted on.", format="int64"),
        updatedNumberScheduled=integer("Nodes running the newest template."),
        numberAvailable=integer("Nodes whose pod is available."),
        numberUnavailable=integer("Nodes whose pod is missing or unavailable."),
        collisionCount=integer("Hash collision count."),
        conditions=arr(WorkloadCondition, "Conditions.", merge_key="type"),
    ),
)

StatefulSet = top_level(
    APPS + "StatefulSet",
    "Pods with stable names (web-0, web-1, ...), stable storage and ordered start and stop.",
    spec=obj(
        APPS + "StatefulSetSpec",
        "Desired state.",
        required=("selector", "template"),
        replicas=integer("Desired number of pods; default 1."),
        selector=LabelSelector.described("Which pods belong to it; immutable once set."),
        template=PodTemplateSpec.described("The pods to create."),
        volumeClaimTemplates=arr(
            PersistentVolumeClaim.described("A claim made for each pod: <template>-<pod>."),
            "Claims each pod gets; they outlive the pod.",
        ),
        serviceName=string("Headless Service that gives the pods DNS names; the subdomain."),
        podManagementPolicy=string(
            "OrderedReady (one at a time, in order) or Parallel; default OrderedReady.",
            enum=("OrderedReady", "Parallel"),
        ),
        updateStrategy=obj(
            APPS + "StatefulSetUpdateStrategy",
            "How to replace pods when the template changes.",
            type=string(
                "RollingUpdate or OnDelete; default RollingUpdate.",
                enum=("RollingUpdate", "OnDelete"),
            ),
            rollingUpdate=obj(
                APPS + "RollingUpdateStatefulSetStrategy",
                "Rolling update settings.",
                partition=integer("Only pods with an ordinal >= partition are updated."),
                maxUnavailable=int_or_string("Pods that may be unavailable; default 1."),
            ),
        ),
        revisionHistoryLimit=integer("Old ControllerRevisions to keep; default 10."),
        minReadySeconds=integer("Seconds a pod must be ready to count as available."),
        persistentVolumeClaimRetentionPolicy=obj(
            APPS + "StatefulSetPersistentVolumeClaimRetentionPolicy",
            "What happens to the claims when the set is deleted or scaled down.",
            whenDeleted=string("Retain or Delete; default Retain.", enum=("Retain", "Delete")),
            whenScaled=string("Retain or Delete; default Retain.", enum=("Retain", "Delete")),
        ),
        ordinals=obj(
            APPS + "StatefulSetOrdinals",
            "Where ordinals start.",
            start=integer("First ordinal; default 0."),
        ),
    ),
    status=obj(
        APPS + "StatefulSetStatus",
        "Observed state.",
        observedGeneration=integer("Generation acted on.", format="int64"),
        replicas=integer("Pods created."),
        readyReplicas=integer("Ready pods."),
        currentReplicas=integer("Pods at currentRevision."),
        updatedReplicas=integer("Pods at updateRevision."),
        currentRevision=string("Revision of the pods before the update."),
        updateRevision=string("Revision of the newest template."),
        collisionCount=integer("Hash collision count."),
        conditions=arr(WorkloadCondition, "Conditions.", merge_key="type"),
        availableReplicas=integer("Available pods."),
    ),
)

ControllerRevision = top_level(
    APPS + "ControllerRevision",
    "An immutable snapshot of a DaemonSet's or StatefulSet's pod template: its rollout "
    "history, which `kubectl rollout undo` goes back to.",
    data=any_value("The snapshot: a patch holding spec.template."),
    revision=integer("Revision number, increasing.", format="int64"),
)
