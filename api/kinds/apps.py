"""apps/v1: Deployment and ReplicaSet; autoscaling/v1 Scale."""

from __future__ import annotations

from api.schema import (
    arr,
    boolean,
    int_or_string,
    integer,
    obj,
    string,
    time,
)

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
