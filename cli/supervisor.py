"""The supervisor: starts the components in order, restarts one that dies, stops them all.

Every component is a process of its own (`python -m <module>`), as in
Kubernetes, so any one can die or be killed while the others carry on; the
supervisor is what brings it back, as systemd or k3s's server would:

- start in order: each component is started once those it `needs` are ready
  (whatever talks to the apiserver waits for it, the kubelet for the runtime
  too), and the others start at once, side by side;
- restart with back-off: 1 s after the first exit, doubling to 30 s while a
  component keeps dying, back to 1 s once it has stayed up for 60 s
  (`restart_delay`, pure);
- stop in reverse order. SIGTERM or SIGINT stops the components and leaves
  the pods running (as stopping k3s or containerd does); SIGUSR1, sent by
  `skiff down`, also removes every pod once the kubelet is stopped (so it
  cannot start them again) and before the runtime is (which removes them).

The components get SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG),
so a killed supervisor never leaves components that a new `skiff up` would
start a second time. `<state-dir>/components.json` says what runs, since when,
and how often it was restarted; `skiff status` reads it.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from .layout import Layout

log = logging.getLogger("skiff.supervisor")

PR_SET_PDEATHSIG = 1
FIRST_DELAY, MAX_DELAY, RESET_AFTER = 1.0, 30.0, 60.0
STOP_GRACE = 20.0  # seconds between SIGTERM and SIGKILL, as systemd's default is 90
POLL = 0.1  # seconds between looks at exits and readiness: `up` is done the moment all are


class Refused(Exception):
    """A step before a component's start found something the user must fix."""


@dataclass(frozen=True)
class Component:
    """One row of the table in components.py."""

    name: str
    module: str  # started as `python -m <module> <args>`
    args: Callable[[Layout], list[str]]
    ready: Callable[[Layout], str]  # "" once it serves (what needs it waits for that)
    needs: tuple[str, ...] = ()  # components that must be ready before this one starts
    prepare: Callable[[Layout], None] | None = None  # before each start (may raise Refused)
    on_down: Callable[[Layout], None] | None = None  # `skiff down`: before its SIGTERM
    describe: str = ""


def restart_delay(previous: float | None, up_for: float) -> float:
    """How long to wait before starting a component again after it exited.

    Pure. `previous` is the delay used last time (None: it never died before),
    `up_for` how long it ran this time.
    """
    if previous is None or up_for >= RESET_AFTER:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def _die_with_parent(parent: int) -> Callable[[], None]:
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:  # between fork and exec: a C call and getppid only
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


@dataclass
class Child:
    component: Component
    proc: subprocess.Popen[bytes] | None = None
    since: float = 0.0  # wall clock, for status
    started: float = 0.0  # monotonic, for the back-off
    restarts: int = 0
    delay: float | None = None
    start_at: float | None = None  # monotonic: when a restart is due
    last_exit: int | None = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def state(self) -> str:
        if self.running():
            return "running"
        return "restarting" if self.start_at is not None else "stopped"


@dataclass
class Supervisor:
    layout: Layout
    components: list[Component]
    children: dict[str, Child] = field(default_factory=dict)
    stop_requested: int = 0  # the signal that asked us to stop, 0 while running
    ready: set[str] = field(default_factory=set)  # were ready once since `up`
    waiting: str = ""  # what start_all waits for now, and why it is not ready yet
    all_ready: bool = False  # every component was ready once: `up` is done

    # -- one component ---------------------------------------------------------------------

    def _log_file(self, name: str) -> IO[bytes]:
        self.layout.logs.mkdir(parents=True, exist_ok=True)
        return open(self.layout.logs / f"{name}.log", "ab")

    def start(self, component: Component) -> None:
        child = self.children.setdefault(component.name, Child(component))
        if component.prepare is not None:
            component.prepare(self.layout)
        argv = [sys.executable, "-m", component.module, *component.args(self.layout)]
        with self._log_file(component.name) as out:
            out.write(f"--- skiff: starting {' '.join(argv[1:])}\n".encode())
            out.flush()
            child.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the supervisor only
                preexec_fn=_die_with_parent(os.getpid()),
            )
        child.since, child.started, child.start_at = time.time(), time.monotonic(), None
        log.info("%s started (pid %d, log %s/%s.log)", component.name, child.proc.pid,
                 self.layout.logs, component.name)  # fmt: skip
        self.write_status()

    def stop(self, child: Child) -> None:
        """SIGTERM, then SIGKILL after STOP_GRACE seconds."""
        child.start_at = None
        proc = child.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs: SIGKILL", child.component.name, STOP_GRACE)
            proc.kill()
            proc.wait()
        log.info("%s stopped", child.component.name)

    # -- the loop --------------------------------------------------------------------------

    def tick(self) -> None:
        """Notice exits and start again what is due (one pass; the loop calls it)."""
        now = time.monotonic()
        changed = False
        for child in self.children.values():
            proc = child.proc
            if proc is not None and proc.poll() is not None and child.start_at is None:
                up_for = now - child.started
                child.delay = restart_delay(child.delay, up_for)
                child.last_exit, child.start_at = proc.returncode, now + child.delay
                log.warning("%s (pid %d) exited with code %s after %.0fs; starting it again "
                            "in %.0fs", child.component.name, proc.pid, proc.returncode, up_for,
                            child.delay)  # fmt: skip
                changed = True
            if child.start_at is not None and now >= child.start_at:
                child.restarts += 1
                try:
                    self.start(child.component)
                except (Refused, OSError) as e:  # try again after the next back-off
                    child.delay = restart_delay(child.delay, 0.0)
                    child.start_at = now + child.delay
                    log.error("%s cannot start: %s; trying again in %.0fs",
                              child.component.name, e, child.delay)  # fmt: skip
        if changed:
            self.write_status()

    def run_until(self, done: Callable[[], bool], timeout: float | None, what: str) -> None:
        """Supervise until `done()` (or a stop is requested); TimeoutError after `timeout`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stop_requested and not done():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout:.0f}s")
            self.tick()
            time.sleep(POLL)

    def wait_ready(self, names: tuple[str, ...], timeout: float) -> None:
        """Supervise until the named components are ready (the first time, once)."""
        for c in self.components:
            if c.name in names and c.name not in self.ready and not self.stop_requested:
                why = f"{c.name} was not ready (see {self.layout.logs}/{c.name}.log)"
                self.run_until(lambda c=c: not self._not_ready(c), timeout, why)
                log.info("%s is ready", c.name)
                self.ready.add(c.name)

    def _not_ready(self, c: Component) -> str:
        why = c.ready(self.layout)
        if why and f"{c.name}: {why}" != self.waiting:
            self.waiting = f"{c.name}: {why}"
            self.write_status()
        return why

    def _ready_now(self, name: str) -> bool:
        """Ready (once is enough: what needs it waits for that, not for every later look)."""
        if name in self.ready:
            return True
        c = next(c for c in self.components if c.name == name)
        if self._not_ready(c):
            return False
        log.info("%s is ready", name)
        self.ready.add(name)
        return True

    def start_due(self) -> bool:
        """Start, in table order, every component not started yet whose needs are all
        ready now (each as early as it can be, not behind an unrelated one); True once
        every component was started."""
        for component in self.components:
            if component.name in self.children or self.stop_requested:
                continue
            if all(self._ready_now(n) for n in component.needs):
                self.start(component)
        return all(c.name in self.children for c in self.components)

    def start_all(self, timeout: float = 120.0) -> None:
        """Start each component once what it needs is ready; return when all are."""
        names = [c.name for c in self.components]
        try:
            self.run_until(self.start_due, timeout, "every component started")
        except TimeoutError as e:  # say which one held the others back
            raise TimeoutError(f"{e}: waiting for {self.waiting} (see {self.layout.logs})") from e
        self.wait_ready(tuple(names), timeout)
        self.all_ready, self.waiting = not self.stop_requested, ""
        self.write_status()

    def stop_all(self, *, remove_pods: bool) -> None:
        for child in reversed(list(self.children.values())):
            hook = child.component.on_down
            if remove_pods and hook is not None and child.running():
                try:
                    hook(self.layout)
                except Exception as e:  # stopping the rest matters more
                    log.error("%s: %s", child.component.name, e)
            self.stop(child)
        self.write_status()

    # -- what `skiff status` reads ---------------------------------------------------------

    def write_status(self) -> None:
        data = {
            "supervisor": {
                "pid": os.getpid(),
                "since": SUPERVISOR_SINCE,
                "ready": self.all_ready,
                "waiting": self.waiting,
            },
            "components": {
                name: {
                    "pid": c.proc.pid if c.running() and c.proc else None,
                    "state": c.state(),
                    "since": c.since,
                    "restarts": c.restarts,
                    "last_exit": c.last_exit,
                    "module": c.component.module,
                }
                for name, c in self.children.items()
            },
        }
        tmp = self.layout.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(self.layout.status_file)

    def handle_signals(self) -> None:
        def request(signum: int, _frame: object) -> None:
            if not self.stop_requested:
                log.info("%s: stopping%s", signal.Signals(signum).name,
                         ", pods included" if signum == signal.SIGUSR1 else "")  # fmt: skip
            self.stop_requested = signum

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, request)


SUPERVISOR_SINCE = time.time()


def read_status(layout: Layout) -> dict:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(layout.status_file.read_text()))
    return {}
