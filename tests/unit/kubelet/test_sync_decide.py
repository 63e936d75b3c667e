"""The kubelet's pod sync decisions, over tables of situations."""

from __future__ import annotations

from typing import Any

import pytest

from kubelet.observed import CREATED, EXITED, RUNNING, Container, Failure, Memory, Observed, Sandbox
from kubelet.sync import (
    ConfirmDeletion,
    CreateSandbox,
    FailPod,
    KillContainer,
    KillSandbox,
    ReleaseVolumes,
    RemoveContainer,
    RemoveSandbox,
    StartContainer,
    decide,
    go_duration,
    next_failure,
    normalize_image,
    pull_policy,
)

NOW = 1_800_000_000.0
BUSYBOX = frozenset({"docker.io/library/busybox:latest", "docker.io/library/busybox:1.36"})
SB = Sandbox("sb1", ready=True, ip="10.244.0.5")


def pod(
    *names: str,
    init: tuple[str, ...] = (),
    policy: str = "Always",
    deleting: int | None = None,
    phase: str = "",
    **container: Any,
) -> dict[str, Any]:
    def spec(name: str) -> dict[str, Any]:
        return {"name": name, "image": "busybox:1.36", **container}

    meta: dict[str, Any] = {"name": "web", "namespace": "default", "uid": "u1"}
    if deleting is not None:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        meta["deletionGracePeriodSeconds"] = deleting
    return {
        "metadata": meta,
        "spec": {
            "restartPolicy": policy,
            "initContainers": [spec(n) for n in init],
            "containers": [spec(n) for n in names or ("app",)],
        },
        "status": {"phase": phase} if phase else {},
    }


def c(
    name: str = "app",
    state: str = RUNNING,
    *,
    attempt: int = 0,
    code: int = 0,
    started: float = NOW - 60,
    finished: float = 0.0,
    sb: str = "sb1",
) -> Container:
    if state == EXITED and not finished:
        finished = NOW - 1
    return Container(
        id=f"{name}-{attempt}",
        name=name,
        attempt=attempt,
        state=state,
        sandbox_id=sb,
        started_at=started,
        finished_at=finished,
        exit_code=code,
    )


def seen(*containers: Container, sandboxes: tuple[Sandbox, ...] = (SB,)) -> Observed:
    return Observed(sandboxes=sandboxes, containers=containers, images=BUSYBOX)


def test_a_new_pod_gets_a_sandbox_first() -> None:
    assert decide(pod(), Observed(images=BUSYBOX), Memory(), NOW).actions == [CreateSandbox(0)]


def test_a_dead_sandbox_is_replaced_and_what_ran_in_it_stopped() -> None:
    dead = Sandbox("sb1", ready=False)
    plan = decide(pod(), seen(c(), sandboxes=(dead,)), Memory(), NOW)
    assert plan.actions == [
        KillContainer("app-0", "app", 0, "Stopping container app", pre_stop=False),
        KillSandbox("sb1"),
        CreateSandbox(1),
    ]


@pytest.mark.parametrize(
    ("observed", "actions"),
    [
        # the first init container runs first, alone
        (seen(), [StartContainer("one", 0, init=True, pull=True)]),
        # while it runs, nothing else starts
        (seen(c("one")), []),
        # once it succeeded, the second one
        (seen(c("one", EXITED)), [StartContainer("two", 0, init=True, pull=True)]),
        # both done: the app containers
        (seen(c("one", EXITED), c("two", EXITED)), [StartContainer("app", 0, pull=True)]),
        # a failed init container is retried (restartPolicy Always), the next one waits
        (
            seen(c("one", EXITED, code=1)),
            [StartContainer("one", 1, init=True, pull=True, backoff=10.0)],
        ),
    ],
)
def test_init_containers_run_in_order_and_each_must_succeed(
    observed: Observed, actions: list[Any]
) -> None:
    p = pod("app", init=("one", "two"), imagePullPolicy="Always")
    assert decide(p, observed, Memory(), NOW).actions == actions


def test_an_init_container_that_fails_under_never_fails_the_pod() -> None:
    p = pod("app", init=("one",), policy="Never")
    plan = decide(p, seen(c("one", EXITED, code=1)), Memory(), NOW)
    assert plan.actions == [KillSandbox("sb1")]  # finished: stopped, nothing starts


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("OnFailure", 0, False),
        ("OnFailure", 1, True),
        ("Never", 0, False),
        ("Never", 1, False),
    ],
)
def test_restart_policy(policy: str, code: int, restarts: bool) -> None:
    plan = decide(pod(policy=policy), seen(c(state=EXITED, code=code)), Memory(), NOW)
    starts = [a for a in plan.actions if isinstance(a, StartContainer)]
    assert bool(starts) == restarts
    if restarts:
        assert starts[0].attempt == 1  # metadata.attempt counts the restarts


@pytest.mark.parametrize(
    ("backoff", "exited_ago", "ran_for", "outcome"),
    [
        (None, 1, 5, ("start", 10.0)),  # the first crash restarts at once; next time wait 10 s
        (10.0, 1, 5, ("wait", "back-off 10s")),  # inside the back-off
        (10.0, 11, 5, ("start", 20.0)),  # back-off over: restart, and double it
        (160.0, 170, 5, ("start", 300.0)),  # capped at 5 minutes
        (300.0, 1, 5, ("wait", "back-off 5m0s")),
        (300.0, 1, 601, ("start", 10.0)),  # ran for 10 minutes: the back-off starts afresh
    ],
)
def test_crash_loop_back_off(
    backoff: float | None, exited_ago: float, ran_for: float, outcome: tuple[str, Any]
) -> None:
    finished = NOW - exited_ago
    crashed = c(state=EXITED, code=1, attempt=3, started=finished - ran_for, finished=finished)
    memory = Memory(crash_backoff={} if backoff is None else {"app": backoff})
    plan = decide(pod(imagePullPolicy="IfNotPresent"), seen(crashed), memory, NOW)
    kind, detail = outcome
    if kind == "start":
        assert plan.actions == [StartContainer("app", 4, backoff=detail)]
        assert plan.waiting == {}
    else:
        assert plan.actions == []
        waiting = plan.waiting["app"]
        assert waiting.reason == "CrashLoopBackOff"
        assert waiting.message == (f"{detail} restarting failed container=app pod=web_default(u1)")
        assert plan.requeue_at == finished + (backoff or 0)


def test_a_failed_liveness_probe_kills_the_container() -> None:
    memory = Memory(unhealthy={"app-0": "Container app failed liveness probe, will be restarted"})
    p = pod()
    p["spec"]["terminationGracePeriodSeconds"] = 5
    plan = decide(p, seen(c()), memory, NOW)
    assert plan.actions == [
        KillContainer("app-0", "app", 5, "Container app failed liveness probe, will be restarted")
    ]


def test_running_containers_are_left_alone() -> None:
    """A restarted kubelet adopts what runs: nothing is started or killed again."""
    assert decide(pod("a", "b"), seen(c("a"), c("b")), Memory(), NOW).actions == []


def test_graceful_deletion_stops_containers_then_confirms() -> None:
    deleting = pod(deleting=7)
    assert decide(deleting, seen(c()), Memory(), NOW).actions == [
        KillContainer("app-0", "app", 7, "Stopping container app")
    ]
    assert decide(deleting, seen(c(state=EXITED)), Memory(), NOW).actions == [
        KillSandbox("sb1"),
        ConfirmDeletion(),
    ]


def test_a_pod_gone_from_the_api_is_torn_down() -> None:
    running = decide(None, seen(c()), Memory(), NOW)
    assert running.actions == [KillContainer("app-0", "app", 2, "Stopping container app")]
    stopped = decide(None, seen(c(state=EXITED)), Memory(), NOW)
    assert stopped.actions == [
        RemoveContainer("app-0", "app"),
        RemoveSandbox("sb1"),
        ReleaseVolumes(),
    ]
    assert stopped.finished


def test_a_finished_pod_keeps_its_containers_and_is_not_restarted() -> None:
    plan = decide(pod(phase="Succeeded"), seen(c(state=EXITED)), Memory(), NOW)
    assert plan.actions == [KillSandbox("sb1")]


def test_only_the_current_and_previous_instances_are_kept() -> None:
    instances = [c(state=EXITED, attempt=n, code=1) for n in range(3)] + [c(attempt=3)]
    plan = decide(pod(), seen(*instances), Memory(), NOW)
    assert plan.actions == [RemoveContainer("app-1", "app"), RemoveContainer("app-0", "app")]


def test_a_start_the_kubelet_did_not_finish_is_redone() -> None:
    plan = decide(pod(imagePullPolicy="IfNotPresent"), seen(c(state=CREATED)), Memory(), NOW)
    assert plan.actions == [RemoveContainer("app-0", "app"), StartContainer("app", 0)]


def test_image_pull_back_off() -> None:
    failure = Failure("ErrImagePull", "not found", at=NOW - 2, delay=10)
    p = pod(image="registry.test/nothere:1")
    plan = decide(p, seen(), Memory(failures={"app": failure}), NOW)
    assert plan.actions == []
    assert plan.waiting["app"].reason == "ImagePullBackOff"
    assert plan.waiting["app"].message == 'Back-off pulling image "registry.test/nothere:1"'
    later = decide(p, seen(), Memory(failures={"app": failure}), NOW + 9)
    assert later.actions == [StartContainer("app", 0, pull=True)]


def test_a_missing_image_with_pull_policy_never_waits() -> None:
    p = pod(image="nothere:1", imagePullPolicy="Never")
    plan = decide(p, seen(), Memory(), NOW)
    assert plan.actions == []
    assert plan.waiting["app"].reason == "ErrImageNeverPull"


def test_failures_back_off() -> None:
    first = next_failure(None, "ErrImagePull", "x", NOW)
    second = next_failure(first, "ErrImagePull", "x", NOW + 10)
    assert (first.delay, second.delay) == (10.0, 20.0)
    assert next_failure(second, "CreateContainerConfigError", "y", NOW).delay == 2.0


@pytest.mark.parametrize(
    ("image", "normal", "policy"),
    [
        ("busybox", "docker.io/library/busybox:latest", "Always"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "IfNotPresent"),
        ("me/app:latest", "docker.io/me/app:latest", "Always"),
        ("localhost:5000/app:v1", "localhost:5000/app:v1", "IfNotPresent"),
        ("quay.io/x/y@sha256:ab", "quay.io/x/y@sha256:ab", "IfNotPresent"),
    ],
)
def test_image_names_and_default_pull_policy(image: str, normal: str, policy: str) -> None:
    assert normalize_image(image) == normal
    assert pull_policy({"image": image}) == policy


def test_go_durations() -> None:
    assert [go_duration(s) for s in (10, 80, 300)] == ["10s", "1m20s", "5m0s"]


def test_a_sidecar_starts_before_the_app_and_is_restarted_beside_it() -> None:
    p = pod("app", init=("proxy",), imagePullPolicy="IfNotPresent")
    p["spec"]["initContainers"][0]["restartPolicy"] = "Always"
    first = decide(p, seen(), Memory(), NOW)
    assert first.actions == [StartContainer("proxy", 0, init=True)]
    running = decide(p, seen(c("proxy")), Memory(), NOW)
    assert running.actions == [StartContainer("app", 0)]  # it runs: the app may start
    exited = decide(p, seen(c("proxy", EXITED, code=1), c("app")), Memory(), NOW)
    assert exited.actions == [StartContainer("proxy", 1, init=True, backoff=10.0)]


def test_a_pod_past_its_active_deadline_is_stopped_and_failed() -> None:
    p = pod()
    p["spec"]["activeDeadlineSeconds"] = 30
    p["spec"]["terminationGracePeriodSeconds"] = 5
    p["status"] = {"startTime": "2027-01-15T08:00:00Z"}  # NOW is 08:00:00 that day
    assert decide(p, seen(c()), Memory(), NOW + 29).actions == []
    plan = decide(p, seen(c()), Memory(), NOW + 30)
    assert plan.actions == [
        KillContainer("app-0", "app", 5, "Stopping container app"),
        KillSandbox("sb1"),
        FailPod(
            "DeadlineExceeded", "Pod was active on the node longer than the specified deadline"
        ),
    ]
