"""Pods on a real node: the kubelet runs them through the runtime and reports what a
user checks with kubectl."""

from __future__ import annotations

import socket

from .conftest import (
    Node,
    busybox,
    condition,
    container_status,
    create,
    make_pod,
    status_of,
    wait_for,
)


def test_a_pod_runs_is_ready_and_answers_on_its_ip(node: Node, ns: str) -> None:
    web = busybox(
        "web",
        "sh", "-c", "hostname > /tmp/index.html; httpd -f -p 8080 -h /tmp",
        ports=[{"containerPort": 8080}],
    )  # fmt: skip
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
            return s.recv(4096).decode()

    answer = wait_for(fetch, "an answer from the pod")
    assert answer.rstrip().endswith("web")
    out = node.kubectl("get", "pods", "-n", ns, "-o", "wide")
    assert "Running" in out and ip in out and "node-1" in out
