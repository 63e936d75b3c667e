"""What the kubelet knows about one pod besides its API object: what the
runtime holds for it, and what the kubelet itself remembers (back-off, the
last failure of each container, probe results).

These are plain frozen values so that `sync.decide` and `status.pod_status`
stay pure: the shell (`pods.py`) builds them from the runtime's relist and its
own memory, and the tables in the unit tests build them by hand.

Times are seconds since the epoch (floats); the runtime's nanoseconds are
converted once, where the relist reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Container states as the runtime reports them (CRI's ContainerState).
CREATED, RUNNING, EXITED, UNKNOWN = "created", "running", "exited", "unknown"


@dataclass(frozen=True)
class Sandbox:
    id: str
    ready: bool
    attempt: int = 0
    created_at: float = 0.0
    ip: str = ""


@dataclass(frozen=True)
class Container:
    """One instance of a container; a restart is a new instance with attempt + 1."""

    id: str
    name: str
    attempt: int = 0
    state: str = RUNNING
    sandbox_id: str = ""
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # Completed, Error, OOMKilled
    message: str = ""
    image: str = ""
    image_ref: str = ""
    log_path: str = ""

    @property
    def succeeded(self) -> bool:
        return self.state == EXITED and self.exit_code == 0

    @property
    def ran_for(self) -> float:
        if not self.started_at or not self.finished_at:
            return 0.0
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class Failure:
    """Why the last attempt to start a container failed before it ran (the waiting
    reason Kubernetes shows: ErrImagePull, CreateContainerConfigError, ...), and
    how long to wait before the next attempt."""

    reason: str
    message: str
    at: float
    delay: float = 0.0


@dataclass(frozen=True)
class Observed:
    """Everything the runtime holds for one pod (any attempt), and the images of the node."""

    sandboxes: tuple[Sandbox, ...] = ()
    containers: tuple[Container, ...] = ()
    images: frozenset[str] = frozenset()

    def current_sandbox(self) -> Sandbox | None:
        """The newest sandbox: the one the pod's containers run in."""
        if not self.sandboxes:
            return None
        return max(self.sandboxes, key=lambda s: (s.attempt, s.created_at))

    def instances(self, name: str) -> list[Container]:
        """The instances of one container, newest first."""
        found = [c for c in self.containers if c.name == name]
        return sorted(found, key=lambda c: (c.attempt, c.created_at), reverse=True)

    def latest(self, name: str) -> Container | None:
        found = self.instances(name)
        return found[0] if found else None

    def running(self) -> list[Container]:
        return [c for c in self.containers if c.state in (RUNNING, CREATED, UNKNOWN)]


@dataclass(frozen=True)
class Memory:
    """What the kubelet remembers about a pod between syncs (lost on restart, as the
    real kubelet's back-off is; the runtime's records are what survive).

    - crash_backoff: container name -> the back-off that applies after its next exit
    - failures: container name -> why its last start failed
    - ready / started: container id -> the readiness / startup probe's verdict
    - unhealthy: container id -> why liveness (or startup) says to restart it
    """

    crash_backoff: dict[str, float] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    ready: dict[str, bool] = field(default_factory=dict)
    started: dict[str, bool] = field(default_factory=dict)
    unhealthy: dict[str, str] = field(default_factory=dict)
