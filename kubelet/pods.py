"""Pod workers: one per pod, keyed by uid, carrying out what `sync.decide` says.

A worker wakes when the pod changes in the API (an informer on the pods bound
to this node), when the runtime's records of it change (the PLEG relist), when
a probe's verdict flips, when a back-off it waits for runs out, and at least
every ten seconds. Each wake is one sync: observe the runtime, decide, perform
the actions (each with its Event), observe again and write the status through
`pods/status` if it changed. Workers of different pods run concurrently; one
pod's syncs never overlap, so its actions happen in the order decided.

The runtime is the memory that survives the kubelet: sandboxes and containers
carry the pod's uid, name and namespace in their labels, so a restarted kubelet
adopts what runs (nothing is restarted) and tears down what belongs to pods the
API no longer has.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx

from api.pods import qos_class
from client import errors
from client.actions import describe
from client.events import EventRecorder
from client.informer import Informer
from client.loopcontrol import LoopControl
from client.rest import Client
from client.trace import Record, Tracer
from proto import runtime_pb2 as pb

from . import config as cfg
from .env import EnvError, container_env, service_env_vars
from .observed import EXITED, RUNNING, Container, Memory, Observed
from .pleg import Pleg, list_pods
from .probes import ProbeTracker, run_probe, unhealthy_message
from .pullsecrets import PullSecretError, pull_auths
from .status import pod_status
from .sync import (
    Action,
    ConfirmDeletion,
    CreateSandbox,
    FailPod,
    KillContainer,
    KillSandbox,
    Plan,
    ReleaseVolumes,
    RemoveContainer,
    RemoveSandbox,
    StartContainer,
    decide,
    next_failure,
    normalize_image,
    pod_ref,
)
from .volumes import VolumeError, VolumeManager

log = logging.getLogger("skiff.kubelet.pods")
RESYNC_PERIOD = 10.0  # the kubelet's periodic sync, for what no event reports
RETRY_AFTER_ERROR = 2.0
MAX_IMMEDIATE_RESYNCS = 3
IMAGE_LIST_TTL = 5.0
MESSAGE_BYTES = 4096  # the kubelet's cap on a termination message
LOG_TAIL_LINES, LOG_TAIL_BYTES = 80, 2048  # FallbackToLogsOnError's
HOOK_HTTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class SyncStep:
    """What a runtime action's handler gets: the sync it belongs to."""

    uid: str
    pod: dict[str, Any] | None
    observed: Observed
    memory: Memory


# A runtime action's handler: True when the action went through.
RuntimeHandler = Callable[[Any, SyncStep], Awaitable[bool]]


@dataclass(frozen=True)
class Settings:
    node_name: str
    node_ip: str
    log_dir: str
    cluster_dns: str
    cluster_domain: str
    node_memory: int
    host_resolv: pb.DNSConfig = field(default_factory=pb.DNSConfig)


class PodWorkers:
    def _service_env(self, pod: dict[str, Any]) -> dict[str, str]:
        """The Service variables (KUBERNETES_SERVICE_HOST, ...) the pod's containers get."""
        if self.services is None:
            return {}
        links = (pod.get("spec") or {}).get("enableServiceLinks")
        return service_env_vars(
            self.services.store.list(),
            pod["metadata"].get("namespace", ""),
            enable_service_links=links is not False,
        )

    def __init__(
        self,
        *,
        client: Client,
        runtime: Any,
        images: Any,
        recorder: EventRecorder,
        settings: Settings,
        pods: Informer,
        configmaps: Informer,
        secrets: Informer,
        volumes: VolumeManager,
        static_pods: Callable[[], dict[str, dict[str, Any]]] | None = None,
        services: Informer | None = None,
        tracer: Tracer | None = None,
        loop: LoopControl | None = None,
    ) -> None:
        self.client, self.runtime, self.images = client, runtime, images
        # The reconcile trace and loop control every loop shares (client/trace.py,
        # client/loopcontrol.py): each acting sync is recorded; pause holds its actions.
        self.tracer, self.loop = tracer, loop
        self.recorder, self.s = recorder, settings
        self.pods, self.configmaps, self.secrets = pods, configmaps, secrets
        self.volumes = volumes
        self.static_pods = static_pods or dict
        self.services = services  # for KUBERNETES_SERVICE_HOST/PORT and service links
        self.pleg = Pleg(runtime, self.wake)
        self.memory: dict[str, Memory] = {}
        self._wakes: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._probers: dict[str, asyncio.Task[None]] = {}  # container id -> its probe loop
        self._last_pod: dict[str, dict[str, Any]] = {}
        self._events: asyncio.Queue[tuple[dict[str, Any], str, str, str]] = asyncio.Queue()
        self._event_sender: asyncio.Task[None] | None = None
        self._images: frozenset[str] = frozenset()
        self._images_at = -IMAGE_LIST_TTL
        self._handlers = self._runtime_handlers()
        pods.add_handlers(
            on_add=self._wake_for,
            on_update=lambda _, p: self._wake_for(p),
            on_delete=self._wake_for,
        )

    # -- the API Pod of a uid -----------------------------------------------------------------

    def pod(self, uid: str) -> dict[str, Any] | None:
        """The pod this node should run under that uid: from the API, or a static pod."""
        static = self.static_pods().get(uid)
        if static is not None:
            return static
        for pod in self.pods.store.by_index(BY_UID, uid):
            if MIRROR not in (pod["metadata"].get("annotations") or {}):
                return pod  # a mirror pod only shows a static pod: the static one runs
        return None

    def running_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """For the kubelet's HTTPS server: the API Pod this kubelet runs by that name."""
        pod = self.pods.store.get(f"{namespace}/{name}")
        if pod is not None:
            return pod
        for static in self.static_pods().values():
            meta = static["metadata"]
            if meta["name"] == name and meta.get("namespace") == namespace:
                return static
        return None

    # -- workers ------------------------------------------------------------------------------

    def _event(self, pod: dict[str, Any], event_type: str, reason: str, message: str) -> None:
        """Record an Event without waiting for the API, as client-go's broadcaster does:
        a pod's start is not held up by the reports of its steps. One sender sends them
        in order, one at a time, as the broadcaster's single goroutine does: 30 pods
        started at once make some 90 Events, and sent all at once they held up the
        status writes and token requests the pods wait for (docs/benchmarks.md)."""
        self._events.put_nowait((pod, event_type, reason, message))
        if self._event_sender is None or self._event_sender.done():
            self._event_sender = asyncio.create_task(self._send_events(), name="events")

    async def _send_events(self) -> None:
        while True:
            pod, event_type, reason, message = await self._events.get()
            await self.recorder.event(pod, event_type, reason, message)  # never raises

    def _wake_for(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if MIRROR in (meta.get("annotations") or {}):
            # A mirror pod changed: the static pod it shows is the one to sync.
            uid = meta["annotations"].get(MIRROR, "")
        else:
            uid = meta["uid"]
        if uid:
            self.wake(uid)

    def wake(self, uid: str) -> None:
        if uid not in self._wakes:
            self._wakes[uid] = asyncio.Event()
            self._workers[uid] = asyncio.create_task(self._work(uid), name=f"pod {uid}")
        self._wakes[uid].set()

    async def run(self) -> None:
        """Adopt what the runtime holds, then follow the API and the runtime for good."""
        await self.pods.wait_for_sync()
        await self.pleg.relist()  # wakes a worker for every pod the runtime holds
        for pod in self.pods.store.list():
            self.wake(pod["metadata"]["uid"])
        for uid in self.static_pods():
            self.wake(uid)
        # Volumes of pods that went while the kubelet was down: their workers release them.
        for uid in await asyncio.to_thread(self.volumes.pod_uids):
            self.wake(uid)
        await self.pleg.run()

    async def stop(self) -> None:
        tasks = [*self._workers.values(), *self._probers.values()]
        if self._event_sender is not None:
            tasks.append(self._event_sender)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _work(self, uid: str) -> None:
        wake = self._wakes[uid]
        timeout = 0.0
        in_a_row = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=max(timeout, 0.0))
            wake.clear()
            try:
                # While syncs follow one another at once, the last of them reports.
                plan, progressed = await self.sync(uid, report=in_a_row >= MAX_IMMEDIATE_RESYNCS)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("syncing pod %s failed", uid)
                timeout = RETRY_AFTER_ERROR
                continue
            if plan.finished and progressed:
                self._forget(uid)
                return
            # Work that went through usually enables the next step (a sandbox, then its
            # containers): take it at once rather than at the next relist, a few times.
            in_a_row = in_a_row + 1 if progressed else 0
            if progressed and in_a_row <= MAX_IMMEDIATE_RESYNCS:
                timeout = 0.0
                continue
            next_at = plan.requeue_at
            timeout = (
                RESYNC_PERIOD if next_at is None else min(next_at - time.time(), RESYNC_PERIOD)
            )

    def _forget(self, uid: str) -> None:
        self.memory.pop(uid, None)
        self._wakes.pop(uid, None)
        self._workers.pop(uid, None)
        self._last_pod.pop(uid, None)

    # -- one sync -----------------------------------------------------------------------------

    async def observe(self, uid: str) -> Observed:
        held = (await list_pods(self.runtime, uid)).get(uid, Observed())
        containers = held.containers
        pod = self.pod(uid)
        if pod is not None and any(c.state == EXITED for c in containers):
            containers = tuple(
                await asyncio.to_thread(
                    lambda: [self._with_termination_message(pod, c) for c in held.containers]
                )
            )
        return Observed(held.sandboxes, containers, await self._image_names())

    def _termination_log(self, pod: dict[str, Any], name: str, attempt: int) -> Path:
        """The host file mounted at the container's terminationMessagePath."""
        uid = pod["metadata"]["uid"]
        return self.volumes.pod_dir(uid) / "containers" / name / str(attempt)

    def _with_termination_message(self, pod: dict[str, Any], c: Container) -> Container:
        """An exited container's message: what it wrote to its terminationMessagePath, or
        with FallbackToLogsOnError and a failure, the end of its log, as the kubelet does."""
        spec = _container_spec(pod, c.name)
        if c.state != EXITED or spec is None:
            return c
        message = _read_tail(self._termination_log(pod, c.name, c.attempt), MESSAGE_BYTES)
        fallback = spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        if not message and fallback and c.exit_code != 0 and c.log_path:
            message = _log_tail(Path(c.log_path))
        return dataclasses.replace(c, message=message) if message else c

    async def _image_names(self, *, fresh: bool = False) -> frozenset[str]:
        """The node's image names, listed at most every few seconds: they only decide
        whether to pull, and a pull of an image that is there costs the runtime nothing."""
        if fresh or time.monotonic() - self._images_at > IMAGE_LIST_TTL:
            listed = await self.images.ListImages(pb.ListImagesRequest())
            self._images = frozenset(
                n for i in listed.images for n in (i.id, *i.repo_tags, *i.repo_digests)
            )
            self._images_at = time.monotonic()
        return self._images

    async def sync(self, uid: str, *, report: bool = True) -> tuple[Plan, bool]:
        """One sync of one pod; the plan, and whether all of its actions went through.

        A sync whose actions all went through is followed at once by another, which
        sees their effect; unless `report`, it leaves writing the status to that one."""
        pod = self.pod(uid)
        if pod is not None:
            self._last_pod[uid] = pod
        memory = self.memory.setdefault(uid, Memory())
        observed = await self.observe(uid)
        plan = decide(pod, observed, memory, time.time())
        if plan.actions:
            log.info("pod %s: %s", _name(pod or self._last_pod.get(uid), uid), plan.actions)
        subject = pod or self._last_pod.get(uid)
        record = self._begin_trace(subject, observed, plan)
        kills = [a for a in plan.actions if isinstance(a, KillContainer)]
        if kills:  # stop them together, so a pod takes one grace period, not one per container
            await self._gate(kills[0], record)
            await asyncio.gather(*(self._kill(subject, k, observed) for k in kills))
        progressed = bool(plan.actions)
        for action in plan.actions:
            if isinstance(action, KillContainer):
                continue
            await self._gate(action, record)
            if not await self._perform(uid, pod, action, observed, memory):
                progressed = False
                if record is not None:
                    record.actions[-1]["error"] = "failed (see the pod's Events)"
                    record.outcome = "error: a step failed; retried with back-off"
                break  # a failed step: the ones after it depend on it
        if record is not None and self.tracer is not None:
            self.tracer.finish(record)
        if plan.finished or pod is None:
            return plan, progressed
        if progressed and not report and not any(isinstance(a, FailPod) for a in plan.actions):
            return plan, progressed
        await self._report_back_off(pod, plan)
        if plan.actions:  # else the runtime holds what it held a moment ago
            observed = await self.observe(uid)
        await self._refresh_volumes(pod, observed)
        self._keep_probers(pod, observed, memory)
        await self._write_status(pod, observed, memory, plan)
        return plan, progressed

    def _begin_trace(
        self, pod: dict[str, Any] | None, observed: Observed, plan: Plan
    ) -> Record | None:
        if self.tracer is None or not plan.actions:
            if self.tracer is not None:
                self.tracer.count_noop("pods")
            return None
        record = self.tracer.begin(
            "pods",
            pod,
            decide=decide,
            kind="Pod",
            observed=f"{len(observed.sandboxes)} sandboxes, {len(observed.containers)} containers",
            wanted="the pod's containers running as its spec says",
        )
        if plan.waiting:
            record.details = {"waiting": {n: w.reason for n, w in plan.waiting.items()}}
        return record

    async def _gate(self, action: Action, record: Record | None) -> None:
        """Loop control before each action, and the action into the trace record."""
        text = describe(action)
        if self.loop is not None:
            await self.loop.gate("pods", text)
        if record is not None:
            record.actions.append({"action": text, "calls": [f"runtime {type(action).__name__}"]})

    async def _perform(
        self,
        uid: str,
        pod: dict[str, Any] | None,
        action: Action,
        observed: Observed,
        memory: Memory,
    ) -> bool:
        """One runtime action through its handler (the table in `_runtime_handlers`);
        False when it did not go through (the sync stops there and retries)."""
        handler = self._handlers[type(action)]
        try:
            return await handler(action, SyncStep(uid, pod, observed, memory))
        except grpc.aio.AioRpcError as e:
            log.warning("%s failed: %s", action, e.details())
            return False

    def _runtime_handlers(self) -> dict[type, RuntimeHandler]:
        """Each runtime action and who carries it out: the shape every loop's shell has
        (client/actions.py), no isinstance ladder. KillContainer is not here: a sync
        stops its containers together (one grace period), see `sync`."""
        return {
            CreateSandbox: self._do_create_sandbox,
            StartContainer: self._do_start,
            KillSandbox: self._do_kill_sandbox,
            RemoveSandbox: self._do_remove_sandbox,
            RemoveContainer: self._do_remove_container,
            ConfirmDeletion: self._do_confirm_deletion,
            ReleaseVolumes: self._do_release_volumes,
            FailPod: self._do_fail_pod,
        }

    async def _do_create_sandbox(self, action: CreateSandbox, step: SyncStep) -> bool:
        assert step.pod is not None
        return await self._create_sandbox(step.pod, action.attempt)

    async def _do_start(self, action: StartContainer, step: SyncStep) -> bool:
        assert step.pod is not None
        return await self._start(step.pod, action, step.observed, step.memory)

    async def _do_kill_sandbox(self, action: KillSandbox, step: SyncStep) -> bool:
        await self.runtime.StopPodSandbox(
            pb.StopPodSandboxRequest(pod_sandbox_id=action.sandbox_id)
        )
        return True

    async def _do_remove_sandbox(self, action: RemoveSandbox, step: SyncStep) -> bool:
        await self.runtime.RemovePodSandbox(
            pb.RemovePodSandboxRequest(pod_sandbox_id=action.sandbox_id)
        )
        return True

    async def _do_remove_container(self, action: RemoveContainer, step: SyncStep) -> bool:
        self._stop_prober(action.container_id)
        await self.runtime.RemoveContainer(
            pb.RemoveContainerRequest(container_id=action.container_id)
        )
        return True

    async def _do_confirm_deletion(self, action: ConfirmDeletion, step: SyncStep) -> bool:
        assert step.pod is not None
        await self._confirm_deletion(step.pod)
        return True

    async def _do_release_volumes(self, action: ReleaseVolumes, step: SyncStep) -> bool:
        await self._release(step.uid)
        return True

    async def _do_fail_pod(self, action: FailPod, step: SyncStep) -> bool:
        """Carried out by the status this sync writes (phase Failed, its reason)."""
        return True

    async def _refresh_volumes(self, pod: dict[str, Any], observed: Observed) -> None:
        """configMap, secret, downwardAPI and projected volumes follow their sources while
        the pod runs (the atomic `..data` swap makes each change appear whole)."""
        sandbox = observed.current_sandbox()
        if not pod["spec"].get("volumes") or sandbox is None or not sandbox.ready:
            return
        if pod["metadata"].get("deletionTimestamp"):
            return
        try:
            await asyncio.to_thread(self.volumes.mount_all, pod)
        except VolumeError as e:
            for _, message in e.failures:
                self._event(pod, "Warning", "FailedMount", message)

    async def _report_back_off(self, pod: dict[str, Any], plan: Plan) -> None:
        """A container held back by a back-off is a BackOff Event, as often as it is seen."""
        for name, waiting in plan.waiting.items():
            if waiting.reason == "CrashLoopBackOff":
                self._event(
                    pod,
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {name} in pod {pod_ref(pod)}",
                )
            elif waiting.reason == "ImagePullBackOff":
                self._event(pod, "Normal", "BackOff", waiting.message)

    # -- sandboxes ----------------------------------------------------------------------------

    async def _create_sandbox(self, pod: dict[str, Any], attempt: int) -> bool:
        if attempt > 0:
            self._event(
                pod,
                "Normal",
                "SandboxChanged",
                "Pod sandbox changed, it will be killed and re-created.",
            )
        try:
            await asyncio.to_thread(self.volumes.mount_all, pod)
        except VolumeError as e:
            for _, message in e.failures:
                self._event(pod, "Warning", "FailedMount", message)
            return False
        config = self._sandbox_config(pod, attempt)
        try:
            await self.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config))
        except grpc.aio.AioRpcError as e:
            self._event(
                pod,
                "Warning",
                "FailedCreatePodSandBox",
                f"Failed to create pod sandbox: {e.details()}",
            )
            return False
        return True

    def _sandbox_config(self, pod: dict[str, Any], attempt: int) -> pb.PodSandboxConfig:
        return cfg.sandbox_config(
            pod,
            attempt=attempt,
            qos=qos_class(pod),
            log_dir=self.s.log_dir,
            cluster_dns=self.s.cluster_dns,
            cluster_domain=self.s.cluster_domain,
            host_resolv=self.s.host_resolv,
        )

    async def _release(self, uid: str) -> None:
        """The pod is gone: its volumes and its logs go with it."""
        await asyncio.to_thread(self.volumes.unmount_all, uid)
        # `<namespace>_<name>_<uid>`: found by its uid, also for a pod deleted while the
        # kubelet was down (whose name this kubelet never saw).
        await asyncio.to_thread(_remove_pod_logs, Path(self.s.log_dir), uid)

    async def _confirm_deletion(self, pod: dict[str, Any]) -> None:
        """Every container has stopped: tell the API it may forget the pod."""
        meta = pod["metadata"]
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.client.delete(
                "v1", "Pod", meta["namespace"], meta["name"], grace_period=0, uid=meta["uid"]
            )

    # -- containers ---------------------------------------------------------------------------

    async def _start(
        self, pod: dict[str, Any], action: StartContainer, observed: Observed, memory: Memory
    ) -> bool:
        """Pull, create, start, postStart: each step an Event, a failure its waiting reason."""
        spec = _container_spec(pod, action.name)
        assert spec is not None  # decide starts only containers the spec names
        image = spec.get("image", "")
        name = action.name

        async def fail(reason: str, message: str, *, pulling: bool = False) -> bool:
            """Remember why (the waiting message) and say so in Events, in the kubelet's
            words: `Failed to pull image ...` then `Error: ErrImagePull` for a pull,
            `Error: <why>` for the rest."""
            memory.failures[name] = next_failure(
                memory.failures.get(name), reason, message, time.time()
            )
            if pulling:
                self._event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {message}')
                self._event(pod, "Warning", "Failed", f"Error: {reason}")
            else:
                self._event(pod, "Warning", "Failed", f"Error: {message}")
            return False

        if action.pull:
            self._event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
            began = time.monotonic()
            try:
                await self._pull(pod, image)
                await self._image_names(fresh=True)
            except PullSecretError as e:
                return await fail("ErrImagePull", str(e), pulling=True)
            except grpc.aio.AioRpcError as e:
                return await fail("ErrImagePull", e.details() or "", pulling=True)
            took = time.monotonic() - began
            self._event(
                pod, "Normal", "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s'
            )
        else:
            self._event(
                pod, "Normal", "Pulled", f'Container image "{image}" already present on machine'
            )
        sandbox = observed.current_sandbox()  # decide starts containers only in a ready one
        assert sandbox is not None
        try:
            container_config = await self._container_config(pod, spec, action.attempt, sandbox.ip)
        except (cfg.ConfigError, EnvError, VolumeError) as e:
            message = "; ".join(m for _, m in e.failures) if isinstance(e, VolumeError) else str(e)
            return await fail("CreateContainerConfigError", message)
        try:
            created = await self.runtime.CreateContainer(
                pb.CreateContainerRequest(
                    pod_sandbox_id=sandbox.id,
                    config=container_config,
                    sandbox_config=self._sandbox_config(pod, sandbox.attempt),
                )
            )
        except grpc.aio.AioRpcError as e:
            return await fail("CreateContainerError", e.details() or "")
        self._event(pod, "Normal", "Created", f"Created container {name}")
        try:
            await self.runtime.StartContainer(
                pb.StartContainerRequest(container_id=created.container_id)
            )
        except grpc.aio.AioRpcError as e:
            return await fail("RunContainerError", e.details() or "")
        self._event(pod, "Normal", "Started", f"Started container {name}")
        memory.failures.pop(name, None)
        if action.backoff is not None:
            memory.crash_backoff[name] = action.backoff
        post_start = (spec.get("lifecycle") or {}).get("postStart")
        if post_start:
            ok, why = await self._hook(pod, spec, post_start, created.container_id, sandbox.ip, 30)
            if not ok:
                self._event(pod, "Warning", "FailedPostStartHook", f"PostStartHook failed: {why}")
                await self.runtime.StopContainer(
                    pb.StopContainerRequest(container_id=created.container_id, timeout=0)
                )
        return True

    async def _pull(self, pod: dict[str, Any], image: str) -> None:
        """Pull with each credential the pod's imagePullSecrets give for the image, in
        turn, until one works (anonymously when none match), as the kubelet does."""
        missing: list[str] = []
        auths = pull_auths(
            pod,
            image,
            get_secret=lambda ns, n: self.secrets.store.get(f"{ns}/{n}"),
            on_missing=missing.append,
        )
        for message in missing:
            self._event(pod, "Warning", "FailedToRetrieveImagePullSecret", message)
        tries: list[pb.AuthConfig | None] = [*auths] or [None]
        for n, auth in enumerate(tries):
            try:
                await self.images.PullImage(
                    pb.PullImageRequest(image=pb.ImageSpec(image=image), auth=auth)
                )
                return
            except grpc.aio.AioRpcError:
                if n == len(tries) - 1:
                    raise

    async def _container_config(
        self, pod: dict[str, Any], spec: dict[str, Any], attempt: int, pod_ip: str
    ) -> pb.ContainerConfig:
        image = spec.get("image", "")
        status = await self.images.ImageStatus(
            pb.ImageStatusRequest(image=pb.ImageSpec(image=image))
        )
        qos = qos_class(pod)
        security = cfg.security_context(
            pod,
            spec,
            image_uid=status.image.uid if status.image.has_uid else None,
            image_user=status.image.username,
        )
        for source in (self.configmaps, self.secrets):
            fetch = getattr(source, "fetch_for", None)  # kubelet/objects.py, for node credentials
            if fetch is not None:
                await fetch(pod)
        env = container_env(
            pod,
            spec,
            node_ip=self.s.node_ip,
            get_configmap=lambda ns, n: self.configmaps.store.get(f"{ns}/{n}"),
            get_secret=lambda ns, n: self.secrets.store.get(f"{ns}/{n}"),
            pod_ips=[pod_ip] if pod_ip else [],
            service_env=self._service_env(pod),
        )
        paths = await asyncio.to_thread(self.volumes.mount_all, pod)
        mounts = self.volumes.container_mounts(pod, spec, paths, env=env)
        message_path = spec.get("terminationMessagePath") or "/dev/termination-log"
        log = self._termination_log(pod, spec["name"], attempt)
        await asyncio.to_thread(_make_writable_file, log)
        mounts.append((message_path, str(log), False))
        return cfg.container_config(
            pod,
            spec,
            attempt=attempt,
            image=normalize_image(image),
            env=env,
            mounts=mounts,
            resources=cfg.linux_resources(spec, qos=qos, node_memory=self.s.node_memory),
            security=security,
        )

    async def _kill(
        self, pod: dict[str, Any] | None, action: KillContainer, observed: Observed
    ) -> None:
        """preStop, then SIGTERM and SIGKILL when the grace period is over."""
        began = time.monotonic()
        if pod is not None:
            self._event(pod, "Normal", "Killing", action.message)
        spec = _container_spec(pod, action.name) if pod else None
        pre_stop = ((spec or {}).get("lifecycle") or {}).get("preStop")
        if action.pre_stop and pre_stop and pod is not None and spec is not None:
            sandbox = observed.current_sandbox()
            ok, why = await self._hook(
                pod,
                spec,
                pre_stop,
                action.container_id,
                sandbox.ip if sandbox else "",
                action.grace,
            )
            if not ok:
                self._event(pod, "Warning", "FailedPreStopHook", f"PreStopHook failed: {why}")
        remaining = max(int(action.grace - (time.monotonic() - began)), 0)
        if action.pre_stop and pre_stop:
            remaining = max(remaining, 2)  # the kubelet's minimum after a hook ran
        self._stop_prober(action.container_id)
        try:
            await self.runtime.StopContainer(
                pb.StopContainerRequest(container_id=action.container_id, timeout=remaining)
            )
        except grpc.aio.AioRpcError as e:
            log.warning("stopping %s failed: %s", action.container_id, e.details())

    async def _hook(
        self,
        pod: dict[str, Any],
        spec: dict[str, Any],
        hook: dict[str, Any],
        container_id: str,
        pod_ip: str,
        seconds: float,
    ) -> tuple[bool, str]:
        """A lifecycle handler: exec in the container, or an HTTP GET to the pod."""
        if "exec" in hook:
            command = list(hook["exec"].get("command") or [])
            try:
                result = await self.runtime.ExecSync(
                    pb.ExecSyncRequest(container_id=container_id, cmd=command, timeout=int(seconds))
                )
            except grpc.aio.AioRpcError as e:
                return False, e.details() or ""
            if result.exit_code != 0:
                out = (result.stdout + result.stderr).decode(errors="replace").strip()
                return False, f"command {command!r} exited with {result.exit_code}: {out}"
            return True, ""
        if "httpGet" in hook:
            get = hook["httpGet"]
            port = _port(spec, get.get("port"))
            host = get.get("host") or pod_ip or "127.0.0.1"
            url = f"{(get.get('scheme') or 'HTTP').lower()}://{host}:{port}{get.get('path') or '/'}"
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            try:
                async with httpx.AsyncClient(verify=False, timeout=HOOK_HTTP_TIMEOUT) as http:
                    r = await http.get(url, headers=headers)
            except httpx.HTTPError as e:
                return False, f"Get {url!r}: {e}"
            if r.status_code >= 400:
                return False, f"HTTP lifecycle hook ({url}) returned {r.status_code}"
            return True, ""
        if "sleep" in hook:
            await asyncio.sleep(min(float(hook["sleep"].get("seconds") or 0), seconds))
            return True, ""
        return False, "the hook names no handler (exec, httpGet or sleep)"

    # -- probes -------------------------------------------------------------------------------

    def _keep_probers(self, pod: dict[str, Any], observed: Observed, memory: Memory) -> None:
        """A probe loop per running container that has probes; none for the others."""
        running = {c.id: c for c in observed.containers if c.state == RUNNING}
        sandbox = observed.current_sandbox()
        pod_ip = (
            self.s.node_ip if pod["spec"].get("hostNetwork") else (sandbox.ip if sandbox else "")
        )
        held = {c.id for c in observed.containers}
        for verdicts in (memory.ready, memory.started, memory.unhealthy):
            for gone in [cid for cid in verdicts if cid not in held]:
                del verdicts[gone]  # the container was removed: so is what probes said of it
        stopped = {c.id for c in observed.containers if c.state != RUNNING}  # this pod's only
        for cid in [cid for cid in self._probers if cid in stopped]:
            self._stop_prober(cid)
        if pod["metadata"].get("deletionTimestamp"):
            return
        for cid, c in running.items():
            spec = _container_spec(pod, c.name)
            if cid in self._probers or spec is None:
                continue
            if any(k in spec for k in ("livenessProbe", "readinessProbe", "startupProbe")):
                self._probers[cid] = asyncio.create_task(
                    self._probe_loop(pod, spec, c, pod_ip, memory),
                    name=f"probes {c.name} {cid[:12]}",
                )

    def _stop_prober(self, container_id: str) -> None:
        task = self._probers.pop(container_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _probe_loop(
        self, pod: dict[str, Any], spec: dict[str, Any], c: Container, pod_ip: str, memory: Memory
    ) -> None:
        """Startup first (it gates the others), then liveness and readiness, each on its period."""
        uid = pod["metadata"]["uid"]
        trackers = {
            kind: ProbeTracker(spec[f"{kind}Probe"], kind, started_at=c.started_at)
            for kind in ("startup", "liveness", "readiness")
            if f"{kind}Probe" in spec
        }

        async def exec_sync(command: list[str], seconds: float) -> tuple[int, bytes]:
            result = await self.runtime.ExecSync(
                pb.ExecSyncRequest(container_id=c.id, cmd=command, timeout=max(int(seconds), 1))
            )
            return result.exit_code, result.stdout + result.stderr

        if "startup" not in trackers:
            memory.started[c.id] = True
        while True:
            now = time.time()
            started = memory.started.get(c.id, False)
            for kind, tracker in trackers.items():
                if (kind == "startup") == started or not tracker.due(now):
                    continue
                current = self.pod(uid) or pod
                # The sandbox's address, which the API may not show yet, is what httpGet
                # and tcpSocket probes dial.
                status = {**(current.get("status") or {}), "podIP": pod_ip}
                probe_pod = {**current, "status": status}
                ok, why = await run_probe(
                    spec[f"{kind}Probe"], pod=probe_pod, container=spec, exec_sync=exec_sync
                )
                if not ok:
                    message = unhealthy_message(kind, why)
                    self._event(current, "Warning", "Unhealthy", message)
                flipped = tracker.record(ok, time.time())
                if flipped is None:
                    continue
                if kind == "readiness":
                    memory.ready[c.id] = flipped
                elif kind == "startup" and flipped:
                    memory.started[c.id] = True
                elif not flipped:  # liveness failed, or startup never succeeded
                    verb = "liveness" if kind == "liveness" else "startup"
                    memory.unhealthy[c.id] = (
                        f"Container {c.name} failed {verb} probe, will be restarted"
                    )
                self.wake(uid)
            await asyncio.sleep(0.25)

    # -- status -------------------------------------------------------------------------------

    async def _write_status(
        self, pod: dict[str, Any], observed: Observed, memory: Memory, plan: Plan
    ) -> None:
        fail = next((a for a in plan.actions if isinstance(a, FailPod)), None)
        status = pod_status(
            pod,
            observed,
            memory,
            plan.waiting,
            host_ip=self.s.node_ip,
            now=time.time(),
            failed=(fail.reason, fail.message) if fail else None,
        )
        target = self._status_target(pod)
        if target is None or status == target.get("status"):
            return
        updated = copy.deepcopy(target)
        updated["status"] = status
        try:
            await self.client.update_status(updated)
        except (errors.Conflict, errors.NotFound):
            pass  # a newer version is on its way through the informer: it wakes us again

    def _status_target(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        """The API object whose status shows this pod: itself, or a static pod's mirror."""
        if pod["metadata"].get("annotations", {}).get(MIRROR_SOURCE) == "file":
            meta = pod["metadata"]
            return self.pods.store.get(f"{meta['namespace']}/{meta['name']}")
        return pod


MIRROR_SOURCE = "kubernetes.io/config.source"
BY_UID = "uid"


def by_uid(pod: dict[str, Any]) -> list[str]:
    """The pods informer's index: workers are keyed by uid, the cache by name."""
    return [pod["metadata"]["uid"]]


MIRROR = "kubernetes.io/config.mirror"


def _make_writable_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    path.chmod(0o666)  # whichever user the container runs as writes its message


def _read_tail(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(path.stat().st_size - limit, 0))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _log_tail(path: Path) -> str:
    """The last 80 lines (at most 2 KiB) of a CRI-format log, without the prefixes."""
    lines = _read_tail(path, LOG_TAIL_BYTES * 4).splitlines()[-LOG_TAIL_LINES:]
    text = "".join(
        parts[3] + ("" if parts[2] == "P" else "\n")
        for line in lines
        if len(parts := line.split(" ", 3)) == 4
    )
    return text[-LOG_TAIL_BYTES:]


def _remove_pod_logs(log_dir: Path, uid: str) -> None:
    for pod_logs in log_dir.glob(f"*_{uid}"):
        shutil.rmtree(pod_logs, ignore_errors=True)


def _container_spec(pod: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if pod is None:
        return None
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        if c["name"] == name:
            return dict(c)
    return None


def _port(spec: dict[str, Any], port: Any) -> int:
    """A port number, or a named port of the container."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in spec.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"no port named {port!r} in container {spec['name']}")


def _name(pod: dict[str, Any] | None, uid: str) -> str:
    if pod is None:
        return uid
    return f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"
