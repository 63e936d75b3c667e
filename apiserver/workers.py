"""Several apiserver worker processes serving one port, so that both cores serve.

The parent (server.py) does what must happen once: the state directory and its
lock, PKI and tokens, the embedded etcd and its supervision, the bootstrap
objects, periodic compaction, audit-log rotation and the status writes of the
CustomResourceDefinitions controller. It then binds the listening socket and
starts N workers (`python -m apiserver` again, told by WORKER_ENV what it is),
which inherit that socket and each serve HTTPS on it with their own etcd
client, watch caches and authorization caches.

Why one socket bound in the parent and inherited, not SO_REUSEPORT: every
worker accepts from the same queue, so a connection waits there until *some*
worker takes it. With SO_REUSEPORT each worker has its own queue and the
kernel picks a queue by a hash of the peer; the connections already queued on
a worker that dies are reset, and a client's connect lands on a worker that
is still starting. With one queue, a worker that is busy simply accepts less
and the idle one accepts more; a dead worker loses only the connections it
had accepted.

Start-up cost: the first N workers are forked from the parent before its event
loop, etcd client or any thread exists (everything is imported by then, so a
worker costs no second import); each waits on a pipe for its configuration,
which the parent writes once etcd, PKI and the bootstrap objects are ready. A
worker started again after dying is a fresh `python -m apiserver` instead (the
parent has threads and a running loop by then, and must not fork).

No orphans: each worker asks the kernel for SIGKILL when its parent dies
(PR_SET_PDEATHSIG, then checks that the parent it was started by is still its
parent, closing the race before the prctl).
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .etcd_process import restart_delay

log = logging.getLogger("skiff.apiserver.workers")

WORKER_ENV = "SKIFF_APISERVER_WORKER"  # JSON: {"config": ..., "fd": N, "index": i, "parent": pid}
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # metrics.py reads it; prometheus_client too
MAX_DEFAULT_WORKERS = 4
PR_SET_PDEATHSIG = 1


# The youngest generation's threshold: collected after this many more allocations
# than frees of container objects (CPython's default is 700). A request allocates
# thousands, so at 700 a collection ran several times within each one and moved
# its short-lived objects to the older generations, whose growth is what starts
# full collections; a larger one lets them die young, as many servers tune it.
GC_YOUNG_THRESHOLD = 20_000


def settle_gc() -> None:
    """Once started (modules, schemas and watch caches loaded): what exists now is
    kept for the process's life, so move it out of the garbage collector's way.

    `gc.freeze()` puts every object into the permanent generation, which full
    collections never walk: they walked every imported module, schema and cached
    object, a pause that grew with the caches. Done in the parent before it forks
    the workers, a worker's collections also leave the inherited pages shared.
    """
    gc.collect()
    gc.freeze()
    # Once more, over nothing: CPython starts a full collection only when what was
    # promoted since the last one exceeds a quarter of what that one kept, and the
    # last one kept everything now frozen (it would have waited for ~100,000).
    gc.collect()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


_libc: ctypes.CDLL | None = None


def trim_heap() -> bool:
    """Give the C heap's free pages back to the kernel (glibc's `malloc_trim(0)`):
    whether anything was returned.

    A watch history's records (value bytes of a few KB each: C heap, not Python's
    small-object arenas) are freed in bulk as they age out of the 75 s window, but
    glibc returns heap memory to the kernel only from its top: the pages freed
    below stay resident, so a worker's RSS kept the size of its last burst. The
    watch hubs call this after dropping enough of their history (watch.py)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None)
        return bool(_libc.malloc_trim(0))
    except (OSError, AttributeError):  # not glibc: nothing to do
        return False


def default_workers(cpus: int | None = None) -> int:
    """One worker per two CPUs, at least one, at most MAX_DEFAULT_WORKERS.

    Half, not all: etcd, the controller-manager, the scheduler and a kubelet
    share the machine, and every worker decodes every change etcd sends into
    watch caches of its own, so a worker beyond what the CPUs can feed costs more
    than it serves. Measured on 2 CPUs (docs/benchmarks.md, "one worker or two"):
    one worker creates, reads from etcd and lists faster than two, lets the
    scheduler bind 290 pods/s instead of 255, and holds 10,000 pods in 410 MiB
    (the three components) instead of 660; two serve only cache reads faster."""
    count = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(count // 2, MAX_DEFAULT_WORKERS))


def listen_socket(host: str, port: int) -> socket.socket:
    """The one listening socket every worker inherits."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def clean_metrics_dir(directory: Path) -> None:
    """Counters start at zero with the parent: the files of an earlier run go."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for f in directory.glob("*.db"):
        f.unlink(missing_ok=True)


def die_with_parent(parent: int) -> None:
    """Worker side: SIGKILL when the parent dies; exit now if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        os._exit(1)


class Forked:
    """A worker forked by `prefork`: the part of Popen's interface the pool uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
            time.sleep(0.05)
        assert self.returncode is not None
        return self.returncode


def prefork(
    count: int, sock: socket.socket, child_main: Callable[[str], int]
) -> list[tuple[Forked, int]]:
    """Fork `count` workers now, before any event loop or thread exists; each
    runs `child_main(spec)` with the spec the parent later writes to its pipe
    (nothing written, EOF: the parent failed to start, the worker exits).
    Returns each worker with the write end of its pipe."""
    parent = os.getpid()
    forked: list[tuple[Forked, int]] = []
    for _ in range(count):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(w)
                for _, other in forked:
                    os.close(other)
                die_with_parent(parent)
                chunks = []
                while chunk := os.read(r, 65536):
                    chunks.append(chunk)
                os.close(r)
                if chunks:
                    spec = b"".join(chunks).decode()
                    os.environ[MULTIPROC_ENV] = json.loads(spec)["metrics_dir"]
                    _use_multiprocess_metrics()
                    sock.detach()  # run_worker's socket object owns the descriptor now
                    code = child_main(spec)
                else:
                    code = 0
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.close(r)
        forked.append((Forked(pid), w))
    return forked


def _use_multiprocess_metrics() -> None:
    """prometheus_client chose in-memory values when the parent imported it; a
    forked worker switches to the shared files (no metric has a value yet)."""
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


@dataclass
class Worker:
    index: int
    proc: subprocess.Popen[bytes] | Forked | None = None
    started: float = 0.0
    delay: float | None = None  # the last restart back-off
    restart_at: float | None = None  # when a dead worker is started again


@dataclass(frozen=True)
class Step:
    """What the supervisor does about one worker now."""

    spawn: bool = False
    died: bool = False  # just found dead: count it, schedule the restart
    restart_at: float | None = None
    delay: float | None = None


def decide(
    exit_code: int | None,
    running: bool,
    now: float,
    started: float,
    delay: float | None,
    restart_at: float | None,
) -> Step:
    """The pure part of supervision: a worker found dead is started again after
    restart_delay (1 s doubling to 30 s while it keeps dying, reset once it
    stayed up), as the embedded etcd is."""
    if running and exit_code is not None and restart_at is None:
        wait = restart_delay(delay, now - started)
        return Step(died=True, restart_at=now + wait, delay=wait)
    if restart_at is not None and now >= restart_at:
        return Step(spawn=True, delay=delay)
    return Step(restart_at=restart_at, delay=delay)


class WorkerPool:
    """The parent's workers: started, restarted when they die, stopped last-in."""

    def __init__(
        self,
        count: int,
        sock: socket.socket,
        config_json: str,
        metrics_dir: Path,
        cwd: Path,
        preforked: list[tuple[Forked, int]] | None = None,
    ) -> None:
        self.sock = sock
        self.preforked = list(preforked or [])
        self.config_json = config_json
        self.metrics_dir = metrics_dir
        self.cwd = cwd
        self.workers = [Worker(i) for i in range(count)]
        self.stopping = False

    def _spec(self, worker: Worker) -> str:
        return json.dumps(
            {
                "config": json.loads(self.config_json),
                "fd": self.sock.fileno(),
                "index": worker.index,
                "parent": os.getpid(),
                "metrics_dir": str(self.metrics_dir),
            }
        )

    def _spawn(self, worker: Worker) -> None:
        if self.preforked:  # the first start: a worker forked before the loop, waiting
            proc, pipe = self.preforked.pop(0)
            with os.fdopen(pipe, "w") as f:
                f.write(self._spec(worker))
            worker.proc = proc
        else:
            fd = self.sock.fileno()
            env = {
                **os.environ,
                MULTIPROC_ENV: str(self.metrics_dir),
                WORKER_ENV: self._spec(worker),
            }
            worker.proc = subprocess.Popen(
                [sys.executable, "-m", "apiserver"], pass_fds=(fd,), env=env, cwd=self.cwd
            )
        worker.started = time.monotonic()
        worker.restart_at = None
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    def start(self) -> None:
        for worker in self.workers:
            self._spawn(worker)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.proc is not None and w.proc.poll() is None]

    def check(self) -> None:
        """One pass of supervision (the parent calls it every 0.2 s)."""
        if self.stopping:
            return
        now = time.monotonic()
        for worker in self.workers:
            proc = worker.proc
            code = proc.poll() if proc is not None else None
            step = decide(code, proc is not None, now, worker.started, worker.delay,
                          worker.restart_at)  # fmt: skip
            worker.delay, worker.restart_at = step.delay, step.restart_at
            if step.died and proc is not None:
                mark_dead(proc.pid, self.metrics_dir)
                log.error("worker %d (pid %d) exited with code %s; starting it again in %.0fs",
                          worker.index, proc.pid, code, step.delay)  # fmt: skip
                worker.proc = None
            elif step.spawn:
                self._spawn(worker)

    def replace_all(self, config_json: str) -> None:
        """etcd moved (a restart had to take new ports): workers start again on it."""
        self.config_json = config_json
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is None:
                worker.proc.terminate()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every worker (each drains its connections), SIGKILL any still
        there after `timeout`; reap them all."""
        self.stopping = True
        for _, pipe in self.preforked:  # never configured (EOF): they exit by themselves
            os.close(pipe)
        procs = [w.proc for w in self.workers if w.proc is not None]
        procs += [proc for proc, _ in self.preforked]
        self.preforked = []
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait()
            mark_dead(proc.pid, self.metrics_dir)


def mark_dead(pid: int, directory: Path) -> None:
    """Drop a dead worker's live gauges (open watches); its counters stay counted."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(directory))
