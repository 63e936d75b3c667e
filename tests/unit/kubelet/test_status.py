"""The pod status the kubelet reports, from tables of runtime observations."""

from __future__ import annotations

from typing import Any

import pytest

from kubelet.observed import CREATED, EXITED, RUNNING, Container, Failure, Memory, Observed, Sandbox
from kubelet.status import pod_phase, pod_status, rfc3339
from kubelet.sync import Waiting

NOW = 1_800_000_000.0
SB = Sandbox("sb1", ready=True, ip="10.244.0.5")


def pod(*names: str, init: tuple[str, ...] = (), policy: str = "Always", **c: Any) -> dict:
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {
            "restartPolicy": policy,
            "initContainers": [{"name": n, "image": "busybox"} for n in init],
            "containers": [{"name": n, "image": "busybox", **c} for n in names or ("app",)],
        },
        "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]},
    }


def inst(
    name: str = "app", state: str = RUNNING, *, attempt: int = 0, code: int = 0, reason: str = ""
) -> Container:
    return Container(
        id=f"{name}-{attempt}",
        name=name,
        attempt=attempt,
        state=state,
        sandbox_id="sb1",
        started_at=NOW - 30,
        finished_at=NOW - 10 if state == EXITED else 0.0,
        exit_code=code,
        reason=reason,
        image="docker.io/library/busybox:latest",
        image_ref="sha256:abc",
    )


def seen(*containers: Container) -> Observed:
    return Observed(sandboxes=(SB,), containers=containers)


def conditions(status: dict) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


@pytest.mark.parametrize(
    ("spec", "observed", "phase"),
    [
        (pod(), Observed(), "Pending"),
        (pod(), seen(inst(state=CREATED)), "Pending"),
        (pod(), seen(inst()), "Running"),
        (pod(policy="Always"), seen(inst(state=EXITED)), "Running"),  # about to restart
        (pod(policy="OnFailure"), seen(inst(state=EXITED)), "Succeeded"),
        (pod(policy="OnFailure"), seen(inst(state=EXITED, code=1)), "Running"),
        (pod(policy="Never"), seen(inst(state=EXITED, code=1)), "Failed"),
        (pod("a", "b", policy="Never"), seen(inst("a", EXITED), inst("b")), "Running"),
        (pod(init=("i",)), seen(inst("i")), "Pending"),
        (pod(init=("i",), policy="Never"), seen(inst("i", EXITED, code=2)), "Failed"),
    ],
)
def test_phase(spec: dict, observed: Observed, phase: str) -> None:
    assert pod_phase(spec, observed) == phase


def test_a_running_pod() -> None:
    status = pod_status(pod(), seen(inst()), Memory(), {}, host_ip="192.0.2.1", now=NOW)
    assert status["phase"] == "Running"
    assert conditions(status) == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    assert status["podIP"] == "10.244.0.5" and status["podIPs"] == [{"ip": "10.244.0.5"}]
    assert status["hostIP"] == "192.0.2.1"
    assert status["qosClass"] == "BestEffort"
    (c,) = status["containerStatuses"]
    assert c == {
        "name": "app",
        "image": "busybox",
        "imageID": "sha256:abc",
        "containerID": "skiff://app-0",
        "restartCount": 0,
        "ready": True,
        "started": True,
        "lastState": {},
        "state": {"running": {"startedAt": rfc3339(NOW - 30)}},
    }


def test_readiness_probe_gates_ready() -> None:
    spec = pod(readinessProbe={"exec": {"command": ["true"]}})
    unready = pod_status(spec, seen(inst()), Memory(), {}, host_ip="h", now=NOW)
    assert conditions(unready)["Ready"] == "False"
    ready_condition = next(c for c in unready["conditions"] if c["type"] == "Ready")
    assert ready_condition["reason"] == "ContainersNotReady"
    assert ready_condition["message"] == "containers with unready status: [app]"
    ready = pod_status(spec, seen(inst()), Memory(ready={"app-0": True}), {}, host_ip="h", now=NOW)
    assert conditions(ready)["Ready"] == "True"


def test_a_crash_looping_container() -> None:
    waiting = {"app": Waiting("CrashLoopBackOff", "back-off 20s restarting failed container")}
    observed = seen(inst(state=EXITED, attempt=2, code=1), inst(state=EXITED, attempt=1, code=1))
    status = pod_status(pod(), observed, Memory(), waiting, host_ip="h", now=NOW)
    (c,) = status["containerStatuses"]
    assert c["state"] == {
        "waiting": {
            "reason": "CrashLoopBackOff",
            "message": "back-off 20s restarting failed container",
        }
    }
    assert c["lastState"]["terminated"]["exitCode"] == 1
    assert c["lastState"]["terminated"]["reason"] == "Error"
    assert c["restartCount"] == 2


def test_oom_killed_and_previous_instance() -> None:
    observed = seen(inst(attempt=1), inst(state=EXITED, code=137, reason="OOMKilled"))
    (c,) = pod_status(pod(), observed, Memory(), {}, host_ip="h", now=NOW)["containerStatuses"]
    assert "running" in c["state"]
    assert c["lastState"]["terminated"]["reason"] == "OOMKilled"


def test_failures_show_as_waiting_reasons() -> None:
    memory = Memory(
        failures={"app": Failure("CreateContainerConfigError", 'configmap "x" not found', NOW)}
    )
    status = pod_status(pod(), seen(), memory, {}, host_ip="h", now=NOW)
    assert status["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'configmap "x" not found'}
    }
    assert status["phase"] == "Pending"


def test_app_containers_wait_for_init_containers() -> None:
    status = pod_status(pod(init=("i",)), seen(inst("i")), Memory(), {}, host_ip="h", now=NOW)
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False"
    assert initialized["message"] == "containers with incomplete status: [i]"


def test_transition_times_move_only_when_a_condition_changes() -> None:
    first = pod(readinessProbe={"exec": {"command": ["true"]}})
    first["status"] = pod_status(first, seen(inst()), Memory(), {}, host_ip="h", now=NOW)
    again = pod_status(first, seen(inst()), Memory(), {}, host_ip="h", now=NOW + 50)
    assert again == first["status"]  # nothing changed: nothing to write
    ready = pod_status(
        first, seen(inst()), Memory(ready={"app-0": True}), {}, host_ip="h", now=NOW + 60
    )
    times = {c["type"]: c.get("lastTransitionTime") for c in ready["conditions"]}
    assert times["Ready"] == rfc3339(NOW + 60)
    assert times["Initialized"] == rfc3339(NOW)


def test_a_finished_pod_says_pod_completed() -> None:
    status = pod_status(
        pod(policy="Never"), seen(inst(state=EXITED)), Memory(), {}, host_ip="h", now=NOW
    )
    assert status["phase"] == "Succeeded"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert status["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"


def test_a_failed_pod_says_why() -> None:
    status = pod_status(
        pod(),
        seen(inst(state=EXITED, code=137)),
        Memory(),
        {},
        host_ip="h",
        now=NOW,
        failed=("DeadlineExceeded", "Pod was active too long"),
    )
    assert (status["phase"], status["reason"]) == ("Failed", "DeadlineExceeded")
    assert status["message"] == "Pod was active too long"
