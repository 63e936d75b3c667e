"""The kubelet's pod sync: what to do next for one pod, decided by `decide()`.

`decide(pod, observed, memory, now)` is the whole policy and is pure. It sees the
API Pod (or None when the pod is gone or no longer bound here), what the runtime
holds for it, and what the kubelet remembers (back-off, failed starts, probe
verdicts), and returns a `Plan`: the actions to carry out, in order, and the
waiting reasons to show. `pods.py` builds the inputs and performs the actions.

Kubernetes' order, which the code below follows step by step:
1. A pod that is gone is torn down: containers stopped, then removed with
   their sandboxes.
2. A pod being deleted is stopped: preStop hooks and SIGTERM, SIGKILL when its
   grace period is over; once nothing runs, its sandbox is stopped and the
   deletion confirmed to the API (a delete with grace 0).
3. A pod that finished (Succeeded or Failed) keeps its exited containers, for
   their logs and exit codes, and is never restarted; its sandbox is stopped.
   A pod past its `activeDeadlineSeconds` is stopped the same way and Failed.
4. Otherwise: a sandbox first (a new one if the old one died); then the init
   containers, one at a time and in order, each to succeed before the next;
   then every app container, restarted as `restartPolicy` says, after the
   CrashLoopBackOff delay (10 s, doubling to 5 min, forgotten after 10 min of
   running); a container whose liveness probe failed is killed and restarted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.meta import parse_time

from .observed import CREATED, EXITED, RUNNING, UNKNOWN, Container, Failure, Memory, Observed
from .status import TERMINAL, init_done, is_sidecar, pod_phase

INITIAL_BACKOFF = 10.0
MAX_BACKOFF = 300.0
BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts its back-off afresh
ORPHAN_GRACE = 2  # a pod gone from the API has no grace period to read; the kubelet's minimum
DEFAULT_GRACE = 30
KEEP_INSTANCES = 2  # the current instance and the previous one (`kubectl logs --previous`)

# -- actions: one runtime (or API) operation each -----------------------------------------


@dataclass(frozen=True)
class CreateSandbox:
    attempt: int


@dataclass(frozen=True)
class KillSandbox:
    """Stop it: its containers are killed and its network released; records stay."""

    sandbox_id: str


@dataclass(frozen=True)
class RemoveSandbox:
    sandbox_id: str


@dataclass(frozen=True)
class StartContainer:
    """Pull (when `pull`), create and start one instance, then run its postStart hook.
    `backoff` is the CrashLoopBackOff delay that applies if this instance exits (None
    for a first start: the first crash restarts at once, as in Kubernetes)."""

    name: str
    attempt: int
    init: bool = False
    pull: bool = False
    backoff: float | None = None


@dataclass(frozen=True)
class KillContainer:
    """preStop hook (when `pre_stop`), SIGTERM, SIGKILL after `grace` seconds."""

    container_id: str
    name: str
    grace: int
    message: str
    pre_stop: bool = True


@dataclass(frozen=True)
class RemoveContainer:
    container_id: str
    name: str


@dataclass(frozen=True)
class ConfirmDeletion:
    """The grace-0 delete that lets the API forget a pod the kubelet has stopped."""


@dataclass(frozen=True)
class ReleaseVolumes:
    """The pod is gone: unmount and delete its volumes."""


@dataclass(frozen=True)
class FailPod:
    """Mark the pod Failed for good (its status says why): activeDeadlineSeconds ran out."""

    reason: str
    message: str


Action = (
    CreateSandbox
    | KillSandbox
    | RemoveSandbox
    | StartContainer
    | KillContainer
    | RemoveContainer
    | ConfirmDeletion
    | ReleaseVolumes
    | FailPod
)


@dataclass(frozen=True)
class Waiting:
    """Why a container is not running now, as `state.waiting` shows it."""

    reason: str
    message: str = ""
    until: float = 0.0  # when to look again (0: when something changes)


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    waiting: dict[str, Waiting] = field(default_factory=dict)
    finished: bool = False  # the pod is gone and so is everything it held

    @property
    def requeue_at(self) -> float | None:
        times = [w.until for w in self.waiting.values() if w.until]
        return min(times) if times else None


# -- the policy -------------------------------------------------------------------------------


def decide(pod: dict[str, Any] | None, observed: Observed, memory: Memory, now: float) -> Plan:
    """Pure: the next steps for one pod. See the module docstring for the order."""
    if pod is None:
        return _tear_down(observed)
    if pod["metadata"].get("deletionTimestamp"):
        return _terminate(pod, observed)
    if pod_phase(pod, observed) in TERMINAL:
        return _finished(pod, observed)
    if past_active_deadline(pod, now):
        plan = _finished(pod, observed)
        plan.actions.append(
            FailPod(
                "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
            )
        )
        return plan
    plan = Plan()
    sandbox = observed.current_sandbox()
    if sandbox is None or not sandbox.ready:
        # First start, or the sandbox died (its network and namespaces are gone):
        # everything in it is stopped and the pod starts again in a new one.
        for c in observed.running():
            plan.actions.append(_kill(c, 0, f"Stopping container {c.name}", pre_stop=False))
        if sandbox is not None:
            plan.actions.append(KillSandbox(sandbox.id))
        plan.actions.append(CreateSandbox(attempt=sandbox.attempt + 1 if sandbox else 0))
        return plan
    for old in observed.sandboxes:
        if old.id != sandbox.id and old.ready:
            plan.actions.append(KillSandbox(old.id))
    here = Observed(
        sandboxes=(sandbox,),
        containers=tuple(c for c in observed.containers if c.sandbox_id == sandbox.id),
        images=observed.images,
    )
    _kill_unwanted(pod, observed, memory, plan)
    if _init_containers(pod, here, observed, memory, now, plan):
        _app_containers(pod, here, observed, memory, now, plan)
    _prune(observed, plan)
    return plan


def _tear_down(observed: Observed) -> Plan:
    """The pod is gone (deleted, even while the kubelet was down, or no longer bound
    here): stop what still runs, then remove every container and sandbox."""
    plan = Plan()
    running = observed.running()
    if running:
        plan.actions += [_kill(c, ORPHAN_GRACE, f"Stopping container {c.name}") for c in running]
        return plan
    plan.actions += [RemoveContainer(c.id, c.name) for c in observed.containers]
    plan.actions += [RemoveSandbox(s.id) for s in observed.sandboxes]
    plan.actions.append(ReleaseVolumes())
    plan.finished = True
    return plan


def _terminate(pod: dict[str, Any], observed: Observed) -> Plan:
    """Graceful deletion: confirmed to the API only once every container has stopped."""
    plan = Plan()
    running = observed.running()
    if running:
        grace = grace_period(pod)
        plan.actions += [_kill(c, grace, f"Stopping container {c.name}") for c in running]
        return plan
    plan.actions += [KillSandbox(s.id) for s in observed.sandboxes if s.ready]
    plan.actions.append(ConfirmDeletion())
    return plan


def _finished(pod: dict[str, Any], observed: Observed) -> Plan:
    """Succeeded or Failed: nothing restarts; the exited containers stay for their logs."""
    plan = Plan()
    grace = grace_period(pod)
    plan.actions += [_kill(c, grace, f"Stopping container {c.name}") for c in observed.running()]
    plan.actions += [KillSandbox(s.id) for s in observed.sandboxes if s.ready]
    return plan


def _kill_unwanted(pod: dict[str, Any], observed: Observed, memory: Memory, plan: Plan) -> None:
    """Containers the spec no longer names, or whose liveness (or startup) probe failed."""
    spec = pod.get("spec") or {}
    names = {c["name"] for c in (spec.get("initContainers") or []) + spec.get("containers", [])}
    grace = grace_period(pod, deleting=False)
    for c in observed.running():
        if c.name not in names:
            plan.actions.append(_kill(c, grace, f"Stopping container {c.name}"))
        elif c.state == RUNNING and c.id in memory.unhealthy:
            plan.actions.append(_kill(c, grace, memory.unhealthy[c.id]))
        elif c.state == UNKNOWN:
            plan.actions.append(_kill(c, 0, f"Stopping container {c.name}", pre_stop=False))


def _init_containers(
    pod: dict[str, Any],
    here: Observed,
    everywhere: Observed,
    memory: Memory,
    now: float,
    plan: Plan,
) -> bool:
    """Run the init containers one at a time, in order; True once all have succeeded
    (a sidecar, `restartPolicy: Always`, once it has started: it then runs beside the
    app containers and is restarted whenever it exits)."""
    for spec in pod["spec"].get("initContainers") or []:
        latest = here.latest(spec["name"])
        if init_done(spec, latest):
            if is_sidecar(spec) and latest is not None and latest.state == EXITED:
                _start(pod, spec, latest, everywhere, memory, now, plan, init=True)
            continue
        if latest is None or latest.state == EXITED or latest.state == CREATED:
            _start(pod, spec, latest, everywhere, memory, now, plan, init=True)
        return False  # this one runs (or waits): the next ones wait for it
    return True


def _app_containers(
    pod: dict[str, Any],
    here: Observed,
    everywhere: Observed,
    memory: Memory,
    now: float,
    plan: Plan,
) -> None:
    for spec in pod["spec"]["containers"]:
        latest = here.latest(spec["name"])
        if latest is None or latest.state == CREATED:
            _start(pod, spec, latest, everywhere, memory, now, plan)
        elif latest.state == EXITED and should_restart(pod, latest):
            _start(pod, spec, latest, everywhere, memory, now, plan)


def should_restart(pod: dict[str, Any], c: Container) -> bool:
    """restartPolicy: Always restarts every exit, OnFailure only a failure, Never none."""
    policy = pod["spec"].get("restartPolicy") or "Always"
    return policy == "Always" or (policy == "OnFailure" and c.exit_code != 0)


def _start(
    pod: dict[str, Any],
    spec: dict[str, Any],
    latest: Container | None,
    everywhere: Observed,
    memory: Memory,
    now: float,
    plan: Plan,
    *,
    init: bool = False,
) -> None:
    """Start the next instance of a container, unless a back-off or the pull policy says
    wait. `latest` is its newest instance in the current sandbox (None: never ran there)."""
    name = spec["name"]
    if latest is not None and latest.state == CREATED:
        # A start the kubelet did not finish (it was killed between create and start).
        plan.actions.append(RemoveContainer(latest.id, name))
        latest = None
    delay = _crash_back_off(latest, memory)
    waiting = (
        _in_crash_back_off(pod, name, latest, delay, now)
        or _in_failure_back_off(spec, memory, now)
        or _missing_never_pulled(spec, everywhere)
    )
    if waiting is not None:
        plan.waiting[name] = waiting
        return
    plan.actions.append(
        StartContainer(
            name,
            attempt=_next_attempt(everywhere, name),
            init=init,
            pull=_needs_pull(spec, everywhere),
            backoff=None if latest is None else _doubled(delay),
        )
    )


def _crash_back_off(latest: Container | None, memory: Memory) -> float | None:
    """The back-off that holds a restart, None when there is none: a first start, the
    first crash, or a container that ran 10 minutes before it exited."""
    if latest is None or latest.ran_for >= BACKOFF_RESET_AFTER:
        return None
    return memory.crash_backoff.get(latest.name)


def _doubled(delay: float | None) -> float:
    """The back-off for the next exit: 10 s after the first crash, then twice the last."""
    return INITIAL_BACKOFF if delay is None else min(delay * 2, MAX_BACKOFF)


def _in_crash_back_off(
    pod: dict[str, Any], name: str, latest: Container | None, delay: float | None, now: float
) -> Waiting | None:
    if latest is None or delay is None or now >= latest.finished_at + delay:
        return None
    return Waiting(
        "CrashLoopBackOff",
        f"back-off {go_duration(delay)} restarting failed container={name} pod={pod_ref(pod)}",
        until=latest.finished_at + delay,
    )


def _in_failure_back_off(spec: dict[str, Any], memory: Memory, now: float) -> Waiting | None:
    failure = memory.failures.get(spec["name"])
    if failure is None or now >= failure.at + failure.delay:
        return None
    return _failure_waiting(failure, spec, failure.at + failure.delay)


def _missing_never_pulled(spec: dict[str, Any], observed: Observed) -> Waiting | None:
    if pull_policy(spec) != "Never" or _present(spec, observed):
        return None
    image = spec.get("image", "")
    return Waiting(
        "ErrImageNeverPull", f'Container image "{image}" is not present with pull policy of Never'
    )


def _needs_pull(spec: dict[str, Any], observed: Observed) -> bool:
    """imagePullPolicy: Always pulls every time; IfNotPresent only when it is absent."""
    return pull_policy(spec) == "Always" or not _present(spec, observed)


def _present(spec: dict[str, Any], observed: Observed) -> bool:
    image = spec.get("image", "")
    return normalize_image(image) in observed.images or image in observed.images


def _next_attempt(observed: Observed, name: str) -> int:
    """metadata.attempt is the restart count: one more than the last instance that ran."""
    previous = observed.latest(name)
    return 0 if previous is None else previous.attempt + (previous.state == EXITED)


def _failure_waiting(failure: Failure, spec: dict[str, Any], until: float) -> Waiting:
    """While a failed pull waits for its back-off, Kubernetes says ImagePullBackOff."""
    if failure.reason == "ErrImagePull":
        image = spec.get("image", "")
        return Waiting("ImagePullBackOff", f'Back-off pulling image "{image}"', until=until)
    return Waiting(failure.reason, failure.message, until=until)


def next_failure(previous: Failure | None, reason: str, message: str, now: float) -> Failure:
    """Record a failed start: image pulls back off like crashes (10 s doubling to 5 min);
    a configuration error is retried on the next sync a few seconds later."""
    if reason != "ErrImagePull":
        return Failure(reason, message, now, delay=2.0)
    if previous is None or previous.reason != "ErrImagePull":
        return Failure(reason, message, now, delay=INITIAL_BACKOFF)
    return Failure(reason, message, now, delay=min(previous.delay * 2, MAX_BACKOFF))


def _prune(observed: Observed, plan: Plan) -> None:
    """Keep the current and the previous instance of each container; remove older ones."""
    for name in sorted({c.name for c in observed.containers}):
        for old in observed.instances(name)[KEEP_INSTANCES:]:
            if old.state == EXITED:
                plan.actions.append(RemoveContainer(old.id, name))


def _kill(c: Container, grace: int, message: str, *, pre_stop: bool = True) -> KillContainer:
    return KillContainer(c.id, c.name, grace, message, pre_stop=pre_stop and c.state == RUNNING)


# -- small facts the policy uses --------------------------------------------------------------


def past_active_deadline(pod: dict[str, Any], now: float) -> bool:
    """spec.activeDeadlineSeconds counts from status.startTime, as the kubelet's does."""
    deadline = pod["spec"].get("activeDeadlineSeconds")
    started = parse_time((pod.get("status") or {}).get("startTime"))
    return deadline is not None and started is not None and now >= started.timestamp() + deadline


def grace_period(pod: dict[str, Any], *, deleting: bool = True) -> int:
    """The deletion's grace period when it has one, else the pod's own."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    if deleting and meta.get("deletionGracePeriodSeconds") is not None:
        return int(meta["deletionGracePeriodSeconds"])
    value = spec.get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE if value is None else int(value)


def pull_policy(container: dict[str, Any]) -> str:
    """imagePullPolicy, defaulted as the API does: Always for `:latest` or no tag."""
    if container.get("imagePullPolicy"):
        return str(container["imagePullPolicy"])
    image = container.get("image", "")
    if "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def normalize_image(ref: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest`, as Docker names images."""
    name, at, digest = ref.partition("@")
    first, slash, _ = name.partition("/")
    if not slash:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if not at and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return f"{name}@{digest}" if at else name


def pod_ref(pod: dict[str, Any]) -> str:
    """`name_namespace(uid)`, as the kubelet names a pod in its messages."""
    meta = pod["metadata"]
    return f"{meta['name']}_{meta.get('namespace', 'default')}({meta.get('uid', '')})"


def go_duration(seconds: float) -> str:
    """10s, 1m20s, 5m0s: how Go prints a duration, as the back-off messages show it."""
    total = int(seconds)
    minutes, secs = divmod(total, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
