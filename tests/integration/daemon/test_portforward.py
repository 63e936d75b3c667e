"""PortForward, as `kubectl port-forward` uses it: bytes both ways to a server that
listens on the pod's own loopback, half-closes in both directions, and a readable
error for a port nobody listens on."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from proto import runtime_pb2 as pb
from tests.polling import eventually

HTTPD = (
    "mkdir -p /tmp/www && echo hello-from-the-pod > /tmp/www/index.html"
    " && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"
)
REQUEST = b"GET /index.html HTTP/1.0\r\nHost: localhost\r\n\r\n"


class Forward:
    def __init__(self, api: Any, **first: Any) -> None:
        self.inputs: queue.Queue[Any] = queue.Queue()
        self.inputs.put(pb.PortForwardInput(**first))
        self.outputs = api.PortForward(self._requests(), timeout=30)

    def _requests(self) -> Iterator[Any]:
        while (message := self.inputs.get()) is not None:
            yield message

    def send(self, **fields: Any) -> None:
        self.inputs.put(pb.PortForwardInput(**fields))

    def end(self) -> None:
        self.inputs.put(None)

    def receive_all(self) -> tuple[bytes, bool, str]:
        """(data, whether the pod's side closed, error) once the stream has ended."""
        data, closed, error = b"", False, ""
        for out in self.outputs:
            data += out.data
            closed = closed or out.closed
            error = error or out.error
        return data, closed, error


def wait_listening(node: Any, cid: str, port: int) -> None:
    """Until the server in the container accepts connections (netstat inside the pod)."""
    netstat = pb.ExecSyncRequest(container_id=cid, cmd=["netstat", "-lnt"])
    eventually(
        lambda: f":{port} ".encode() in node.api.ExecSync(netstat).stdout,
        20,
        lambda: f"port {port} listening: {node.api.ExecSync(netstat).stdout.decode()}",
        interval=0.1,
    )


def test_port_forward_reaches_a_server_on_the_pods_loopback(node: Any) -> None:
    sid = node.sandbox("web")
    cid = node.run(sid, "httpd", ["sh", "-c", HTTPD])
    wait_listening(node, cid, 8080)
    # The client sends its request and half-closes; the whole answer still comes back.
    forward = Forward(node.api, pod_sandbox_id=sid, port=8080, data=REQUEST)
    forward.send(close=True)
    data, closed, error = forward.receive_all()
    assert error == ""
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"hello-from-the-pod\n")
    assert closed  # httpd closed its side after answering
    # A client that does not close: the pod's side ends the stream once it is done.
    forward = Forward(node.api, pod_sandbox_id=sid, port=8080)
    for piece in (REQUEST[:10], REQUEST[10:]):  # data after the first message too
        forward.send(data=piece)
    data, closed, error = forward.receive_all()
    assert closed and error == "" and b"hello-from-the-pod" in data
    # 127.0.0.1 is the pod's own: the node's loopback has no such server.
    forward = Forward(node.api, pod_sandbox_id=sid, port=8081, data=REQUEST)
    forward.end()
    data, closed, error = forward.receive_all()
    assert data == b""
    assert error == (
        f"failed to connect to localhost:8081 inside namespace {sid!r}: connection refused"
    )


def test_port_forward_echoes_both_ways_and_reports_bad_requests(node: Any) -> None:
    sid = node.sandbox("echo")
    cid = node.run(sid, "echo", ["nc", "-l", "-p", "9000", "-e", "cat"])
    wait_listening(node, cid, 9000)
    forward = Forward(node.api, pod_sandbox_id=sid, port=9000, data=b"ping\n")
    first = next(forward.outputs)
    assert first.data == b"ping\n"
    forward.send(data=b"pong\n", close=True)  # cat sees end-of-file, and so ends its side
    data, closed, error = forward.receive_all()
    assert (data, closed, error) == (b"pong\n", True, "")
    with pytest.raises(grpc.RpcError) as e:
        Forward(node.api, pod_sandbox_id="no-such-pod", port=80).receive_all()
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        Forward(node.api, pod_sandbox_id=sid, port=70000).receive_all()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
