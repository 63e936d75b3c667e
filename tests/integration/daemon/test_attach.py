"""Attach, as `kubectl attach` and `kubectl run -it` use it: a container created with
`stdin: true` keeps its stdin open for later sessions; every session gets the output
from the moment it attached; `stdin_once` ends stdin with the first session; a
terminal is resized; and a killed and restarted daemon attaches again."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from proto import runtime_pb2 as pb
from tests.polling import eventually


class Session:
    """One Attach stream: messages are sent as the test goes, output is read on demand."""

    def __init__(self, api: Any, **first: Any) -> None:
        self.inputs: queue.Queue[Any] = queue.Queue()
        self.inputs.put(pb.AttachInput(**first))
        self.outputs = api.Attach(self._requests(), timeout=60)
        self.stdout, self.stderr = b"", b""
        self.exit_code: int | None = None

    def _requests(self) -> Iterator[Any]:
        while (message := self.inputs.get()) is not None:
            yield message

    def send(self, **fields: Any) -> None:
        self.inputs.put(pb.AttachInput(**fields))

    def read_until(self, text: bytes) -> bytes:
        """Output until `text` has come (the RPC's deadline bounds the wait)."""
        while text not in self.stdout:
            self._next()
        return self.stdout

    def wait_exit(self) -> int:
        while self.exit_code is None:
            self._next()
        return self.exit_code

    def _next(self) -> None:
        out = next(self.outputs)
        self.stdout += out.stdout
        self.stderr += out.stderr
        if out.exited:
            self.exit_code = out.exit_code

    def detach(self) -> None:
        self.inputs.put(None)
        self.outputs.cancel()


def log_text(node: Any, cid: str) -> str:
    return Path(node.status(cid).log_path).read_text()


@pytest.mark.parametrize("node", ["skiff-runc", "runc"], indirect=True)
def test_attach_writes_to_stdin_and_every_session_reads_the_output(node: Any) -> None:
    sid = node.sandbox("cat")
    cid = node.run(sid, "cat", ["sh", "-c", "while read line; do echo got:$line; done"], stdin=True)
    first = Session(node.api, container_id=cid, stdin=True, stdout=True, stderr=True)
    first.send(stdin_data=b"one\n")
    first.read_until(b"got:one\n")
    # A second session while the first is attached: both see what comes from now on.
    second = Session(node.api, container_id=cid, stdin=True, stdout=True)
    second.send(stdin_data=b"two\n")
    second.read_until(b"got:two\n")
    assert b"got:one" not in second.stdout  # written before it attached
    first.read_until(b"got:two\n")
    first.detach()
    # Without stdin_once the container's stdin stays open after a session ends.
    second.send(stdin_data=b"three\n", stdin_close=True)
    second.read_until(b"got:three\n")
    second.detach()
    third = Session(node.api, container_id=cid, stdin=True, stdout=True)
    third.send(stdin_data=b"four\n")
    third.read_until(b"got:four\n")
    third.detach()
    assert node.status(cid).state == pb.CONTAINER_RUNNING
    # The log has it all, as it would without anyone attached.
    eventually(
        lambda: "got:four" in log_text(node, cid), 20, "the output in the log", interval=0.05
    )
    lines = [line.split(" ", 3)[3] for line in log_text(node, cid).splitlines()]
    assert lines == ["got:one", "got:two", "got:three", "got:four"]


def test_stdin_once_ends_stdin_with_the_first_session(node: Any) -> None:
    sid = node.sandbox("once")
    cid = node.run(
        sid,
        "once",
        ["sh", "-c", "cat; echo stdin ended >&2; exit 3"],
        stdin=True,
        stdin_once=True,
    )
    session = Session(node.api, container_id=cid, stdin=True, stdout=True, stderr=True)
    session.send(stdin_data=b"hello\n")
    session.read_until(b"hello\n")
    session.send(stdin_close=True)  # as `kubectl run -i` when its input ends
    assert session.wait_exit() == 3
    assert session.stderr == b"stdin ended\n"
    assert node.wait_state(cid, pb.CONTAINER_EXITED).exit_code == 3
    # A container that has exited cannot be attached to.
    with pytest.raises(grpc.RpcError) as e:
        Session(node.api, container_id=cid, stdout=True).wait_exit()
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as e:
        Session(node.api, container_id="no-such-container", stdout=True).wait_exit()
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_stdin_once_ends_when_the_first_session_goes_away(node: Any) -> None:
    sid = node.sandbox("gone")
    cid = node.run(
        sid,
        "gone",
        ["sh", "-c", "while read line; do echo $line; done; exit 7"],
        stdin=True,
        stdin_once=True,
    )
    session = Session(node.api, container_id=cid, stdin=True, stdout=True)
    session.send(stdin_data=b"ping\n")
    session.read_until(b"ping\n")  # attached
    session.detach()  # like a client that went away, without closing its input
    assert node.wait_state(cid, pb.CONTAINER_EXITED).exit_code == 7


def test_attach_to_a_terminal_and_resize_it(node: Any) -> None:
    sid = node.sandbox("tty")
    cid = node.run(sid, "shell", ["sh"], stdin=True, tty=True)
    session = Session(
        node.api,
        container_id=cid,
        stdin=True,
        stdout=True,
        tty=True,
        resize_width=100,
        resize_height=30,
    )
    session.send(stdin_data=b"stty size; tty\n")
    session.read_until(b"30 100")
    session.read_until(b"/dev/pts/0")
    session.send(resize_width=120, resize_height=40)
    session.send(stdin_data=b"stty size\n")
    session.read_until(b"40 120")
    session.send(stdin_data=b"exit 5\n")
    assert session.wait_exit() == 5
    assert session.stderr == b""  # a terminal is one stream


def test_a_restarted_daemon_attaches_again(node: Any) -> None:
    sid = node.sandbox("survivor")
    cid = node.run(sid, "cat", ["sh", "-c", "while read line; do echo got:$line; done"], stdin=True)
    before = Session(node.api, container_id=cid, stdin=True, stdout=True)
    before.send(stdin_data=b"before\n")
    before.read_until(b"got:before\n")
    node.kill()
    with pytest.raises(grpc.RpcError):  # the session ends with the daemon
        before.read_until(b"never")
    node.start()
    after = Session(node.api, container_id=cid, stdin=True, stdout=True)
    after.send(stdin_data=b"after\n")
    after.read_until(b"got:after\n")
    after.detach()
    assert node.status(cid).state == pb.CONTAINER_RUNNING
