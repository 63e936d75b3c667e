"""HorizontalPodAutoscaler controller: scales a workload to keep its pods' CPU at a target.

Every 15 seconds, for each HPA, the shell reads the target's `scale`
subresource (replicas and the pod selector), the pods, and their CPU usage
from the metrics API (`metrics.k8s.io`, served from the kubelets' stats);
`decide()` — pure and table-tested — turns them into a replica count the way
Kubernetes' replica calculator does:

    utilization = sum(usage) / sum(requests) over the pods that have metrics
    desired     = ceil(current pods * utilization / target)

A change smaller than 10% of the target is ignored (the tolerance), so the
count does not flap around the target. Pods that are not Ready yet, or have
no metrics yet, are counted cautiously: as using nothing when the others ask
for more pods, as using their full request when the others ask for fewer; if
that reverses the direction, nothing changes. Scaling up goes at most to
twice the current replicas (or 4 more) per sync; scaling down takes the
highest recommendation of the last 5 minutes (the stabilization window), so
a short dip does not remove pods that will be needed again at once.

Only `Resource` metrics on `cpu` (and `memory`) with Utilization or
AverageValue targets are evaluated; other metric types are reported as
not supported in the ScalingActive condition.
"""

from __future__ import annotations

import copy
import datetime
import math
from dataclasses import dataclass, field
from typing import Any

from api import quantity
from api.meta import namespaced_key
from api.pods import is_ready, pod_requests
from api.selectors import parse_label_selector
from client import errors
from client.actions import Handler, Step
from client.controller import Context, Controller, Result

SYNC_PERIOD = 15.0
TOLERANCE = 0.1
DOWNSCALE_WINDOW = 300.0

Pod = dict[str, Any]


@dataclass(frozen=True)
class Observed:
    """What the shell read for one HPA."""

    replicas: int  # the target's spec.replicas (from its scale subresource)
    pods: list[Pod]  # pods matching the scale's selector
    usage: dict[str, dict[str, int]]  # pod name -> resource -> amount (cpu in millicores)
    metrics_error: str = ""  # why the metrics API gave nothing


# -- actions: one API call each -------------------------------------------------


@dataclass(frozen=True)
class Rescale:
    """Set the target's scale; the Event (SuccessfulRescale or FailedRescale) says why."""

    replicas: int
    reason: str  # "New size: 4; reason: cpu resource utilization ... above target"


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class UpdateStatus:
    status: dict[str, Any]


Action = Rescale | Event | UpdateStatus


@dataclass
class Plan:
    replicas: int | None = None  # new target replicas, when they change
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    recommendation: int = 0  # for the stabilization window
    actions: list[Action] = field(default_factory=list)  # the above, as the shell performs it


def _usage_ratio(
    name: str, target: dict[str, Any], pods: list[Pod], usage: dict[str, dict[str, int]]
) -> tuple[float, int, dict[str, Any]] | str:
    """(ratio of current to target, pods measured, current metric) or why it cannot be computed."""
    measured = [p for p in pods if name in usage.get(p["metadata"]["name"], {})]
    if not measured:
        return f"failed to get {name} utilization: no metrics returned from resource metrics API"
    used = sum(usage[p["metadata"]["name"]][name] for p in measured)
    if target.get("type") == "Utilization":
        requested = 0
        for p in measured:
            for c in (p.get("spec") or {}).get("containers") or []:
                if name not in ((c.get("resources") or {}).get("requests") or {}):
                    return (
                        f"failed to get {name} utilization: missing request for {name} in "
                        f"container {c.get('name')} of Pod {p['metadata']['name']}"
                    )
            requested += pod_requests(p).get(name, 0)
        if requested <= 0:
            return f"failed to get {name} utilization: no requests"
        utilization = int(used * 100 / requested)
        average = used // len(measured)
        current = {
            "averageUtilization": utilization,
            "averageValue": quantity.format_cpu(average) if name == "cpu" else str(average),
        }
        return utilization / int(target.get("averageUtilization") or 80), len(measured), current
    wanted = target.get("averageValue") or target.get("value") or "0"
    want = quantity.milli_value(wanted) if name == "cpu" else quantity.value(wanted)
    average = used / len(measured)
    shown = quantity.format_cpu(int(average)) if name == "cpu" else str(int(average))
    return (average / want if want else 0.0), len(measured), {"averageValue": shown}


def replicas_for_metric(
    metric: dict[str, Any], observed: Observed
) -> tuple[int, dict[str, Any]] | str:
    """Replicas this one metric asks for, and its current value; or an error text."""
    resource = metric.get("resource") or {}
    name, target = resource.get("name", ""), resource.get("target") or {}
    live = [
        p
        for p in observed.pods
        if not p["metadata"].get("deletionTimestamp")
        and (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
    ]
    counted = [p for p in live if is_ready(p) and p["metadata"]["name"] in observed.usage]
    waiting = [p for p in live if p not in counted]  # unready or not yet measured
    result = _usage_ratio(name, target, counted, observed.usage)
    if isinstance(result, str):
        return result
    ratio, measured, current = result
    status = {"type": "Resource", "resource": {"name": name, "current": current}}
    if not waiting:
        if abs(ratio - 1.0) <= TOLERANCE:
            return observed.replicas, status
        return math.ceil(ratio * measured), status
    # Count the pods without a usable measurement cautiously, then check the direction holds.
    if ratio < 1.0:
        assumed = {p["metadata"]["name"]: {name: pod_requests(p).get(name, 0)} for p in waiting}
    else:
        assumed = {p["metadata"]["name"]: {name: 0} for p in waiting}
    usage = {**observed.usage, **assumed}
    again = _usage_ratio(name, target, [*counted, *waiting], usage)
    if isinstance(again, str):
        return again
    new_ratio, total, _ = again
    if abs(new_ratio - 1.0) <= TOLERANCE or (ratio > 1.0) != (new_ratio > 1.0):
        return observed.replicas, status
    return math.ceil(new_ratio * total), status


def _condition(kind: str, status: str, reason: str, message: str, now: str, old: list) -> dict:
    for c in old:
        if c.get("type") == kind and c.get("status") == status:
            return {**c, "reason": reason, "message": message}
    return {
        "type": kind,
        "status": status,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def decide(
    hpa: dict[str, Any],
    observed: Observed,
    recent: list[tuple[datetime.datetime, int]],
    now: datetime.datetime,
) -> Plan:
    """The replicas to set (if any) and the status, from what was observed.

    `recent` holds (time, recommendation) of earlier syncs, for the scale-down window.
    `plan.actions` is the plan in the order Kubernetes carries it out: rescale
    (its Event says why), the other Events, then the status if it changed.
    """
    plan = _recommend(hpa, observed, recent, now)
    for event_type, reason, message in plan.events:
        if reason == "SuccessfulRescale" and plan.replicas is not None:
            plan.actions.append(Rescale(plan.replicas, message))
        else:
            plan.actions.append(Event(event_type, reason, message))
    if plan.status != hpa.get("status"):
        plan.actions.append(UpdateStatus(plan.status))
    return plan


def _recommend(
    hpa: dict[str, Any],
    observed: Observed,
    recent: list[tuple[datetime.datetime, int]],
    now: datetime.datetime,
) -> Plan:
    """decide()'s reasoning: the replica count, the status and the Events."""
    spec = hpa.get("spec") or {}
    old = hpa.get("status") or {}
    old_conditions = old.get("conditions") or []
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    low, high = int(spec.get("minReplicas", 1)), int(spec["maxReplicas"])
    current = observed.replicas
    plan = Plan(recommendation=current)
    status: dict[str, Any] = {
        "observedGeneration": int(hpa["metadata"].get("generation") or 0),
        "currentReplicas": current,
        "desiredReplicas": current,
    }
    if old.get("lastScaleTime"):
        status["lastScaleTime"] = old["lastScaleTime"]
    conditions = []

    if current == 0:
        # Scaled to zero by hand: autoscaling is off until someone scales it back up.
        conditions = [
            _condition("AbleToScale", "True", "SucceededGetScale",
                       "the HPA controller was able to get the target's current scale",
                       stamp, old_conditions),
            _condition("ScalingActive", "False", "ScalingDisabled",
                       "scaling is disabled since the replica count of the target is zero",
                       stamp, old_conditions),
        ]  # fmt: skip
        status["conditions"] = conditions
        plan.status = status
        return plan

    proposals: list[tuple[int, str]] = []
    current_metrics = []
    error = ""
    for metric in spec.get("metrics") or []:
        if metric.get("type") != "Resource":
            error = error or f"the HPA does not evaluate {metric.get('type')} metrics in skiff"
            continue
        name = (metric.get("resource") or {}).get("name", "")
        result = (
            f"failed to get {name} utilization: {observed.metrics_error}"
            if observed.metrics_error
            else replicas_for_metric(metric, observed)
        )
        if isinstance(result, str):
            error = error or result
            continue
        replicas, value = result
        current_metrics.append(value)
        what = (
            f"{name} resource utilization (percentage of request)"
            if ((metric.get("resource") or {}).get("target") or {}).get("type") == "Utilization"
            else f"{name} resource"
        )
        proposals.append((replicas, what))
    if current_metrics:
        status["currentMetrics"] = current_metrics

    if not proposals:
        conditions.append(
            _condition("AbleToScale", "True", "SucceededGetScale",
                       "the HPA controller was able to get the target's current scale",
                       stamp, old_conditions)
        )  # fmt: skip
        conditions.append(
            _condition("ScalingActive", "False", "FailedGetResourceMetric",
                       f"the HPA was unable to compute the replica count: {error}",
                       stamp, old_conditions)
        )  # fmt: skip
        plan.events.append(("Warning", "FailedGetResourceMetric", error))
        status["conditions"] = conditions
        plan.status = status
        return plan

    wanted, reason = max(proposals)
    plan.recommendation = wanted
    # Scale down only as far as the highest recommendation of the last five minutes.
    window = [r for t, r in recent if (now - t).total_seconds() <= DOWNSCALE_WINDOW]
    if wanted < current:
        wanted = min(current, max([wanted, *window]))
    # Scale up at most to double (or 4 more) per sync, Kubernetes' default policies.
    wanted = min(wanted, max(current * 2, current + 4))
    limited = "DesiredWithinRange", "the desired count is within the acceptable range"
    if wanted > high:
        wanted, limited = (
            high,
            ("TooManyReplicas", "the desired replica count is more than the maximum replica count"),
        )
    elif wanted < low:
        wanted, limited = (
            low,
            ("TooFewReplicas", "the desired replica count is less than the minimum replica count"),
        )
    status["desiredReplicas"] = wanted
    if wanted != current:
        plan.replicas = wanted
        status["lastScaleTime"] = stamp
        if limited[0] == "TooFewReplicas" and current < low:
            why = "Current number of replicas below Spec.MinReplicas"
        elif limited[0] == "TooManyReplicas" and current > high:
            why = "Current number of replicas above Spec.MaxReplicas"
        elif wanted > current:
            why = f"{reason} above target"
        else:
            why = "All metrics below target"
        plan.events.append(("Normal", "SuccessfulRescale", f"New size: {wanted}; reason: {why}"))
        able = (
            "SucceededRescale",
            f"the HPA controller was able to update the target scale to {wanted}",
        )
    else:
        able = ("ReadyForNewScale", "recommended size matches current size")
    conditions = [
        _condition("AbleToScale", "True", *able, stamp, old_conditions),
        _condition("ScalingActive", "True", "ValidMetricFound",
                   f"the HPA was able to successfully calculate a replica count from {reason}",
                   stamp, old_conditions),
        _condition("ScalingLimited", "True" if limited[0] != "DesiredWithinRange" else "False",
                   *limited, stamp, old_conditions),
    ]  # fmt: skip
    status["conditions"] = conditions
    plan.status = status
    return plan


# -- the shell ---------------------------------------------------------------------


def _usage_from(pod_metrics: dict[str, Any]) -> dict[str, dict[str, int]]:
    """metrics.k8s.io PodMetricsList -> pod -> {cpu: millicores, memory: bytes}."""
    out: dict[str, dict[str, int]] = {}
    for item in pod_metrics.get("items") or []:
        totals = {"cpu": 0, "memory": 0}
        for c in item.get("containers") or []:
            usage = c.get("usage") or {}
            totals["cpu"] += quantity.milli_value(usage.get("cpu", "0"))
            totals["memory"] += quantity.value(usage.get("memory", "0"))
        out[item["metadata"]["name"]] = totals
    return out


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler"
    workers = 2

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.hpas = ctx.informers.get("autoscaling/v2", "HorizontalPodAutoscaler")
        self.pods = ctx.informers.get("v1", "Pod")
        self.hpas.add_handlers(
            on_add=lambda h: self.enqueue(namespaced_key(h)),
            on_update=lambda o, h: (
                self.enqueue(namespaced_key(h)) if o.get("spec") != h.get("spec") else None
            ),
        )
        self.recent: dict[str, list[tuple[datetime.datetime, int]]] = {}

    async def reconcile(self, key: str) -> Result:
        hpa = self.hpas.store.get(key)
        if hpa is None:
            self.recent.pop(key, None)
            return Result.done()
        api = self.ctx.client
        ns = hpa["metadata"]["namespace"]
        ref = hpa["spec"]["scaleTargetRef"]
        api_version = ref.get("apiVersion") or "apps/v1"
        try:
            scale = await api.get(api_version, ref["kind"], ns, ref["name"], sub="scale")
        except (errors.ApiError, ValueError) as e:
            await self.apply(
                [Event("Warning", "FailedGetScale", str(e))],
                hpa,
                observed=f"no scale for {ref['kind']}/{ref['name']}",
            )
            return Result(requeue_after=SYNC_PERIOD)
        selector_text = (scale.get("status") or {}).get("selector") or ""
        selector = parse_label_selector(selector_text)
        pods = [
            p
            for p in self.pods.store.by_index("namespace", ns)
            if selector.matches(p["metadata"].get("labels") or {})
        ]
        metrics_error = ""
        usage: dict[str, dict[str, int]] = {}
        try:
            listing = await api.get_path(
                f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
                params={"labelSelector": selector_text},
            )
            usage = _usage_from(listing)
        except errors.ApiError as e:
            metrics_error = f"unable to get metrics for resource cpu: {e}"
        now = datetime.datetime.now(datetime.UTC)
        observed = Observed(
            int((scale.get("spec") or {}).get("replicas", 0)), pods, usage, metrics_error
        )
        recent = [
            r for r in self.recent.get(key, []) if (now - r[0]).total_seconds() <= DOWNSCALE_WINDOW
        ]
        plan = decide(hpa, observed, recent, now)
        self.recent[key] = [*recent, (now, plan.recommendation)]
        if plan.actions:
            await self.apply(
                plan.actions,
                hpa,
                decide=decide,
                observed=f"{observed.replicas} replicas, {len(usage)} pods with metrics",
                wanted=f"{plan.status.get('desiredReplicas')} replicas",
            )
        return Result(requeue_after=SYNC_PERIOD)

    @property
    def handlers(self) -> dict[type, Handler]:  # type: ignore[override]
        return {
            Rescale: self._rescale,
            Event: self._event,
            UpdateStatus: self._update_status,
        }

    async def _rescale(self, action: Rescale, step: Step) -> None:
        hpa = step.owner or {}
        ref = hpa["spec"]["scaleTargetRef"]
        body = {"spec": {"replicas": action.replicas}}
        try:
            await step.api.patch(
                ref.get("apiVersion") or "apps/v1",
                ref["kind"],
                hpa["metadata"]["namespace"],
                ref["name"],
                body,
                sub="scale",
            )
        except errors.ApiError as e:
            step.event("Warning", "FailedRescale", f"{action.reason}; error: {e}")
            raise
        step.event("Normal", "SuccessfulRescale", action.reason)

    async def _event(self, action: Event, step: Step) -> None:
        step.event(action.type, action.reason, action.message)

    async def _update_status(self, action: UpdateStatus, step: Step) -> None:
        body = copy.deepcopy(step.owner or {})
        body["status"] = action.status
        try:
            await step.api.update(body, sub="status")
        except errors.Conflict:
            step.note = "conflict: the next sync writes it"
