"""The shim's side of Attach over a real unix socket, without a container: who gets
the output, whose input reaches stdin, when stdin ends, and the exit message."""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runtime.daemon.shim import Attachments, frame


def serve_until(attachments: Attachments, done: Callable[[], bool]) -> None:
    """Run the shim's loop (its attach part) until `done()`, for at most 10 s."""
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline
        ready, writable, _ = select.select(attachments.readers(), attachments.writers(), [], 0.05)
        attachments.handle(ready, writable)


def client(directory: Path, flags: int) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(directory / "attach.sock"))
    sock.sendall(frame(b"A", bytes([flags])))
    return sock


def finishing(attachments: Attachments, exit_code: int) -> threading.Thread:
    """`finish` in the background: it waits for the clients to close their side."""
    thread = threading.Thread(target=attachments.finish, args=(exit_code,))
    thread.start()
    return thread


def finished(thread: threading.Thread) -> bool:
    thread.join(10)
    return not thread.is_alive()


def read_frames(sock: socket.socket, count: int) -> list[tuple[bytes, bytes]]:
    sock.settimeout(10)
    data, frames = b"", []
    while len(frames) < count:
        data += sock.recv(65536)
        while len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[1:5], "big"):
            size = int.from_bytes(data[1:5], "big")
            frames.append((data[:1], data[5 : 5 + size]))
            data = data[5 + size :]
    return frames


def test_output_input_and_stdin_once(tmp_path: Path) -> None:
    stdin_r, stdin_w = os.pipe()
    attachments = Attachments(str(tmp_path), stdin=stdin_w, terminal=-1, stdin_once=True)
    writer = client(tmp_path, 1 | 2)  # stdin and stdout
    watcher = client(tmp_path, 4)  # stderr only
    serve_until(attachments, lambda: len(attachments.clients) == 2)
    serve_until(attachments, lambda: all(c.flags >= 0 for c in attachments.clients.values()))
    attachments.output("stdout", b"out")
    attachments.output("stderr", b"err")
    assert read_frames(writer, 1) == [(b"O", b"out")]
    assert read_frames(watcher, 1) == [(b"E", b"err")]
    watcher.sendall(frame(b"I", b"ignored: no stdin asked"))
    writer.sendall(frame(b"I", b"hello\n") + frame(b"C"))
    serve_until(attachments, lambda: attachments.stdin < 0)  # stdin_once: closed after C
    assert os.read(stdin_r, 100) == b"hello\n"
    assert os.read(stdin_r, 100) == b""  # end-of-file for the container
    finish = finishing(attachments, 3)
    assert read_frames(writer, 1) == [(b"X", b"3")]
    assert read_frames(watcher, 1) == [(b"X", b"3")]
    writer.close()
    watcher.close()
    assert finished(finish)
    assert not (tmp_path / "attach.sock").exists()


def test_stdin_stays_open_without_stdin_once(tmp_path: Path) -> None:
    stdin_r, stdin_w = os.pipe()
    attachments = Attachments(str(tmp_path), stdin=stdin_w, terminal=-1, stdin_once=False)

    def readable() -> bool:
        return bool(select.select([stdin_r], [], [], 0)[0])

    first = client(tmp_path, 1)
    first.sendall(frame(b"I", b"one\n") + frame(b"C"))
    serve_until(attachments, readable)
    assert os.read(stdin_r, 100) == b"one\n"
    first.close()  # the session goes away
    serve_until(attachments, lambda: not attachments.clients)
    second = client(tmp_path, 1)
    second.sendall(frame(b"I", b"two\n"))
    serve_until(attachments, readable)
    assert os.read(stdin_r, 100) == b"two\n"  # the same stdin, still open
    finish = finishing(attachments, 0)
    assert read_frames(second, 1) == [(b"X", b"0")]
    second.close()
    assert finished(finish)
    assert os.read(stdin_r, 100) == b""  # closed once the container has exited


def test_a_client_that_does_not_read_is_dropped(tmp_path: Path) -> None:
    attachments = Attachments(str(tmp_path), stdin=-1, terminal=-1, stdin_once=False)
    slow = client(tmp_path, 2)
    serve_until(attachments, lambda: any(c.flags >= 0 for c in attachments.clients.values()))
    chunk = b"x" * 65536
    for _ in range(200):  # 12.5 MiB, more than the shim queues for one client
        attachments.output("stdout", chunk)
        if not attachments.clients:
            break
    assert not attachments.clients  # dropped; the container's output was never held up
    slow.close()
    attachments.finish(0)


def test_the_last_output_and_input_after_the_exit(tmp_path: Path) -> None:
    """`read x` had its line and the container exited before the session's stdin_close:
    the session gets the last output and the exit, then the end of the output, and the
    shim still takes that input (closing before it came would fail the write, closing
    with it unread would reset the connection: the daemon could lose the output)."""
    stdin_r, stdin_w = os.pipe()
    attachments = Attachments(str(tmp_path), stdin=stdin_w, terminal=-1, stdin_once=True)
    session = client(tmp_path, 1 | 2 | 4)
    session.sendall(frame(b"I", b"hi\n"))
    serve_until(attachments, lambda: bool(select.select([stdin_r], [], [], 0)[0]))
    attachments.output("stderr", b"bye\n")  # its last words; then it exits
    finish = finishing(attachments, 4)
    assert read_frames(session, 2) == [(b"E", b"bye\n"), (b"X", b"4")]
    assert session.recv(1) == b""  # the end of the output
    session.sendall(frame(b"C"))  # the session's stdin_close: still taken
    session.close()
    assert finished(finish)
    assert os.read(stdin_r, 100) == b"hi\n"
