"""`skiff crictl stats`, `attach` and `port-forward`, as a user runs them on a node."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from proto import runtime_pb2 as pb
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[3]
HTTPD = (
    "mkdir -p /tmp/www && echo hello-through-crictl > /tmp/www/index.html"
    " && exec httpd -f -p 127.0.0.1:8080 -h /tmp/www"
)


def crictl_command(node: Any, *args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", "crictl", "-r", str(node.socket), *args]


def crictl(node: Any, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        crictl_command(node, *args), input=stdin, capture_output=True, cwd=ROOT, timeout=60
    )


def test_crictl_stats_and_attach(node: Any) -> None:
    sid = node.sandbox("crictl")
    reader = node.run(
        sid,
        "reader",
        ["sh", "-c", "read x; echo got $x; echo bye >&2; exit 4"],
        stdin=True,
        stdin_once=True,
    )
    stats = json.loads(crictl(node, "stats", "-o", "json", "--id", reader[:8]).stdout)["stats"]
    assert [s["name"] for s in stats] == ["reader"]
    assert stats[0]["memoryWorkingSetBytes"] > 0
    table = crictl(node, "stats", "-p", sid[:8]).stdout.decode().splitlines()
    assert table[0].split() == ["CONTAINER", "NAME", "CPU", "%", "MEM"]
    assert reader[:13] in table[1]
    # Piped input: sent, then closed (stdin_once), so the container reads it and exits.
    attached = crictl(node, "attach", "-i", reader[:8], stdin=b"hi\n")
    assert (attached.returncode, attached.stdout, attached.stderr) == (4, b"got hi\n", b"bye\n")


def test_crictl_port_forward(node: Any) -> None:
    sid = node.sandbox("forwarded")
    cid = node.run(sid, "httpd", ["sh", "-c", HTTPD])
    netstat = pb.ExecSyncRequest(container_id=cid, cmd=["netstat", "-lnt"])
    eventually(
        lambda: b":8080 " in node.api.ExecSync(netstat).stdout, 20, "httpd to listen", interval=0.1
    )
    forward = subprocess.Popen(
        crictl_command(node, "port-forward", sid[:8], "0:8080"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline().decode()
        assert line.startswith("Forwarding from 127.0.0.1:") and line.endswith(" -> 8080\n")
        port = int(line.split(":")[1].split()[0])
        with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
            conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
            answer = b""
            while data := conn.recv(65536):
                answer += data
        assert answer.startswith(b"HTTP/1.1 200 OK")
        assert answer.endswith(b"hello-through-crictl\n")
    finally:
        forward.terminate()
        forward.wait(timeout=10)


def _piped_yes(node: Any, *args: str) -> subprocess.CompletedProcess[bytes]:
    """`yes | skiff crictl ARGS`: input that never ends by itself."""
    return subprocess.run(
        "yes | " + shlex.join(crictl_command(node, *args)),
        shell=True,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
    )


def test_crictl_exit_code_while_stdin_still_flows(node: Any) -> None:
    """The command reads one line and exits while input keeps coming: crictl reports
    its output and exit code (the runtime's exit message is its last), not an error
    from the call's end racing the input still being written. A few runs each, as
    the race does not show every time."""
    script = "read x; echo got $x; exit 4"
    sid = node.sandbox("execin")
    cid = node.run(sid, "sleeper", ["sleep", "3600"])
    for _ in range(3):
        piped = _piped_yes(node, "exec", "-i", cid[:8], "sh", "-c", script)
        assert (piped.returncode, piped.stdout, piped.stderr) == (4, b"got y\n", b"")
    for i in range(2):
        reader = node.run(sid, f"reader{i}", ["sh", "-c", script], stdin=True)
        attached = _piped_yes(node, "attach", "-i", reader[:8])
        assert (attached.returncode, attached.stdout, attached.stderr) == (4, b"got y\n", b"")
