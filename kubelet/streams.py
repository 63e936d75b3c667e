"""Kubernetes' WebSocket channel protocol (`v4.channel.k8s.io`, `v5.channel.k8s.io`).

Exec, attach and the plain-WebSocket form of port-forward multiplex their
streams over one WebSocket: every binary message starts with a channel byte.

    exec / attach:  0 stdin   1 stdout   2 stderr   3 error (a metav1 Status, last)
                    4 resize (JSON {"Width": w, "Height": h})
                    255 close (v5 only): the next byte names a channel the
                    client will not write to again, i.e. stdin's end of file
    port-forward:   for the n-th port of `?ports=`: 2n data, 2n+1 error; the first
                    message the server sends on each is the channel byte then the
                    port, two bytes little-endian

The error channel carries how the command ended: `Success`, or `Failure` with
reason `NonZeroExitCode` and the code as an `ExitCode` cause, from which
kubectl and client-go take their own exit code.
"""

from __future__ import annotations

import json
from typing import Any

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
CHANNEL_PROTOCOLS = (V5, V4)
SPDY_PORTFORWARD = "SPDY/3.1+portforward.k8s.io"

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255


def choose(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The first protocol of ours the client offered (ours in order of preference)."""
    for protocol in supported:
        if protocol in offered:
            return protocol
    return None


def frame(channel: int, data: bytes) -> bytes:
    return bytes([channel]) + data


def parse(message: bytes) -> tuple[int, bytes] | None:
    if not message:
        return None
    return message[0], message[1:]


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a resize message, or None if it is not one."""
    try:
        size = json.loads(data)
        return int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None


def success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """How a command ended, as the kubelet reports it on the error channel."""
    if code == 0:
        return success()
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: error executing command "
            f"{_go_list(command)}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def failure(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
        "details": {"causes": [{"message": message}]},
    }


def status_frame(status: dict[str, Any]) -> bytes:
    return frame(ERROR, json.dumps(status, separators=(",", ":")).encode())


def port_header(channel: int, port: int) -> bytes:
    return frame(channel, port.to_bytes(2, "little"))


def _go_list(items: list[str]) -> str:
    """Go's %v of a []string: `[sh -c exit 3]`."""
    return "[" + " ".join(items) + "]"
