"""A pod's status as the kubelet reports it, computed from what the runtime holds.

`pod_status()` is pure: the API Pod, the runtime's observation, the kubelet's
memory (probe verdicts, failed starts) and the waiting reasons the last sync
decided give the whole `status` Kubernetes shows: phase, the five conditions,
pod and host IPs, start time, QoS class, and per container its state, last
state, readiness, restart count, image and ID. The shell writes it through
`pods/status` only when it differs from what the API already holds, so a
lastTransitionTime changes only when its condition does.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Protocol

from api.pods import qos_class

from .observed import CREATED, EXITED, RUNNING, Container, Memory, Observed

TERMINAL = ("Succeeded", "Failed")
RUNTIME_SCHEME = "skiff"  # containerID: skiff://<id>, as containerd's is containerd://<id>


class WaitingReason(Protocol):
    reason: str
    message: str


def init_done(spec: dict[str, Any], latest: Container | None) -> bool:
    """An init container lets the next one start once it succeeded; a sidecar (an init
    container with `restartPolicy: Always`) once it has started (it is restarted
    whenever it exits, without holding the pod back)."""
    if latest is None:
        return False
    if is_sidecar(spec):
        return latest.state in (RUNNING, EXITED)
    return latest.succeeded


def is_sidecar(spec: dict[str, Any]) -> bool:
    return spec.get("restartPolicy") == "Always"


def pod_phase(pod: dict[str, Any], observed: Observed) -> str:
    """Kubernetes' getPhase: Pending until every container has started, Running while
    one runs (or will restart), Succeeded or Failed once all have stopped for good."""
    current = (pod.get("status") or {}).get("phase")
    if current in TERMINAL:
        return str(current)  # a finished pod never runs again
    spec = pod["spec"]
    policy = spec.get("restartPolicy") or "Always"
    for c in spec.get("initContainers") or []:
        latest = observed.latest(c["name"])
        if init_done(c, latest):
            continue
        if (
            latest is not None
            and latest.state == EXITED
            and policy == "Never"
            and not is_sidecar(c)
        ):
            return "Failed"  # an init container failed and may not be retried
        return "Pending"
    waiting = running = stopped = succeeded = unknown = 0
    for c in spec["containers"]:
        latest = observed.latest(c["name"])
        if latest is None or latest.state == CREATED:
            waiting += 1
        elif latest.state == RUNNING:
            running += 1
        elif latest.state == EXITED:
            stopped += 1
            succeeded += latest.exit_code == 0
        else:
            unknown += 1
    if waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if stopped and not running and not unknown:
        if policy == "Always":
            return "Running"  # every container is on its way to a restart
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def pod_status(
    pod: dict[str, Any],
    observed: Observed,
    memory: Memory,
    waiting: Mapping[str, WaitingReason],
    *,
    host_ip: str,
    now: float,
    failed: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The whole `status` of a pod this kubelet runs; `failed` = (reason, message) when the
    kubelet fails the pod for good (activeDeadlineSeconds)."""
    old = pod.get("status") or {}
    spec = pod["spec"]
    phase = "Failed" if failed else pod_phase(pod, observed)
    sandbox = observed.current_sandbox()
    initialized = all(
        init_done(s, observed.latest(s["name"])) for s in spec.get("initContainers") or []
    )
    init_statuses = [
        _container_status(s, observed, memory, waiting, "ContainerCreating")
        for s in spec.get("initContainers") or []
    ]
    statuses = [
        _container_status(
            s, observed, memory, waiting, "ContainerCreating" if initialized else "PodInitializing"
        )
        for s in spec["containers"]
    ]
    status: dict[str, Any] = {
        k: v for k, v in old.items() if k not in ("initContainerStatuses", "containerStatuses")
    }
    status["phase"] = phase
    if failed:
        status["reason"], status["message"] = failed
    status["conditions"] = _conditions(pod, phase, sandbox is not None and sandbox.ready,
                                       init_statuses, statuses, old, now)  # fmt: skip
    status["hostIP"] = host_ip
    status["hostIPs"] = [{"ip": host_ip}]
    pod_ip = host_ip if spec.get("hostNetwork") else (sandbox.ip if sandbox else "")
    if pod_ip and ((sandbox is not None and sandbox.ready) or not old.get("podIP")):
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    status["startTime"] = old.get("startTime") or rfc3339(now)
    status["qosClass"] = qos_class(pod)
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = statuses
    return status


def _container_status(
    spec: dict[str, Any],
    observed: Observed,
    memory: Memory,
    waiting: Mapping[str, WaitingReason],
    default_reason: str,
) -> dict[str, Any]:
    name = spec["name"]
    instances = observed.instances(name)
    latest = instances[0] if instances else None
    previous = instances[1] if len(instances) > 1 else None
    status: dict[str, Any] = {
        "name": name,
        "image": spec.get("image", ""),
        "imageID": latest.image_ref if latest else "",
        "restartCount": latest.attempt if latest else 0,
        "ready": False,
        "started": False,
        "lastState": {},
    }
    if latest is not None:
        status["containerID"] = container_id(latest.id)
    why = waiting.get(name)
    failure = memory.failures.get(name)
    if latest is not None and latest.state == RUNNING:
        status["state"] = {"running": {"startedAt": rfc3339(latest.started_at)}}
        status["started"] = "startupProbe" not in spec or memory.started.get(latest.id, False)
        status["ready"] = bool(status["started"]) and (
            "readinessProbe" not in spec or memory.ready.get(latest.id, False)
        )
        if previous is not None and previous.state == EXITED:
            status["lastState"] = {"terminated": terminated(previous)}
    elif why is not None or (failure is not None and (latest is None or latest.state == EXITED)):
        shown = why or failure
        assert shown is not None
        status["state"] = {"waiting": {"reason": shown.reason}}
        if shown.message:
            status["state"]["waiting"]["message"] = shown.message
        if latest is not None and latest.state == EXITED:
            status["lastState"] = {"terminated": terminated(latest)}
    elif latest is not None and latest.state == EXITED:
        status["state"] = {"terminated": terminated(latest)}
        if previous is not None and previous.state == EXITED:
            status["lastState"] = {"terminated": terminated(previous)}
    elif latest is not None and latest.state != CREATED:  # the runtime lost track of it
        status["state"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
            }
        }
    else:
        status["state"] = {"waiting": {"reason": default_reason}}
    return status


def terminated(c: Container) -> dict[str, Any]:
    out: dict[str, Any] = {
        "exitCode": c.exit_code,
        "reason": c.reason or ("Completed" if c.exit_code == 0 else "Error"),
        "startedAt": rfc3339(c.started_at) if c.started_at else None,
        "finishedAt": rfc3339(c.finished_at) if c.finished_at else None,
        "containerID": container_id(c.id),
    }
    if c.message:
        out["message"] = c.message
    return out


def _conditions(
    pod: dict[str, Any],
    phase: str,
    sandbox_ready: bool,
    init_statuses: list[dict[str, Any]],
    statuses: list[dict[str, Any]],
    old: dict[str, Any],
    now: float,
) -> list[dict[str, Any]]:
    """PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled —
    in the order the kubelet writes them, each with the reason Kubernetes gives."""
    previous = {c.get("type"): c for c in old.get("conditions") or []}
    incomplete = [
        s["name"]
        for s, spec in zip(init_statuses, pod["spec"].get("initContainers") or [], strict=True)
        if not (_started(s) if is_sidecar(spec) else _completed(s))
    ]
    unready = [s["name"] for s in statuses if not s["ready"]]
    gates = [
        g["conditionType"]
        for g in pod["spec"].get("readinessGates") or []
        if (previous.get(g["conditionType"]) or {}).get("status") != "True"
    ]

    def condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
        status = "True" if ok else "False"
        before = previous.get(kind) or {}
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        out: dict[str, Any] = {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": since or rfc3339(now),
        }
        if not ok and reason:
            out["reason"] = reason
        if not ok and message:
            out["message"] = message
        return out

    finished = phase in TERMINAL
    if finished:
        ready_reason, ready_message = "PodCompleted", ""
    elif unready:
        ready_reason = "ContainersNotReady"
        ready_message = f"containers with unready status: [{' '.join(unready)}]"
    else:
        ready_reason, ready_message = (
            "ReadinessGatesNotReady",
            (
                f"corresponding condition of pod readiness gate {', '.join(repr(g) for g in gates)}"
                " does not exist."
            ),
        )
    containers_ready = not unready and not finished
    out = [
        condition("PodReadyToStartContainers", sandbox_ready),
        condition(
            "Initialized",
            not incomplete,
            "PodCompleted" if finished else "ContainersNotInitialized",
            "" if finished else f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        condition("Ready", containers_ready and not gates, ready_reason, ready_message),
        condition(
            "ContainersReady",
            containers_ready,
            "PodCompleted" if finished else "ContainersNotReady",
            "" if finished else f"containers with unready status: [{' '.join(unready)}]",
        ),
    ]
    out.append(previous.get("PodScheduled") or condition("PodScheduled", True))
    owned = {c["type"] for c in out}
    out += [c for kind, c in previous.items() if kind not in owned]  # readiness gates, others'
    return out


def _started(status: dict[str, Any]) -> bool:
    return (
        "running" in status["state"]
        or bool(status["lastState"])
        or ("terminated" in status["state"])
    )


def _completed(status: dict[str, Any]) -> bool:
    done = (status.get("state") or {}).get("terminated") or {}
    return done.get("exitCode") == 0


def container_id(cid: str) -> str:
    return f"{RUNTIME_SCHEME}://{cid}"


def rfc3339(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
