"""Pods on a real node: the kubelet runs them through the runtime and reports what a
user checks with kubectl."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from kubelet.config import POD_NAME

from .conftest import (
    Node,
    busybox,
    condition,
    container_status,
    create,
    events,
    make_pod,
    status_of,
    wait_for,
)


def test_a_pod_runs_is_ready_and_answers_on_its_ip(node: Node, ns: str) -> None:
    web = busybox(
        "web",
        "sh",
        "-c",
        "hostname > /tmp/index.html; httpd -f -p 8080 -h /tmp",
        ports=[{"containerPort": 8080}],
    )
    create(node, ns, make_pod("web", web))
    status = wait_for(
        lambda: (
            (s := status_of(node, ns, "web")).get("phase") == "Running"
            and condition(s, "Ready") == "True"
            and s
        ),
        "the pod to be Running and Ready",
    )
    ip = status["podIP"]
    assert ip.startswith("10.244.")
    assert status["hostIP"] == "127.0.0.1"
    assert status["qosClass"] == "BestEffort"
    web_status = container_status(node, ns, "web", "web")
    assert web_status["ready"] and web_status["started"]
    assert web_status["containerID"].startswith("skiff://")
    assert web_status["restartCount"] == 0

    # The pod's address answers from the node, and the pod knows its own hostname.
    def fetch() -> str:
        with socket.create_connection((ip, 8080), timeout=5) as s:
            s.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
            return reply.decode()

    answer = wait_for(fetch, "an answer from the pod")
    assert answer.rstrip().endswith("web")
    out = node.kubectl("get", "pods", "-n", ns, "-o", "wide")
    assert "Running" in out and ip in out and "node-1" in out


def test_crash_loop_backs_off_longer_each_time(node: Node, ns: str) -> None:
    create(node, ns, make_pod("crash", busybox("crash", "sh", "-c", "exit 3")))
    seen: list[str] = []

    def back_offs() -> list[str]:
        waiting = container_status(node, ns, "crash", "crash").get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff" and waiting["message"] not in seen:
            seen.append(waiting["message"])
        return seen if any("back-off 20s" in m for m in seen) else []

    wait_for(back_offs, "a back-off of 20 s", timeout=90)
    assert "back-off 10s" in seen[0]
    c = container_status(node, ns, "crash", "crash")
    assert c["restartCount"] >= 2
    assert c["lastState"]["terminated"]["exitCode"] == 3
    assert c["lastState"]["terminated"]["reason"] == "Error"
    assert status_of(node, ns, "crash")["phase"] == "Running"
    reasons = {e["reason"] for e in events(node, ns, "crash")}
    assert {"Pulled", "Created", "Started", "BackOff"} <= reasons
    # What a user sees with kubectl.
    row = node.kubectl("get", "pod", "crash", "-n", ns, "--no-headers").split()
    assert row[2] in ("CrashLoopBackOff", "Error") and int(row[3]) >= 2
    described = node.kubectl("describe", "pod", "crash", "-n", ns)
    assert "Back-off restarting failed container crash" in described
    assert "Exit Code:    3" in described


@pytest.mark.parametrize(
    ("policy", "code", "phase", "restarts"),
    [
        ("OnFailure", 0, "Succeeded", False),
        ("OnFailure", 1, "Running", True),
        ("Never", 1, "Failed", False),
    ],
)
def test_restart_policies(
    node: Node, ns: str, policy: str, code: int, phase: str, restarts: bool
) -> None:
    name = f"p-{policy.lower()}-{code}"
    command = f"sleep 1; exit {code}"
    create(node, ns, make_pod(name, busybox("c", "sh", "-c", command), restartPolicy=policy))
    if restarts:
        wait_for(
            lambda: container_status(node, ns, name, "c").get("restartCount", 0) >= 1, "a restart"
        )
        return
    status = wait_for(
        lambda: (s := status_of(node, ns, name)).get("phase") == phase and s, f"phase {phase}"
    )
    c = status["containerStatuses"][0]
    assert c["restartCount"] == 0
    assert c["state"]["terminated"]["exitCode"] == code
    assert c["state"]["terminated"]["reason"] == ("Completed" if code == 0 else "Error")
    assert condition(status, "Ready") == "False"


def test_a_memory_hog_is_reported_oomkilled(node: Node, ns: str) -> None:
    hog = busybox(
        "hog",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/null bs=200M count=1",
        resources={"limits": {"memory": "20Mi"}},
    )
    create(node, ns, make_pod("hog", hog, restartPolicy="Never"))
    status = wait_for(
        lambda: (s := status_of(node, ns, "hog")).get("phase") == "Failed" and s, "the pod to fail"
    )
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled"
    assert status["qosClass"] == "Burstable"


def test_a_failing_liveness_probe_restarts_the_container(node: Node, ns: str) -> None:
    probed = busybox(
        "app",
        "sh",
        "-c",
        "touch /tmp/alive; sleep 2; rm /tmp/alive; sleep 3600",
        livenessProbe={
            "exec": {"command": ["cat", "/tmp/alive"]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    )
    create(node, ns, make_pod("live", probed, terminationGracePeriodSeconds=1))
    wait_for(
        lambda: container_status(node, ns, "live", "app").get("restartCount", 0) >= 1,
        "a restart after the liveness probe failed",
    )
    messages = [(e["reason"], e["message"]) for e in events(node, ns, "live")]
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in messages)
    assert ("Killing", "Container app failed liveness probe, will be restarted") in messages


def test_readiness_flips_ready_and_the_endpoints(node: Node, ns: str) -> None:
    probed = busybox(
        "app", readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1}
    )
    pod = make_pod("ready", probed)
    pod["metadata"]["labels"] = {"app": "ready"}
    create(node, ns, pod)
    with node.api() as api:
        api.post(
            f"/api/v1/namespaces/{ns}/services",
            json={
                "metadata": {"name": "ready"},
                "spec": {"selector": {"app": "ready"}, "ports": [{"port": 80}]},
            },
        )

        def endpoints() -> dict[str, Any]:
            r = api.get(f"/api/v1/namespaces/{ns}/endpoints/ready")
            return r.json() if r.status_code == 200 else {}

        def addresses(kind: str) -> list[str]:
            return [a["ip"] for s in endpoints().get("subsets") or [] for a in s.get(kind) or []]

        running = wait_for(
            lambda: (s := status_of(node, ns, "ready")).get("phase") == "Running" and s, "Running"
        )
        ip = running["podIP"]
        assert condition(running, "Ready") == "False"
        wait_for(lambda: ip in addresses("notReadyAddresses"), "a not-ready endpoint")
        cid = container_status(node, ns, "ready", "app")["containerID"].split("://")[1]
        node.exec(cid, "touch", "/tmp/ready")
        wait_for(lambda: condition(status_of(node, ns, "ready"), "Ready") == "True", "Ready")
        wait_for(lambda: ip in addresses("addresses"), "a ready endpoint")
        # Another pod's syncs leave this pod's probes alone.
        create(node, ns, make_pod("bystander", busybox("c")))
        wait_for(lambda: status_of(node, ns, "bystander").get("phase") == "Running", "Running")
        node.exec(cid, "rm", "/tmp/ready")
        wait_for(lambda: condition(status_of(node, ns, "ready"), "Ready") == "False", "unready")
        wait_for(lambda: ip in addresses("notReadyAddresses"), "the endpoint not ready again")


def test_init_containers_run_in_order_before_the_app(node: Node, ns: str) -> None:
    mount = [{"name": "work", "mountPath": "/work"}]
    pod = make_pod(
        "init",
        busybox("app", "sh", "-c", "echo app >> /work/order; sleep 3600", volumeMounts=mount),
        initContainers=[
            busybox("one", "sh", "-c", "sleep 1; echo one >> /work/order", volumeMounts=mount),
            busybox("two", "sh", "-c", "echo two >> /work/order", volumeMounts=mount),
        ],
        volumes=[{"name": "work", "emptyDir": {}}],
    )
    create(node, ns, pod)
    status = wait_for(
        lambda: (s := status_of(node, ns, "init")).get("phase") == "Running" and s, "Running"
    )
    assert condition(status, "Initialized") == "True"
    assert [c["state"]["terminated"]["reason"] for c in status["initContainerStatuses"]] == [
        "Completed",
        "Completed",
    ]
    cid = container_status(node, ns, "init", "app")["containerID"].split("://")[1]
    assert wait_for(
        lambda: node.exec(cid, "cat", "/work/order") == "one\ntwo\napp\n" and True, "the order file"
    )


def test_graceful_deletion_runs_prestop_then_sigterm_then_sigkill(node: Node, ns: str) -> None:
    hooks = node.base / f"hooks-{ns}"
    hooks.mkdir()
    stubborn = busybox(
        "app",
        "sh",
        "-c",
        "trap 'echo TERM >> /h/log' TERM; while true; do sleep 1; done",
        volumeMounts=[{"name": "h", "mountPath": "/h"}],
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /h/log"]}}},
    )
    pod = make_pod(
        "grace",
        stubborn,
        terminationGracePeriodSeconds=3,
        volumes=[{"name": "h", "hostPath": {"path": str(hooks)}}],
    )
    create(node, ns, pod)
    wait_for(lambda: status_of(node, ns, "grace").get("phase") == "Running", "Running")
    with node.api() as api:
        api.delete(f"/api/v1/namespaces/{ns}/pods/grace")
    # Still there while it terminates: the kubelet confirms only once everything stopped.
    assert node.pod(ns, "grace") is not None
    wait_for(lambda: node.pod(ns, "grace") is None, "the pod to be gone", timeout=60)
    assert (hooks / "log").read_text().splitlines()[:2] == ["prestop", "TERM"]
    # The kubelet removes the stopped containers in its cleanup after the API delete.
    wait_for(
        lambda: not [c for c in node.containers() if c.labels.get(POD_NAME) == "grace"],
        "the pod's containers to be removed",
    )


def test_waiting_reasons_say_what_is_wrong_and_the_node_stays_ready(node: Node, ns: str) -> None:
    create(node, ns, make_pod("noimage", {"name": "c", "image": "127.0.0.1:1/nothere:1"}))
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]
    create(node, ns, make_pod("badenv", busybox("c", env=env)))
    volume = [{"name": "v", "configMap": {"name": "nope"}}]
    create(node, ns, make_pod("badvolume", busybox("c"), volumes=volume))

    def waiting(name: str) -> dict[str, Any]:
        return container_status(node, ns, name, "c").get("state", {}).get("waiting") or {}

    pull = wait_for(
        lambda: (
            (w := waiting("noimage")).get("reason") in ("ErrImagePull", "ImagePullBackOff") and w
        ),
        "a pull error",
    )
    assert "127.0.0.1:1/nothere:1" in pull["message"]
    bad_env = wait_for(
        lambda: (w := waiting("badenv")).get("reason") == "CreateContainerConfigError" and w,
        "a config error",
    )
    assert bad_env["message"] == 'configmap "nope" not found'
    mount = wait_for(
        lambda: [e for e in events(node, ns, "badvolume") if e["reason"] == "FailedMount"],
        "FailedMount",
    )
    assert 'configmap "nope" not found' in mount[0]["message"]
    assert waiting("badvolume").get("reason") in ("ContainerCreating", None)
    assert status_of(node, ns, "badvolume")["phase"] == "Pending"
    with node.api() as api:
        n = api.get("/api/v1/nodes/node-1").json()
    assert {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"] == "True"


def test_config_and_secrets_reach_the_container(node: Node, ns: str) -> None:
    with node.api() as api:
        cm = {"metadata": {"name": "settings"}, "data": {"greeting": "hello", "mode": "fast"}}
        assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm).status_code == 201
        secret = {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}
        assert api.post(f"/api/v1/namespaces/{ns}/secrets", json=secret).status_code == 201
    shared = {"name": "shared", "mountPath": "/shared"}
    app = busybox(
        "app",
        "sh",
        "-c",
        "echo $(GREETING) > /shared/greeting; echo from-app > /shared/note; sleep 3600",
        env=[
            {
                "name": "GREETING",
                "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}},
            },
            {
                "name": "PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}},
            },
            {"name": "MESSAGE", "value": "$(GREETING) world"},
        ],
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CM_"}],
        volumeMounts=[
            shared,
            {"name": "settings", "mountPath": "/etc/settings"},
            {"name": "creds", "mountPath": "/etc/creds"},
        ],
    )
    sidecar = busybox("sidecar", volumeMounts=[shared])
    pod = make_pod(
        "configured",
        app,
        sidecar,
        volumes=[
            {"name": "shared", "emptyDir": {}},
            {"name": "settings", "configMap": {"name": "settings"}},
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        ],
    )
    create(node, ns, pod)
    wait_for(lambda: condition(status_of(node, ns, "configured"), "Ready") == "True", "Ready")
    app_id = container_status(node, ns, "configured", "app")["containerID"].split("://")[1]
    side_id = container_status(node, ns, "configured", "sidecar")["containerID"].split("://")[1]
    env = dict(line.split("=", 1) for line in node.exec(app_id, "env").splitlines() if "=" in line)
    assert env["GREETING"] == "hello" and env["PASSWORD"] == "s3cret"
    assert env["MESSAGE"] == "hello world" and env["CM_mode"] == "fast"
    assert env["KUBERNETES_SERVICE_HOST"] and env["KUBERNETES_SERVICE_PORT"] == "443"
    # `$(VAR)` in the command took the environment too.
    assert node.exec(app_id, "cat", "/shared/greeting") == "hello\n"
    assert wait_for(lambda: node.exec(side_id, "cat", "/shared/note"), "the shared note") == (
        "from-app\n"
    )
    assert node.exec(app_id, "cat", "/etc/creds/password") == "s3cret"
    mode = node.exec(app_id, "stat", "-L", "-c", "%a", "/etc/creds/password").strip()
    assert mode == "400"
    assert node.exec(app_id, "cat", "/etc/settings/greeting") == "hello"
    with node.api() as api:
        patch = {"data": {"greeting": "bonjour"}}
        r = api.patch(
            f"/api/v1/namespaces/{ns}/configmaps/settings",
            json=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert r.status_code == 200, r.text
    wait_for(
        lambda: node.exec(app_id, "cat", "/etc/settings/greeting") == "bonjour",
        "the configMap volume to follow the change",
    )


def test_a_host_network_pod_uses_the_node_address(node: Node, ns: str) -> None:
    web = busybox("web", "sh", "-c", "echo host > /tmp/i; httpd -f -p 18080 -h /tmp")
    create(node, ns, make_pod("hostnet", web, hostNetwork=True))
    status = wait_for(
        lambda: (s := status_of(node, ns, "hostnet")).get("phase") == "Running" and s, "Running"
    )
    assert status["podIP"] == status["hostIP"] == "127.0.0.1"

    def fetch() -> str:
        with socket.create_connection(("127.0.0.1", 18080), timeout=5) as s:
            s.sendall(b"GET /i HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
            return reply.decode()

    assert wait_for(fetch, "an answer on the node's port").rstrip().endswith("host")


def test_run_as_non_root_refuses_a_root_image(node: Node, ns: str) -> None:
    c = busybox("c", securityContext={"runAsNonRoot": True})
    create(node, ns, make_pod("nonroot", c))
    waiting = wait_for(
        lambda: (
            container_status(node, ns, "nonroot", "c")
            .get("state", {})
            .get("waiting", {})
            .get("reason")
            == "CreateContainerConfigError"
            and container_status(node, ns, "nonroot", "c")["state"]["waiting"]
        ),
        "CreateContainerConfigError",
    )
    assert waiting["message"].startswith("container has runAsNonRoot and image will run as root")
    # As another user it runs.
    ok = busybox("c", securityContext={"runAsNonRoot": True, "runAsUser": 1000})
    create(node, ns, make_pod("asuser", ok))
    wait_for(lambda: status_of(node, ns, "asuser").get("phase") == "Running", "Running")
    cid = container_status(node, ns, "asuser", "c")["containerID"].split("://")[1]
    assert node.exec(cid, "id", "-u").strip() == "1000"


def test_kubectl_logs_and_exec_reach_the_pod_through_the_kubelet(node: Node, ns: str) -> None:
    """Through the apiserver's relay to this kubelet's HTTPS API."""
    create(node, ns, make_pod("talk", busybox("c", "sh", "-c", "echo hello-from-talk; sleep 3600")))
    wait_for(lambda: status_of(node, ns, "talk").get("phase") == "Running", "Running")
    logs = wait_for(
        lambda: (
            "hello-from-talk" in (out := node.kubectl("logs", "-n", ns, "talk", check=False))
            and out
        ),
        "kubectl logs",
    )
    assert "hello-from-talk" in logs
    assert node.kubectl("exec", "-n", ns, "talk", "--", "hostname").strip() == "talk"


def test_a_pod_with_a_subdomain_knows_its_fqdn_and_its_host_aliases(node: Node, ns: str) -> None:
    """As a StatefulSet's pods are made (hostname + the headless Service as subdomain):
    /etc/hosts names the pod by its FQDN first, so `hostname -f` prints it (the
    kubelet's hosts file), and hostAliases are appended."""
    pod = make_pod(
        "fqdn",
        busybox("c"),
        hostname="db-0",
        subdomain="db",
        hostAliases=[{"ip": "10.1.2.3", "hostnames": ["legacy.example", "legacy"]}],
    )
    create(node, ns, pod)
    wait_for(lambda: status_of(node, ns, "fqdn").get("phase") == "Running", "Running")
    fqdn = f"db-0.db.{ns}.svc.cluster.local"
    assert node.kubectl("exec", "-n", ns, "fqdn", "--", "hostname").strip() == "db-0"
    assert node.kubectl("exec", "-n", ns, "fqdn", "--", "hostname", "-f").strip() == fqdn
    hosts = node.kubectl("exec", "-n", ns, "fqdn", "--", "cat", "/etc/hosts").splitlines()
    ip = status_of(node, ns, "fqdn")["podIP"]
    assert f"{ip}\t{fqdn}\tdb-0" in hosts
    assert hosts[-2:] == ["# Entries added by HostAliases.", "10.1.2.3\tlegacy.example legacy"]


def test_active_deadline_fails_the_pod(node: Node, ns: str) -> None:
    create(
        node,
        ns,
        make_pod(
            "deadline", busybox("c"), activeDeadlineSeconds=3, terminationGracePeriodSeconds=1
        ),
    )
    status = wait_for(
        lambda: (s := status_of(node, ns, "deadline")).get("phase") == "Failed" and s, "Failed"
    )
    assert status["reason"] == "DeadlineExceeded"
    wait_for(
        lambda: "terminated" in container_status(node, ns, "deadline", "c").get("state", {}),
        "the container to be stopped",
    )


def test_termination_messages(node: Node, ns: str) -> None:
    written = busybox("c", "sh", "-c", "echo went wrong > /dev/termination-log; exit 2")
    create(node, ns, make_pod("message", written, restartPolicy="Never"))
    logged = busybox(
        "c",
        "sh",
        "-c",
        "echo oops-in-log; exit 1",
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    create(node, ns, make_pod("fallback", logged, restartPolicy="Never"))
    for name, message in (("message", "went wrong\n"), ("fallback", "oops-in-log\n")):
        status = wait_for(
            lambda n=name: (s := status_of(node, ns, n)).get("phase") == "Failed" and s, "Failed"
        )
        terminated = status["containerStatuses"][0]["state"]["terminated"]
        assert terminated["message"] == message
