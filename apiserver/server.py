"""`skiff apiserver`: etcd (embedded or given), PKI, bootstrap objects, HTTPS.

Start-up, in order: the state directory (tightened to root-only, also when
an older skiff made it); etcd (a child process on loopback over TLS with
client certificates, unless `--etcd-servers` names one); the CA, serving
certificate, admin token and admin kubeconfig (made once, reused after); the
objects every cluster has from the start (four namespaces and the
`kubernetes` Service); then the HTTPS listener. Stopping reverses it and stops
the embedded etcd, whose data stays for the next start.

While running, the apiserver supervises its etcd as a process supervisor
would: when the child dies it is started again on the same ports and data
after a back-off (1 s doubling to 30 s; reset once it has stayed up), and the
health endpoints tell the truth meanwhile — `/readyz` fails while etcd does
not answer, `/livez` once it has not answered for `etcd_livez_grace` seconds,
so that a supervisor of the apiserver can act.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from api import resources

from . import apiservices, audit, certs, errors, etcd_maintenance, identities, metrics_api, workers
from .admission import ServiceAllocation
from .allocators import NodePorts, ServiceIPs
from .app import build_app
from .auth import Authenticator, TokenEntry, UserInfo, load_token_file, write_token_file
from .authz import setup as authz_setup
from .crd.controller import CRDController
from .endpoint_reconciler import EndpointReconciler
from .etcd_process import (
    EtcdError,
    EtcdProcess,
    free_port,
    parse_initial_cluster,
    port_free,
    restart_delay,
    split_url,
)
from .kubelet_certs import ensure_kubelet_client
from .kubelet_proxy import KubeletConnector
from .registry import Registry, WriteOptions, storage_prefix, watch_cached
from .serviceaccounts import TokenIssuer, ensure_signing_key
from .storage import KINDS_BY_PREFIX, ClientTLS, StorageError, Store
from .tls import ClientCertProtocol, server_context
from .watch import WatchHubs
from .ws_tls import ClientCertWebSocketProtocol

log = logging.getLogger("skiff.apiserver")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("system:masters",)
COMPACTED_FILE = "etcd-compacted-revision"  # the parent's last compaction, for its workers


@dataclass
class ServerConfig:
    state_dir: Path = Path("/var/lib/skiff")
    secure_port: int = 6443
    bind_address: str = "0.0.0.0"
    advertise_address: str = "127.0.0.1"
    etcd_servers: list[str] = field(default_factory=list)
    etcd_cafile: Path | None = None
    etcd_certfile: Path | None = None
    etcd_keyfile: Path | None = None
    # The embedded etcd as one member of several (see docs/multi-vm-lab.md): its
    # name, every member as `name=https://ip:2380,...`, `new` or `existing`, and
    # its client port (0: a free one when alone, 2379 in a cluster).
    etcd_name: str = "skiff"
    etcd_initial_cluster: str = ""
    etcd_initial_cluster_state: str = "new"
    etcd_client_port: int = 0
    # /livez fails once etcd has not answered for this long (restarts take seconds).
    etcd_livez_grace: float = 60.0
    token_auth_file: Path | None = None
    service_cluster_ip_range: str = "10.96.0.0/12"
    service_node_port_range: tuple[int, int] = (30000, 32767)
    etcd_compaction_interval: float = 300.0  # kube-apiserver's default, 5 minutes
    event_ttl: float = 3600.0  # --event-ttl: Events are kept this long after their last write
    log_level: str = "info"
    audit_policy_file: Path | None = None  # audit.py; with audit_log_path
    audit_log_path: Path | None = None
    audit_log_maxsize: int = 100  # megabytes
    audit_log_maxbackup: int = 5
    # Worker processes serving the port (workers.py); 1: this process serves, as before.
    workers: int = 1

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"


class APIServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.etcd: EtcdProcess | None = None
        self.store: Store | None = None
        self.hubs: WatchHubs | None = None
        self.registry: Registry | None = None
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Since when etcd has not answered (monotonic), None while it answers.
        self.etcd_down_since: float | None = None
        self._lock_fd: int | None = None
        self.authorization: authz_setup.Authorization | None = None
        self.pool: workers.WorkerPool | None = None  # the parent's workers
        self._is_worker = False
        self._sockets: list[socket.socket] | None = None  # a worker's inherited socket

    # -- start-up -------------------------------------------------------------

    def _etcd_tls(self) -> ClientTLS | None:
        cfg = self.config
        if cfg.etcd_servers:
            if cfg.etcd_cafile or cfg.etcd_certfile or cfg.etcd_keyfile:
                return ClientTLS(cfg.etcd_cafile, cfg.etcd_certfile, cfg.etcd_keyfile)
            return None
        pki = certs.ensure_etcd_pki(cfg.pki_dir)
        return ClientTLS(pki.ca.cert, pki.apiserver_client.cert, pki.apiserver_client.key)

    def _spawn_etcd(self) -> None:
        """Start the embedded etcd (stopping any member left on its data dir).

        Runs on the event loop's thread: the child's death signal is tied to
        the thread that forks it, and this one lives as long as the process.
        """
        state = self.config.state_dir
        ports_file = state / "etcd-ports.json"
        client = peer = 0
        if self.etcd is not None:
            client, peer = self.etcd.client_port, self.etcd.peer_port
        elif ports_file.exists():
            # Same ports as last time, so clients and the stored peer URL stay true.
            saved = json.loads(ports_file.read_text())
            client, peer = int(saved["client"]), int(saved["peer"])
        cfg = self.config
        if cfg.etcd_initial_cluster:
            self._spawn_member(state)
            return
        etcd = EtcdProcess(
            data_dir=state / "etcd",
            client_port=client,
            peer_port=peer,
            log_path=state / "etcd.log",
            pid_file=state / "etcd.pid",
            pki=certs.ensure_etcd_pki(cfg.pki_dir),
        )
        etcd.stop_leftovers()  # a crashed apiserver's member holds our ports
        if not (client and peer and port_free(client) and port_free(peer)):
            etcd.client_port, etcd.peer_port = free_port(), free_port()
        etcd.spawn()
        self.etcd = etcd
        fd = os.open(ports_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"client": etcd.client_port, "peer": etcd.peer_port}, f)
        log.info("etcd started at %s (pid %s, data in %s)", etcd.url, etcd.proc and etcd.proc.pid,
                 etcd.data_dir)  # fmt: skip

    def _spawn_member(self, state: Path) -> None:
        """Start the embedded etcd as one member of a cluster of several.

        Its peer address comes from its own entry in --etcd-initial-cluster, so
        the ports are fixed (the other members know them) and its certificates
        name that address. Every member's certificates must come from the same
        etcd CA (pki/etcd/ca.crt and ca.key copied before the first start), or
        the members refuse each other's peer connections.
        """
        cfg = self.config
        members = parse_initial_cluster(cfg.etcd_initial_cluster)
        if cfg.etcd_name not in members:
            raise EtcdError(
                f"--etcd-initial-cluster names no member {cfg.etcd_name!r} (--etcd-name)"
            )
        if cfg.etcd_initial_cluster_state not in ("new", "existing"):
            raise EtcdError("--etcd-initial-cluster-state must be new or existing")
        host, peer = split_url(members[cfg.etcd_name])
        etcd = EtcdProcess(
            data_dir=state / "etcd",
            client_port=cfg.etcd_client_port or 2379,
            peer_port=peer,
            name=cfg.etcd_name,
            log_path=state / "etcd.log",
            pid_file=state / "etcd.pid",
            pki=certs.ensure_etcd_pki(cfg.pki_dir, hosts=[host]),
            host=host,
            initial_cluster=cfg.etcd_initial_cluster,
            initial_cluster_state=cfg.etcd_initial_cluster_state,
        )
        etcd.stop_leftovers()
        etcd.spawn()
        self.etcd = etcd
        fd = os.open(state / "etcd-ports.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"client": etcd.client_port, "peer": etcd.peer_port}, f)
        log.info("etcd member %s started at %s (pid %s), peers %s", etcd.name, etcd.url,
                 etcd.proc and etcd.proc.pid, cfg.etcd_initial_cluster)  # fmt: skip

    def _lock_state_dir(self) -> None:
        """One apiserver per state directory while it runs its etcd.

        Starting stops any member left on the data directory; without this
        lock a second apiserver on the same state directory would stop the
        first one's live etcd. The kernel drops the lock when its holder dies,
        also on kill -9, so a restart after a crash is never refused.
        """
        fd = os.open(self.config.state_dir / "apiserver.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EtcdError(
                f"another skiff apiserver runs the etcd of {self.config.state_dir}; "
                "stop it first, or give this one its own --state-dir"
            ) from None
        self._lock_fd = fd

    async def _start_etcd(self) -> list[str]:
        if self.config.etcd_servers:
            return self.config.etcd_servers
        self._lock_state_dir()
        self._spawn_etcd()
        assert self.etcd is not None
        await asyncio.to_thread(self.etcd.wait_listening)
        return [self.etcd.url]

    async def _advertise_peer_url(self) -> None:
        """etcd keeps a member's peer URL from its first start; correct it when the
        port or the scheme (plain HTTP before skiff used TLS) has changed."""
        assert self.etcd is not None and self.store is not None
        deadline = time.monotonic() + 20.0
        while True:
            try:
                changed = await self.store.update_peer_urls(self.etcd.name, [self.etcd.peer_url])
                break
            except StorageError:
                # A member just started may not have elected itself leader yet.
                if time.monotonic() > deadline or self.etcd.exited() is not None:
                    raise
                await asyncio.sleep(0.2)
        if changed:
            log.info("etcd member %s now advertises %s", self.etcd.name, self.etcd.peer_url)

    def _credentials(self, write: bool = True) -> Authenticator:
        """The PKI and tokens: made on first start, reused afterwards.

        A worker (`write=False`) only reads what its parent made: N workers
        rewriting the kubeconfig at once could leave a client reading half of one.
        """
        cfg = self.config
        ca = certs.ensure_ca(cfg.pki_dir)
        names = certs.serving_names([cfg.advertise_address, cfg.bind_address])
        self.serving = certs.ensure_serving_cert(cfg.pki_dir, ca, names)
        self.ca = ca
        self.kubelet_client = ensure_kubelet_client(cfg.pki_dir, ca)
        token_file = cfg.token_auth_file or cfg.pki_dir / "tokens.csv"
        if not token_file.exists() and cfg.token_auth_file is None:
            admin = TokenEntry(secrets.token_hex(24), UserInfo(ADMIN_USER, "admin", ADMIN_GROUPS))
            write_token_file(token_file, [admin])
        tokens = load_token_file(token_file)
        if not write:
            return Authenticator(tokens)
        # The service-account signing key too: workers made at once would each make
        # their own, and a token one signed would fail on the other.
        ensure_signing_key(cfg.pki_dir)
        admin_token = next((t.token for t in tokens if t.user.name == ADMIN_USER), None)
        client = certs.ensure_client_cert(cfg.pki_dir, ca, "admin", ADMIN_USER, ADMIN_GROUPS)
        certs.write_kubeconfig(
            cfg.kubeconfig,
            server=f"https://{cfg.advertise_address}:{cfg.secure_port}",
            ca=ca.cert,
            user=ADMIN_USER,
            token=admin_token,
            client=None if admin_token else client,
        )
        # Each component's own identity (identities.py); only admin is system:masters.
        identities.ensure_components(
            cfg.state_dir,
            f"https://{cfg.advertise_address}:{cfg.secure_port}",
            identities.local_node_name(),
        )
        return Authenticator(tokens)

    async def _bootstrap(self) -> None:
        """The objects every Kubernetes cluster has before anyone asks."""
        assert self.registry is not None
        ns = resources.lookup("", "v1", "namespaces")
        svc = resources.lookup("", "v1", "services")
        assert ns is not None and svc is not None
        for name in SYSTEM_NAMESPACES:
            await self._ensure(ns, "", {"metadata": {"name": name}})
        await self._ensure(
            svc,
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": self.registry.services.ips.kubernetes_ip,
                    "ports": [
                        {
                            "name": "https",
                            "port": 443,
                            "protocol": "TCP",
                            "targetPort": self.config.secure_port,
                        }
                    ],
                    "sessionAffinity": "None",
                    "type": "ClusterIP",
                },
            },
        )
        await self._kubernetes_endpoints()
        await self.register_apiservices()

    async def register_apiservices(self) -> None:
        """One Local, Available APIService per group-version served here (apiservices.py),
        as kube-aggregator's autoregister keeps them; call again when groups are added."""
        assert self.registry is not None
        info = resources.by_kind("apiregistration.k8s.io/v1", "APIService")
        assert info is not None
        served = [*resources.groups(), (metrics_api.GROUP, [metrics_api.VERSION])]
        for obj in apiservices.desired(served):
            name = obj["metadata"]["name"]
            await self._ensure(info, "", obj)

            def available(current: dict) -> dict:
                status = apiservices.with_available(current.get("status"), self.registry.clock())
                return current if status is None else {**current, "status": status}

            await self.registry.update(
                info, "", name, available, WriteOptions(), subresource="status"
            )

    async def _kubernetes_endpoints(self) -> None:
        """The `kubernetes` Service has no selector: the apiservers say where they are,
        each keeping a lease in etcd (endpoint_reconciler.py). Once per apiserver
        instance: with several worker processes, only in the first."""
        assert self.store is not None and self.registry is not None
        reconciler = EndpointReconciler(
            self.store, self.registry, self.config.advertise_address, self.config.secure_port
        )
        await reconciler.start()
        self._tasks.append(asyncio.create_task(reconciler.run(), name="kubernetes endpoints"))

    async def _ensure(self, info: resources.ResourceInfo, namespace: str, obj: dict) -> None:
        assert self.registry is not None
        obj = {"apiVersion": info.api_version, "kind": info.kind, **obj}
        try:
            await self.registry.get(info, namespace, obj["metadata"]["name"])
            return  # there from an earlier start
        except errors.ApiError as e:
            if e.code != 404:
                raise
        try:
            await self.registry.create(info, namespace, obj, WriteOptions())
        except errors.ApiError as e:
            if e.code == 409:
                return
            # Several apiservers on one etcd start at once: another one's create of
            # the same object may win between our get and create, and ours then fails
            # on what that one took (the `kubernetes` Service's IP: 422, not 409).
            # The winner may have taken the IP but not written its Service yet.
            for _ in range(50):
                try:
                    await self.registry.get(info, namespace, obj["metadata"]["name"])
                    return
                except errors.ApiError:
                    await asyncio.sleep(0.2)
            raise e from None

    async def _connect(self) -> None:
        """The state directory, etcd (started here unless given) and our client of it."""
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        certs.secure_permissions(cfg.state_dir)
        KINDS_BY_PREFIX.update(_kinds_by_prefix())
        tls = self._etcd_tls()
        endpoints = await self._start_etcd()
        self.store = Store(endpoints, tls=tls)
        await self.store.connect(retry_for=20.0)  # etcd may be starting too
        if self.etcd is not None and not self.etcd.clustered:
            await self._advertise_peer_url()
        certs.secure_permissions(cfg.state_dir)

    async def _registry(self, *, owner: bool, follow_all: bool) -> None:
        """Watch caches, the registry and the CRD controller (which writes only
        in the `owner`: the single process, or the parent of workers)."""
        assert self.store is not None
        cfg = self.config
        self.hubs = WatchHubs(self.store)
        self.hubs.start_revision = await self.store.revision()
        # Every resource's watch cache follows etcd from now on, as kube-apiserver's do:
        # a hub started only at its first watcher would first replay every write
        # since start, and that watcher's first events would wait behind the replay.
        if follow_all:
            for prefix in sorted(
                {
                    storage_prefix(info)
                    for info in resources.RESOURCES
                    if "watch" in info.verbs and watch_cached(info)
                }
            ):
                await self.hubs.hub(prefix)
        services = ServiceAllocation(
            ServiceIPs(self.store, cfg.service_cluster_ip_range),
            NodePorts(self.store, *cfg.service_node_port_range),
        )
        self.registry = Registry(
            self.store, self.hubs, services, event_ttl=max(1, int(cfg.event_ttl))
        )
        # CustomResourceDefinitions: the kinds they add are served before the first request.
        self.crds = CRDController(self.registry, writes=owner)
        await self.crds.start()

    async def _serving(self, authenticator: Authenticator) -> None:
        """Authorization, the ASGI app and its uvicorn server (not yet listening)."""
        assert self.registry is not None
        cfg = self.config
        self.authorization = await authz_setup.start(
            self.registry, reconcile_defaults=not self._is_worker
        )
        # Service-account tokens (serviceaccounts.py): signed here, accepted as bearer tokens.
        self.authorization.issuer = TokenIssuer(
            ensure_signing_key(cfg.pki_dir), lookup=self.authorization.lookup
        )
        authenticator.token_authenticators.append(self.authorization.issuer.authenticate)
        self.authorization.ca = self.ca  # authz/certificates.py signs approved CSRs with it
        app = build_app(
            self.registry,
            authenticator,
            server_address=f"{cfg.advertise_address}:{cfg.secure_port}",
            ready=self.ready,
            kubelets=KubeletConnector(self.ca.cert, *astuple(self.kubelet_client)),
            live=self.live,
            authorization=self.authorization,
            audit=self._audit(),
            kinds_caught_up=self.crds.catch_up if self.crds is not None else None,
        )
        pki = (self.serving.cert, self.serving.key, self.ca.cert)
        uv_config = uvicorn.Config(
            app,
            host=cfg.bind_address,
            port=cfg.secure_port,
            http=ClientCertProtocol,
            ws=ClientCertWebSocketProtocol,
            ws_per_message_deflate=False,
            lifespan="off",
            log_level=cfg.log_level,
            access_log=False,
            ssl_certfile=str(pki[0]),
            ssl_keyfile=str(pki[1]),
            ssl_context_factory=lambda _config, _default: server_context(*pki),
            timeout_keep_alive=60,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(uv_config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    def _upkeep(self) -> None:
        """What runs once per cluster member: compaction, etcd's supervision and upkeep."""
        assert self.store is not None
        self._tasks.append(asyncio.create_task(self._compact_periodically(), name="compaction"))
        self._tasks.append(asyncio.create_task(self._watch_etcd_health(), name="etcd health"))
        if self.etcd is not None:
            self._tasks.append(asyncio.create_task(self._supervise_etcd(), name="etcd supervisor"))
        upkeep = etcd_maintenance.run(self.store, defragment=not self.config.etcd_servers)
        self._tasks.append(asyncio.create_task(upkeep, name="etcd-upkeep"))

    async def start(self) -> None:
        """One process that does everything and serves (--workers 1)."""
        cfg = self.config
        await self._connect()
        await self._registry(owner=True, follow_all=True)
        authenticator = self._credentials()
        await self._bootstrap()
        await self._serving(authenticator)
        self._upkeep()
        workers.settle_gc()  # the caches are filled
        log.info("serving on https://%s:%d", cfg.bind_address, cfg.secure_port)

    async def start_parent(
        self,
        sock: socket.socket | None = None,
        preforked: list[tuple[workers.Forked, int]] | None = None,
    ) -> None:
        """The parent of workers: everything that happens once, then the workers
        (on `sock`, bound by the caller, and `preforked` by it, when given)."""
        cfg = self.config
        await self._connect()
        await self._registry(owner=True, follow_all=False)
        self._credentials()
        await self._bootstrap()
        assert self.registry is not None
        await authz_setup.reconcile_bootstrap(self.registry)  # once, not N times at once
        self._upkeep()
        if cfg.audit_log_path is not None:
            self._tasks.append(asyncio.create_task(self._rotate_audit(), name="audit rotation"))
        metrics_dir = cfg.state_dir / "metrics"
        workers.clean_metrics_dir(metrics_dir)
        if sock is None:
            sock = workers.listen_socket(cfg.bind_address, cfg.secure_port)
        self.pool = workers.WorkerPool(
            cfg.workers, sock, self._worker_config(), metrics_dir, Path.cwd(), preforked
        )
        self.pool.start()  # the socket stays open here: a restarted worker inherits it too
        self._tasks.append(asyncio.create_task(self._supervise_workers(), name="workers"))
        log.info("serving on https://%s:%d with %d workers", cfg.bind_address, cfg.secure_port,
                 cfg.workers)  # fmt: skip

    async def start_worker(self, sock: socket.socket) -> None:
        """A worker: its own etcd client, watch caches and authorization caches."""
        await self._connect()  # etcd_servers names the parent's etcd: nothing is started
        await self._registry(owner=False, follow_all=True)
        authenticator = self._credentials(write=False)
        await self._serving(authenticator)
        self._tasks.append(asyncio.create_task(self._watch_etcd_health(), name="etcd health"))
        self._tasks.append(asyncio.create_task(self._follow_compaction(), name="compaction"))
        self._sockets = [sock]
        workers.settle_gc()  # the caches are filled

    def _worker_config(self) -> str:
        """The workers' configuration: ours, with etcd given (the embedded one's URL
        and the apiserver's client certificate for it)."""
        cfg = self.config
        worker = dataclasses.replace(cfg, workers=1, etcd_initial_cluster="")
        if self.etcd is not None:
            pki = certs.ensure_etcd_pki(cfg.pki_dir)
            worker = dataclasses.replace(
                worker,
                etcd_servers=[self.etcd.url],
                etcd_cafile=pki.ca.cert,
                etcd_certfile=pki.apiserver_client.cert,
                etcd_keyfile=pki.apiserver_client.key,
            )
        return config_to_json(worker)

    async def _supervise_workers(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            self.pool.check()

    async def _rotate_audit(self) -> None:
        """Workers append; the parent alone rotates (audit.RotatingWriter)."""
        cfg = self.config
        assert cfg.audit_log_path is not None
        while True:
            await asyncio.sleep(0.5)
            with contextlib.suppress(OSError):
                audit.rotate_if_full(
                    cfg.audit_log_path, cfg.audit_log_maxsize << 20, cfg.audit_log_maxbackup
                )

    async def _follow_compaction(self) -> None:
        """A worker's watch caches forget what the parent compacted away, so that a
        watch from before it answers 410 on every worker alike."""
        assert self.hubs is not None
        path = self.config.state_dir / COMPACTED_FILE
        while True:
            await asyncio.sleep(0.5)
            with contextlib.suppress(OSError, ValueError):
                revision = int(path.read_text())
                if revision > self.hubs.compacted:
                    self.hubs.forget_before(revision)

    def _audit(self) -> Callable[[ASGIApp], ASGIApp] | None:
        """The audit layer when a policy and a log path are given (audit.py)."""
        cfg = self.config
        if cfg.audit_policy_file is None or cfg.audit_log_path is None:
            return None
        policy = audit.load_policy(cfg.audit_policy_file.read_text())
        writer = audit.RotatingWriter(
            cfg.audit_log_path,
            cfg.audit_log_maxsize << 20,
            cfg.audit_log_maxbackup,
            rotates=not self._is_worker,  # under workers the parent rotates
        )
        self._audit_writer = writer
        log.info("audit log at %s", cfg.audit_log_path)
        return lambda app: audit.Audit(app, policy, writer)

    async def serve(self) -> None:
        assert self._server is not None
        await self._server.serve(sockets=self._sockets)

    async def _etcd_answers(self) -> bool:
        if self.store is None:
            return False
        try:
            await asyncio.wait_for(self.store.revision(), timeout=2.0)
        except Exception:
            if self.etcd_down_since is None:
                self.etcd_down_since = time.monotonic()
            return False
        self.etcd_down_since = None
        return True

    async def ready(self) -> bool:
        """/readyz: etcd answers now."""
        return await self._etcd_answers()

    async def live(self) -> bool:
        """/livez: etcd has not been out of reach for longer than the grace period."""
        await self._etcd_answers()
        down = self.etcd_down_since
        return down is None or time.monotonic() - down <= self.config.etcd_livez_grace

    async def _watch_etcd_health(self) -> None:
        """Ping etcd every second, so that /livez knows since when it is gone."""
        while True:
            up = await self._etcd_answers()
            if not up and self.store is not None and self.store.client is None:
                # A reconnect to a restarted etcd failed half-way: try again.
                with contextlib.suppress(StorageError):
                    await self.store.connect()
            await asyncio.sleep(1.0 if up else 0.5)

    async def _supervise_etcd(self) -> None:
        """Start the embedded etcd again whenever it dies, after `restart_delay`
        (1 s doubling to 30 s while it keeps dying, 1 s again once it stayed up)."""
        delay: float | None = None
        started = time.monotonic()
        while True:
            await asyncio.sleep(0.2)
            assert self.etcd is not None and self.store is not None
            code = self.etcd.exited()
            if code is None:
                continue
            delay = restart_delay(delay, time.monotonic() - started)
            log.error("etcd (pid %s) exited with code %s; starting it again in %.0fs",
                      self.etcd.proc and self.etcd.proc.pid, code, delay)  # fmt: skip
            await asyncio.sleep(delay)
            old_url = self.etcd.url
            started = time.monotonic()
            try:
                self._spawn_etcd()
                await asyncio.to_thread(self.etcd.wait_listening)
                if self.etcd.url != old_url:
                    await self.store.reconnect([self.etcd.url])
                    if self.pool is not None:
                        self.pool.replace_all(self._worker_config())
                await self._advertise_peer_url()
            except Exception as e:  # the loop tries again after the next back-off
                log.error("restarting etcd failed: %s", e)

    async def _compact_periodically(self) -> None:
        """Compact etcd to the revision seen one interval ago, as kube-apiserver does.

        Keeping one interval of history lets watchers resume after short
        disconnects; anything older answers 410 Gone and the client relists.
        """
        assert self.store is not None and self.hubs is not None
        previous = 0
        while True:
            await asyncio.sleep(self.config.etcd_compaction_interval)
            try:
                current = await self.store.revision()
                if previous:
                    await self.store.compact(previous)
                    self.hubs.forget_before(previous)
                    _write_atomic(self.config.state_dir / COMPACTED_FILE, str(previous))
                    log.info("compacted etcd at revision %d", previous)
                previous = current
            except Exception as e:
                log.warning("compaction failed: %s", e)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self.pool is not None:  # workers first, etcd last
            await asyncio.to_thread(self.pool.stop)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.authorization is not None:
            await self.authorization.stop()
        if getattr(self, "crds", None) is not None:
            await self.crds.stop()
        if self.hubs is not None:
            await self.hubs.stop()
        if self.store is not None:
            await self.store.close()
        if self.etcd is not None:
            await asyncio.to_thread(self.etcd.stop)
            with contextlib.suppress(FileNotFoundError):
                (self.config.state_dir / "etcd.pid").unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the state directory
            self._lock_fd = None


def _kinds_by_prefix() -> dict[str, frozenset[str]]:
    """The kinds each storage prefix may hold, so a stored value of another kind
    is reported as corrupt rather than served."""
    kinds: dict[str, set[str]] = {}
    for info in resources.RESOURCES:
        kinds.setdefault(storage_prefix(info), set()).add(info.kind)
    return {prefix: frozenset(k) for prefix, k in kinds.items()}


def config_to_json(config: ServerConfig) -> str:
    return json.dumps(dataclasses.asdict(config), default=str)


def config_from_json(text: str) -> ServerConfig:
    """The parent's ServerConfig as a worker gets it (paths and tuples restored)."""
    raw = json.loads(text)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(ServerConfig):
        if f.name not in raw:
            continue
        value = raw[f.name]
        kind = str(f.type)
        if value is not None and kind.startswith("Path"):
            value = Path(value)
        elif value is not None and kind.startswith("tuple"):
            value = tuple(value)
        values[f.name] = value
    return ServerConfig(**values)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def run(
    config: ServerConfig,
    sock: socket.socket | None = None,
    preforked: list[tuple[workers.Forked, int]] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT: alone (workers=1), or as the parent of workers."""
    server = APIServer(config)
    if config.workers > 1:
        await _run_parent(server, sock, preforked)
        return
    stopping = _signalled()
    try:
        await server.start()
        await _serve_until(server, stopping)
    finally:
        await server.stop()


def _signalled() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


async def _serve_until(server: APIServer, stopping: asyncio.Event) -> None:
    """Serve HTTPS until `stopping` is set (then let uvicorn drain) or the server ends."""
    serving = asyncio.create_task(server.serve())
    stopper = asyncio.create_task(stopping.wait())
    await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if server._server is not None:
        server._server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await serving


async def _run_parent(
    server: APIServer,
    sock: socket.socket | None,
    preforked: list[tuple[workers.Forked, int]] | None,
) -> None:
    stopping = _signalled()
    try:
        await server.start_parent(sock, preforked)
        await stopping.wait()
    finally:
        await server.stop()  # workers (gracefully), then the rest, etcd last


async def run_worker(config: ServerConfig, fd: int) -> None:
    """One worker of several: serve on the inherited socket until SIGTERM."""
    server = APIServer(config)
    server._is_worker = True
    sock = socket.socket(fileno=fd)
    stopping = _signalled()
    try:
        await server.start_worker(sock)
        await _serve_until(server, stopping)
    finally:
        await server.stop()
