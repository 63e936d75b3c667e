"""autoscaling/v2 and autoscaling/v1 HorizontalPodAutoscaler (v1 is a view of v2)."""

from __future__ import annotations

from api.schema import any_value, arr, integer, obj, quantity, string, time

from .meta import top_level

V2 = "io.k8s.api.autoscaling.v2."
V1 = "io.k8s.api.autoscaling.v1."

CrossVersionObjectReference = obj(
    V2 + "CrossVersionObjectReference",
    "The object to scale: a Deployment, ReplicaSet, StatefulSet, ...",
    required=("kind", "name"),
    kind=string("Kind of the target, e.g. Deployment."),
    name=string("Name of the target."),
    apiVersion=string("API version of the target, e.g. apps/v1."),
)

MetricTarget = obj(
    V2 + "MetricTarget",
    "The value a metric should have.",
    required=("type",),
    type=string(
        "Utilization, Value or AverageValue.", enum=("Utilization", "Value", "AverageValue")
    ),
    value=quantity("Target value."),
    averageValue=quantity("Target average over the pods."),
    averageUtilization=integer("Target percentage of the pods' requests, e.g. 50."),
)

MetricValueStatus = obj(
    V2 + "MetricValueStatus",
    "The value a metric has.",
    value=quantity("Current value."),
    averageValue=quantity("Current average over the pods."),
    averageUtilization=integer("Current percentage of the pods' requests."),
)

ResourceMetricSource = obj(
    V2 + "ResourceMetricSource",
    "A resource of the pods (cpu, memory) as the metrics API reports it.",
    required=("name", "target"),
    name=string("Resource name: cpu or memory."),
    target=MetricTarget,
)

MetricSpec = obj(
    V2 + "MetricSpec",
    "One metric to scale on.",
    required=("type",),
    type=string(
        "Resource, ContainerResource, Pods, Object or External (skiff acts on Resource).",
        enum=("Resource", "ContainerResource", "Pods", "Object", "External"),
    ),
    resource=ResourceMetricSource,
    containerResource=any_value("A resource of one container (not evaluated by skiff)."),
    pods=any_value("A per-pod custom metric (not evaluated by skiff)."),
    object=any_value("A metric of another object (not evaluated by skiff)."),
    external=any_value("An external metric (not evaluated by skiff)."),
)

MetricStatus = obj(
    V2 + "MetricStatus",
    "The last observed value of one metric.",
    required=("type",),
    type=string("Resource, ContainerResource, Pods, Object or External."),
    resource=obj(
        V2 + "ResourceMetricStatus",
        "Current value of a resource metric.",
        required=("name", "current"),
        name=string("Resource name."),
        current=MetricValueStatus,
    ),
    containerResource=any_value("Container resource status."),
    pods=any_value("Pods metric status."),
    object=any_value("Object metric status."),
    external=any_value("External metric status."),
)

HPAScalingPolicy = obj(
    V2 + "HPAScalingPolicy",
    "At most this much change per period.",
    required=("type", "value", "periodSeconds"),
    type=string("Pods or Percent.", enum=("Pods", "Percent")),
    value=integer("How many pods, or what percentage of the current replicas."),
    periodSeconds=integer("The period the limit applies to."),
)

HPAScalingRules = obj(
    V2 + "HPAScalingRules",
    "How fast to scale in one direction.",
    stabilizationWindowSeconds=integer(
        "Look back this long and use the most cautious recommendation."
    ),
    selectPolicy=string("Max, Min or Disabled; default Max.", enum=("Max", "Min", "Disabled")),
    policies=arr(HPAScalingPolicy, "Limits on the change per period."),
    tolerance=quantity("Ratio difference ignored (Kubernetes 1.33+)."),
)

HorizontalPodAutoscaler = top_level(
    V2 + "HorizontalPodAutoscaler",
    "Scales a workload's replicas to keep a metric (e.g. CPU utilization) at a target.",
    spec=obj(
        V2 + "HorizontalPodAutoscalerSpec",
        "Desired behaviour.",
        required=("scaleTargetRef", "maxReplicas"),
        scaleTargetRef=CrossVersionObjectReference,
        minReplicas=integer("Lower limit; default 1."),
        maxReplicas=integer("Upper limit."),
        metrics=arr(MetricSpec, "Metrics to scale on; the largest recommendation wins."),
        behavior=obj(
            V2 + "HorizontalPodAutoscalerBehavior",
            "Scaling speed limits.",
            scaleUp=HPAScalingRules,
            scaleDown=HPAScalingRules,
        ),
    ),
    status=obj(
        V2 + "HorizontalPodAutoscalerStatus",
        "Observed state.",
        observedGeneration=integer("Generation acted on.", format="int64"),
        lastScaleTime=time("When the replicas were last changed."),
        currentReplicas=integer("Replicas of the target now."),
        desiredReplicas=integer("Replicas the autoscaler last wanted."),
        currentMetrics=arr(MetricStatus, "Last observed metric values."),
        conditions=arr(
            obj(
                V2 + "HorizontalPodAutoscalerCondition",
                "AbleToScale, ScalingActive or ScalingLimited.",
                required=("type", "status"),
                type=string("Type."),
                status=string("True, False or Unknown."),
                lastTransitionTime=time("Last change."),
                reason=string("Reason."),
                message=string("Message."),
            ),
            "Conditions.",
            merge_key="type",
        ),
    ),
)

HorizontalPodAutoscalerV1 = top_level(
    V1 + "HorizontalPodAutoscaler",
    "Scales a workload's replicas to keep its CPU utilization at a target.",
    spec=obj(
        V1 + "HorizontalPodAutoscalerSpec",
        "Desired behaviour.",
        required=("scaleTargetRef", "maxReplicas"),
        scaleTargetRef=obj(
            V1 + "CrossVersionObjectReference",
            "The object to scale.",
            required=("kind", "name"),
            kind=string("Kind of the target."),
            name=string("Name of the target."),
            apiVersion=string("API version of the target."),
        ),
        minReplicas=integer("Lower limit; default 1."),
        maxReplicas=integer("Upper limit."),
        targetCPUUtilizationPercentage=integer("Target CPU, as a percentage of requests."),
    ),
    status=obj(
        V1 + "HorizontalPodAutoscalerStatus",
        "Observed state.",
        observedGeneration=integer("Generation acted on.", format="int64"),
        lastScaleTime=time("When the replicas were last changed."),
        currentReplicas=integer("Replicas of the target now."),
        desiredReplicas=integer("Replicas the autoscaler last wanted."),
        currentCPUUtilizationPercentage=integer("CPU now, as a percentage of requests."),
    ),
)
