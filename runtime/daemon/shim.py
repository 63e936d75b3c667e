"""The shim: one small process per container that outlives the runtime daemon.

It becomes a child subreaper, runs `<oci-runtime> create` with the container's
stdout and stderr connected to pipes it owns (or, for a container with a
terminal, takes the terminal's master side from the console socket), and then:
- copies the output into the container's log file in the CRI format
  (`<RFC3339Nano> stdout|stderr F|P <text>`: F for a full line, P for a part);
- reopens the log file on SIGUSR1 (ReopenContainerLog, after the kubelet rotated
  it) and acknowledges in `log-reopened`;
- serves `attach.sock` in the container's directory (`Attachments`): attach
  sessions of the daemon get the output from then on, and their input goes to
  the container's stdin, which the shim holds open for a container created with
  `stdin: true` (the pipe's write end, or a terminal's master side);
- reaps the container when it exits and writes `exit.json` (exit code, time,
  whether the cgroup saw an OOM kill) into the container's directory.
The daemon can be killed and restarted at any time: everything it needs to
know about the container is in that directory.

    shim CONTAINER_DIR ID LOG_PATH OOM_FILE RUNTIME_COMMAND...
    shim --spare RUNTIME_COMMAND...   (the four come on stdin later)

(`command()` and `spare_command()` say how: `python -I -S -c` importing this module.)

There is one shim per container, so its memory is the runtime's cost per
container: it runs without site imports, imports only what it needs from the
standard library (no json, subprocess, datetime, ctypes, or even `signal` and
`socket`, which pull in enum: the C modules `_signal` and `_socket` do), and
gets what it needs on its command line rather than reading the container's
record. `OOM_FILE` is the cgroup file with the
`oom_kill N` count (see runtime.cgroups).
"""

import _signal  # the C module: `signal` would import enum, almost a MiB per shim
import os
import select
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
PARTIAL_LIMIT = 16 * 1024
TIOCSWINSZ = 0x5414
ATTACH_BACKLOG_LIMIT = 4 * 1024 * 1024  # output queued for one slow attach client, at most


def _timestamp() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class LogWriter:
    """CRI log lines; a line longer than 16 KiB is split into partial (P) records."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.file = open(path, "ab", buffering=0)
        self.pending = {"stdout": b"", "stderr": b""}

    def feed(self, stream: str, data: bytes) -> None:
        buffer = self.pending[stream] + data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            self._write(stream, "F", line)
        while len(buffer) > PARTIAL_LIMIT:
            self._write(stream, "P", buffer[:PARTIAL_LIMIT])
            buffer = buffer[PARTIAL_LIMIT:]
        self.pending[stream] = buffer

    def reopen(self) -> None:
        """Log rotation: the kubelet renamed the file; carry on in a new one at the path."""
        self.file.close()
        self.file = open(self.path, "ab", buffering=0)

    def close(self) -> None:
        for stream, rest in self.pending.items():
            if rest:
                self._write(stream, "P", rest)
        self.file.close()

    def _write(self, stream: str, tag: str, text: bytes) -> None:
        self.file.write(f"{_timestamp()} {stream} {tag} ".encode() + text + b"\n")


def _write_atomically(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def _oom_killed(oom_file: str) -> bool:
    try:
        with open(oom_file) as f:
            return any(line.split()[:1] == ["oom_kill"] and int(line.split()[1]) > 0 for line in f)
    except (OSError, ValueError, IndexError):
        return False


def _set_subreaper() -> None:
    """prctl(PR_SET_CHILD_SUBREAPER) through ctypes' C module alone: `import ctypes`
    would cost a third of a MiB more in every shim, for one call."""
    import _ctypes

    prctl = _ctypes.dlsym(_ctypes.dlopen(None), "prctl")
    if _ctypes.call_function(prctl, (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) != 0:
        raise OSError("prctl(PR_SET_CHILD_SUBREAPER) failed")


class Creator:
    """Runs `<runtime> create` with fresh pipes as the container's stdout and stderr.

    With skiff-runc, `prepare()` forks a child that imports skiff-runc and waits:
    a spare shim does that while no container needs it yet, so that creating one
    later costs neither an interpreter start nor the imports. Other runtimes are
    spawned as processes when `create` is called.
    """

    def __init__(self, runtime: list[str]) -> None:
        self.runtime = runtime
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        # The container's stdin when it asks for one (`stdin: true`); made now, since a
        # spare's prepared child is forked before it knows whether it will be needed.
        self.in_r, self.in_w = os.pipe()
        self.child = 0
        self.go_w = -1
        self.server = None  # a socket.socket listening for a container's terminal
        self.exited: int | None = None  # create's wait status, when reaped early
        self.console_path = ""
        self.master = -1
        launchers = [i for i, a in enumerate(runtime) if a.endswith("skiff_runc.py")]
        self.skiff_runc_args = runtime[launchers[0] + 1 :] if launchers else None

    def prepare(self) -> None:
        if self.skiff_runc_args is None:
            return
        go_r, self.go_w = os.pipe()
        self.child = os.fork()
        if self.child == 0:
            code = 1
            try:
                os.close(self.go_w)
                os.close(self.in_w)  # else the container would never see end-of-file
                self._stdio()
                root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
                sys.path.insert(0, root)
                # Everything `create` will import, now, while nobody waits for it.
                import runtime.cgroups
                import runtime.runc.init  # noqa: F401
                from runtime.runc.main import main as runc_main

                with os.fdopen(go_r) as go:
                    line = go.readline().rstrip("\n")
                if line:
                    cid, bundle, pid_file, console, stdin = line.split("\t")
                    if stdin:
                        os.dup2(self.in_r, 0)
                    flags = ["--bundle", bundle, "--pid-file", pid_file]
                    flags += ["--console-socket", console] if console else []
                    code = runc_main([*self.skiff_runc_args, "create", *flags, cid])
            finally:
                os._exit(code)
        os.close(go_r)

    def _stdio(self) -> None:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(self.out_w, 1)
        os.dup2(self.err_w, 2)
        os.close(devnull)

    def abandon(self) -> None:
        if self.go_w >= 0:
            os.close(self.go_w)  # the prepared child reads EOF and exits
            os.waitpid(self.child, 0)

    def create(
        self, cid: str, bundle: str, pid_file: str, console: str = "", stdin: bool = False
    ) -> int:
        """`console`: a listening console socket's path, for a container with a terminal;
        `stdin`: the container reads the pipe whose write end `in_w` the shim keeps."""
        try:
            if self.child:
                line = f"{cid}\t{bundle}\t{pid_file}\t{console}\t{'1' if stdin else ''}\n"
                os.write(self.go_w, line.encode())
                os.close(self.go_w)
                child = self.child
            else:
                flags = ["--bundle", bundle, "--pid-file", pid_file]
                flags += ["--console-socket", console] if console else []
                argv = [*self.runtime, "create", *flags, cid]
                devnull = os.open(os.devnull, os.O_RDONLY)
                actions = [
                    (os.POSIX_SPAWN_DUP2, self.in_r if stdin else devnull, 0),
                    (os.POSIX_SPAWN_DUP2, self.out_w, 1),
                    (os.POSIX_SPAWN_DUP2, self.err_w, 2),
                ]
                try:
                    child = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
                finally:
                    os.close(devnull)
            self.child = child
            if self.server is not None:
                self.master = self._receive_terminal()
            status = self.exited if self.exited is not None else os.waitpid(child, 0)[1]
        finally:
            os.close(self.out_w)
            os.close(self.err_w)
            os.close(self.in_r)
            if not stdin:
                os.close(self.in_w)
                self.in_w = -1
        return os.waitstatus_to_exitcode(status)

    def listen_for_terminal(self) -> str:
        """A console socket for the container's terminal (its master side arrives there).
        Only containers with a terminal pay for importing `socket`."""
        from runtime.daemon import console

        self.console_path = f"/tmp/skiff-console-{os.getpid()}.sock"  # short: sun_path is 108
        self.server = console.listen(self.console_path)
        return self.console_path

    def _receive_terminal(self) -> int:
        """Wait for the runtime to send the master (or to fail and exit without it)."""
        from runtime.daemon import console

        def create_ended() -> bool:
            done, status = os.waitpid(self.child, os.WNOHANG)
            if done:  # it failed before it got that far: its status says so
                self.exited = status
            return bool(done)

        try:
            master = console.receive_terminal(self.server, create_ended)
            return -1 if master is None else master
        finally:
            self.server.close()
            os.unlink(self.console_path)


def frame(kind: bytes, payload: bytes = b"") -> bytes:
    """One message on attach.sock: a kind byte, a 4-byte big-endian length, the payload.
    Daemon to shim: A (attach; flags 1 stdin, 2 stdout, 4 stderr), I (input), C (close
    input), R (resize: width, height, 2 bytes each). Shim to daemon: O (stdout), E
    (stderr), X (the container exited; its code in ASCII)."""
    return kind + len(payload).to_bytes(4, "big") + payload


class _Client:
    __slots__ = ("fd", "flags", "queued", "received", "sock")

    def __init__(self, sock: object, fd: int) -> None:
        self.sock, self.fd = sock, fd
        self.flags = -1  # until its A message
        self.received = b""
        self.queued = bytearray()


class Attachments:
    """The attach sessions of the daemon, on `attach.sock` in the container's directory.

    Every client gets the output written from the moment it attached (the log gets it
    too); input from clients that asked for stdin goes to the container's stdin. With
    `stdin_once`, stdin is closed when the first such session ends, as Kubernetes'
    `stdinOnce` says; otherwise the container's stdin stays open for the next session.
    Nothing here blocks: output for a slow client is queued (up to a limit, after which
    that client is dropped) and input for a container that does not read is queued too,
    so the container's output is never held up. A restarted daemon connects again: the
    socket belongs to the shim.
    """

    def __init__(self, container_dir: str, *, stdin: int, terminal: int, stdin_once: bool) -> None:
        """`stdin`: where input goes (-1: the container has no stdin); `terminal`: the
        master side of the container's terminal (-1: none), which resizes apply to."""
        import _socket  # the C module: `socket` would import enum and selectors

        self._socket = _socket
        self.stdin, self.terminal, self.stdin_once = stdin, terminal, stdin_once
        self.tty = terminal >= 0
        self.pending_input = bytearray()
        self.close_stdin_when_written = False
        for fd in (stdin, terminal):
            if fd >= 0:
                os.set_blocking(fd, False)
        # Bound through the directory's /proc/self/fd link: a state directory's path
        # can be longer than the 108 bytes a unix socket address may hold.
        dirfd = os.open(container_dir, os.O_PATH)
        try:
            self.path = f"/proc/self/fd/{dirfd}/attach.sock"
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self.server = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            self.server.bind(self.path)
        finally:
            os.close(dirfd)
        self.path = os.path.join(container_dir, "attach.sock")
        self.server.listen(16)
        self.server.setblocking(False)
        self.clients: dict[int, _Client] = {}

    def readers(self) -> list[int]:
        return [self.server.fileno(), *self.clients]

    def writers(self) -> list[int]:
        fds = [fd for fd, c in self.clients.items() if c.queued]
        return [*fds, self.stdin] if self.pending_input and self.stdin >= 0 else fds

    def handle(self, readable: list[int], writable: list[int]) -> None:
        for fd in writable:
            if fd == self.stdin:
                self._write_input()
            elif fd in self.clients:
                self._flush(self.clients[fd])
        for fd in readable:
            if fd == self.server.fileno():
                self._accept()
            elif fd in self.clients:
                self._receive(self.clients[fd])

    def output(self, stream: str, data: bytes) -> None:
        kind, flag = (b"O", 2) if stream == "stdout" else (b"E", 4)
        message = frame(kind, data)
        for client in list(self.clients.values()):
            if client.flags >= 0 and client.flags & flag:
                client.queued += message
                self._flush(client)

    def finish(self, exit_code: int) -> None:
        """The container exited: give every client the rest of its output and the exit
        message, then wait (a few seconds at most, for all) until it closes its side.

        Meanwhile what a client still sends is read and dropped: input of a session
        that had not ended when the container exited on its own (kubectl's stdin_close
        after `read x` already had its line). Closing with that input unread would
        reset the connection, and closing before it arrives would fail its write: a
        daemon seeing either could give up on output it had received but not relayed.
        """
        self.server.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
        if self.stdin >= 0 and not self.tty:
            os.close(self.stdin)
        self.stdin = -1  # input has nowhere to go now
        clients, self.clients = self.clients, {}
        for client in clients.values():
            client.queued += frame(b"X", str(exit_code).encode())
        deadline = time.monotonic() + 5
        while clients and (left := deadline - time.monotonic()) > 0:
            sending = [fd for fd, c in clients.items() if c.queued]
            readable, writable, _ = select.select(list(clients), sending, [], left)
            for fd in writable:
                if not self._send_last(clients[fd]):
                    clients.pop(fd).sock.close()
            for fd in readable:
                if fd in clients and not self._discard_input(clients[fd]):
                    clients.pop(fd).sock.close()
        for client in clients.values():
            client.sock.close()

    def _send_last(self, client: _Client) -> bool:
        """Some of the last output; once all is sent, the end of it (shutdown for
        writing). False: the client is gone."""
        try:
            del client.queued[: client.sock.send(client.queued)]
            if not client.queued:
                client.sock.shutdown(self._socket.SHUT_WR)
        except BlockingIOError:
            pass
        except OSError:
            return False
        return True

    def _discard_input(self, client: _Client) -> bool:
        """False once the client has closed its side (or is gone)."""
        try:
            return bool(client.sock.recv(65536))
        except BlockingIOError:
            return True
        except OSError:
            return False

    def _accept(self) -> None:
        try:
            fd, _ = self.server._accept()
        except OSError:
            return
        sock = self._socket.socket(self._socket.AF_UNIX, self._socket.SOCK_STREAM, 0, fd)
        sock.setblocking(False)
        self.clients[fd] = _Client(sock, fd)

    def _drop(self, client: _Client) -> None:
        self.clients.pop(client.fd, None)
        client.sock.close()
        if client.flags >= 0 and client.flags & 1:
            self._input_ended()

    def _flush(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.queued)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._drop(client)
            return
        del client.queued[:sent]
        if len(client.queued) > ATTACH_BACKLOG_LIMIT:
            self._drop(client)  # it does not keep up; the log still has everything

    def _receive(self, client: _Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.received += data
        while len(client.received) >= 5:
            size = int.from_bytes(client.received[1:5], "big")
            if len(client.received) < 5 + size:
                break
            kind, payload = client.received[:1], client.received[5 : 5 + size]
            client.received = client.received[5 + size :]
            self._message(client, kind, payload)

    def _message(self, client: _Client, kind: bytes, payload: bytes) -> None:
        if kind == b"A":
            client.flags = payload[0] if payload else 0
        elif kind == b"I" and client.flags >= 0 and client.flags & 1 and self.stdin >= 0:
            if not self.close_stdin_when_written:
                self.pending_input += payload
                self._write_input()
        elif kind == b"C" and client.flags >= 0 and client.flags & 1:
            client.flags &= ~1
            self._input_ended()
        elif kind == b"R" and self.tty and len(payload) == 4:
            import fcntl  # a C module, and only containers with a terminal resize

            width, height = int.from_bytes(payload[:2], "big"), int.from_bytes(payload[2:], "big")
            size = b"".join(n.to_bytes(2, "little") for n in (height, width, 0, 0))
            try:
                fcntl.ioctl(self.terminal, TIOCSWINSZ, size)
            except OSError:
                pass

    def _input_ended(self) -> None:
        """A session with stdin ended: with stdin_once, the container's stdin ends too
        (on a terminal, which has no end-of-file of its own, as a Ctrl-D)."""
        if not self.stdin_once or self.stdin < 0 or self.close_stdin_when_written:
            return
        if self.tty:
            self.pending_input += b"\x04"
        self.close_stdin_when_written = True
        self._write_input()

    def _write_input(self) -> None:
        while self.pending_input:
            try:
                written = os.write(self.stdin, self.pending_input)
            except BlockingIOError:
                return
            except OSError:  # the container closed its stdin or exited
                self.pending_input.clear()
                break
            del self.pending_input[:written]
        if self.close_stdin_when_written and self.stdin >= 0:
            if not self.tty:  # the terminal's master stays: it carries the output
                os.close(self.stdin)
            self.stdin = -1


def oom_file(cgroup: str) -> str:
    from runtime.cgroups import open_cgroup

    return str(open_cgroup(cgroup).oom_events_file())


def _interpreter() -> list[str]:
    """The shim imported as a module, from its cached bytecode: run as a script it would
    be compiled at every start, and the compiler's leftovers stay in the shim's heap."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    code = (
        f"import sys; sys.path.insert(0, {root!r}); "
        "from runtime.daemon.shim import main; sys.exit(main())"
    )
    return [sys.executable, "-I", "-S", "-c", code]


def command(
    container_dir: str, cid: str, log_path: str, cgroup: str, runtime: list[str]
) -> list[str]:
    """How the daemon starts a shim for a container (run in the daemon, not in the shim)."""
    args = [container_dir, cid, log_path, oom_file(cgroup)]
    return [*_interpreter(), *args, *runtime]


def spare_command(runtime: list[str]) -> list[str]:
    """A spare shim, told its container later on stdin (see `assignment`)."""
    return [*_interpreter(), "--spare", *runtime]


def assignment(container_dir: str, cid: str, log_path: str, cgroup: str) -> bytes:
    return "\t".join([container_dir, cid, log_path, oom_file(cgroup)]).encode() + b"\n"


def _assigned() -> tuple[str, str, str, str, Creator]:
    """(container dir, id, log path, OOM file, creator), from the command line or, for
    a spare, from the daemon's line on stdin once there is a container for it."""
    if sys.argv[1] != "--spare":
        creator = Creator(sys.argv[5:])
        creator.prepare()
        container_dir, cid, log_path, oom_file = sys.argv[1:5]
        return container_dir, cid, log_path, oom_file, creator
    creator = Creator(sys.argv[2:])
    creator.prepare()  # made ready before there is a container for it
    line = sys.stdin.readline().rstrip("\n")
    if not line:  # the daemon went away before using us
        creator.abandon()
        raise SystemExit(0)
    container_dir, cid, log_path, oom_file = line.split("\t")
    log_fd = os.open(
        os.path.join(container_dir, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND
    )
    os.dup2(log_fd, 2)
    os.close(log_fd)
    return container_dir, cid, log_path, oom_file, creator


def _report_failure(container_dir: str, code: int, creator: Creator) -> None:
    """No container: what `create` said is the reason, for the daemon to pass on."""
    said = b""
    for fd in (creator.err_r, creator.out_r):
        os.set_blocking(fd, False)
        try:
            said += os.read(fd, 65536)
        except BlockingIOError:
            pass
    reason = said.decode(errors="replace").strip() or f"exit code {code}"
    _write_atomically(os.path.join(container_dir, "create-failed"), reason)


def _copy_output(
    container_dir: str,
    log: LogWriter,
    streams: dict[int, str],
    wake: int,
    attachments: Attachments,
) -> None:
    """Output into the log and to attached clients until every stream is closed; serve
    attach sessions meanwhile; reopen the log on SIGUSR1."""
    reopened = 0
    while streams:
        readers = [*streams, wake, *attachments.readers()]
        ready, writable, _ = select.select(readers, attachments.writers(), [])
        attachments.handle([fd for fd in ready if fd not in streams and fd != wake], writable)
        for fd in ready:
            if fd == wake:
                os.read(wake, 512)
                log.reopen()
                reopened += 1
                _write_atomically(os.path.join(container_dir, "log-reopened"), str(reopened))
                continue
            if fd not in streams:
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:  # a terminal's master is non-blocking for input's sake
                continue
            except OSError:  # EIO from a terminal's master: the container side is closed
                data = b""
            if data:
                log.feed(streams[fd], data)
                attachments.output(streams[fd], data)
            else:
                os.close(fd)
                del streams[fd]
    log.close()


def _reap(pid: int) -> int:
    """Reap everything; the container's own status is the one that counts."""
    exit_code = 255
    while True:
        try:
            child, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if child == pid:
            exit_code = os.waitstatus_to_exitcode(status)
    return exit_code if exit_code >= 0 else 128 - exit_code  # signal N: 128 + N, as shells say


def main() -> int:
    _set_subreaper()
    container_dir, cid, log_path, oom_file, creator = _assigned()
    # ReopenContainerLog arrives as SIGUSR1; the wakeup fd turns it into input for select.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGUSR1, lambda *_: None)
    # A container with a terminal: the daemon marks it so; its output is the terminal's.
    has_terminal = os.path.exists(os.path.join(container_dir, "tty"))
    # `stdin: true` (and `stdin_once`), marked the same way: the container's stdin is
    # kept open for attach sessions.
    stdin = os.path.exists(os.path.join(container_dir, "stdin"))
    stdin_once = os.path.exists(os.path.join(container_dir, "stdin-once"))
    console = creator.listen_for_terminal() if has_terminal else ""
    pid_file = os.path.join(container_dir, "pid")
    code = creator.create(
        cid, os.path.join(container_dir, "bundle"), pid_file, console, stdin and not has_terminal
    )
    if code != 0:
        _report_failure(container_dir, code, creator)
        return 1
    with open(pid_file) as f:
        pid = int(f.read())
    streams = {creator.out_r: "stdout", creator.err_r: "stderr"}
    if creator.master >= 0:
        streams[creator.master] = "stdout"  # a terminal has one stream
    # Input goes to the terminal (the master side; resizes too) or to the stdin pipe.
    if creator.master >= 0:
        input_fd = creator.master if stdin else -1
    else:
        input_fd = creator.in_w
    attachments = Attachments(
        container_dir, stdin=input_fd, terminal=creator.master, stdin_once=stdin_once
    )
    # Written last: once shim.pid is there, the daemon may attach.
    _write_atomically(os.path.join(container_dir, "shim.pid"), str(os.getpid()))
    _copy_output(container_dir, LogWriter(log_path), streams, wake_r, attachments)
    exit_code = _reap(pid)
    oom = "true" if _oom_killed(oom_file) else "false"
    _write_atomically(
        os.path.join(container_dir, "exit.json"),
        f'{{"exit_code": {exit_code}, "finished_at": "{_timestamp()}", "oom_killed": {oom}}}',
    )
    attachments.finish(exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
