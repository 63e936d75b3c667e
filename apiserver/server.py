"""`skiff apiserver`: etcd (embedded or given), PKI, bootstrap objects, HTTPS.

Start-up, in order: the state directory; etcd (a child process on loopback
unless `--etcd-servers` names one); the CA, serving certificate, admin token
and admin kubeconfig (made once, reused after); the objects every cluster has
from the start (four namespaces and the `kubernetes` Service); then the HTTPS
listener. Stopping reverses it and stops the embedded etcd, whose data stays
for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import socket
from dataclasses import astuple, dataclass, field
from pathlib import Path

import uvicorn

from api import resources

from . import certs, errors, etcd_maintenance
from .admission import ServiceAllocation
from .allocators import NodePorts, ServiceIPs
from .app import build_app
from .auth import Authenticator, TokenEntry, UserInfo, load_token_file, write_token_file
from .etcd_process import EtcdProcess, free_port
from .kubelet_certs import ensure_kubelet_client
from .kubelet_proxy import KubeletConnector
from .registry import Registry, WriteOptions, storage_prefix
from .storage import Store
from .tls import ClientCertProtocol, server_context
from .watch import WatchHubs
from .ws_tls import ClientCertWebSocketProtocol

log = logging.getLogger("skiff.apiserver")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ADMIN_USER = "kubernetes-admin"
ADMIN_GROUPS = ("system:masters",)


@dataclass
class ServerConfig:
    state_dir: Path = Path("/var/lib/skiff")
    secure_port: int = 6443
    bind_address: str = "0.0.0.0"
    advertise_address: str = "127.0.0.1"
    etcd_servers: list[str] = field(default_factory=list)
    token_auth_file: Path | None = None
    service_cluster_ip_range: str = "10.96.0.0/12"
    service_node_port_range: tuple[int, int] = (30000, 32767)
    etcd_compaction_interval: float = 300.0  # kube-apiserver's default, 5 minutes
    log_level: str = "info"

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

    # -- start-up -------------------------------------------------------------

    def _start_etcd(self) -> list[str]:
        if self.config.etcd_servers:
            return self.config.etcd_servers
        data = self.config.state_dir / "etcd"
        ports_file = self.config.state_dir / "etcd-ports.json"
        client = peer = 0
        if ports_file.exists():
            # Same ports as last time, so the member's stored peer URL stays true.
            saved = json.loads(ports_file.read_text())
            client, peer = int(saved["client"]), int(saved["peer"])
            if not (_port_free(client) and _port_free(peer)):
                client = peer = 0
        self.etcd = EtcdProcess(
            data_dir=data,
            client_port=client or free_port(),
            peer_port=peer or free_port(),
            log_path=self.config.state_dir / "etcd.log",
        )
        self.etcd.start()
        ports_file.write_text(
            json.dumps({"client": self.etcd.client_port, "peer": self.etcd.peer_port})
        )
        if self.etcd.proc is not None:
            (self.config.state_dir / "etcd.pid").write_text(str(self.etcd.proc.pid))
        log.info("etcd started at %s (data in %s)", self.etcd.url, data)
        return [self.etcd.url]

    def _credentials(self) -> Authenticator:
        """The PKI and tokens: made on first start, reused afterwards."""
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

    async def _kubernetes_endpoints(self) -> None:
        """The `kubernetes` Service has no selector: the apiserver says where it is."""
        ep = resources.lookup("", "v1", "endpoints")
        es = resources.lookup("discovery.k8s.io", "v1", "endpointslices")
        assert ep is not None and es is not None
        address, port = self.config.advertise_address, self.config.secure_port
        await self._ensure(
            ep,
            "default",
            {
                "metadata": {"name": "kubernetes"},
                "subsets": [
                    {
                        "addresses": [{"ip": address}],
                        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                    }
                ],
            },
        )
        await self._ensure(
            es,
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"kubernetes.io/service-name": "kubernetes"},
                },
                "addressType": "IPv4",
                "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            },
        )

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
            if e.code != 409:
                raise

    async def start(self) -> None:
        cfg = self.config
        cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        endpoints = await asyncio.to_thread(self._start_etcd)
        self.store = Store(endpoints)
        await self.store.connect()
        self.hubs = WatchHubs(self.store)
        self.hubs.start_revision = await self.store.revision()
        # Every resource's watch cache follows etcd from now on, as kube-apiserver's do:
        # a hub started only at its first watcher would first replay every write
        # since start, and that watcher's first events would wait behind the replay.
        for prefix in sorted(
            {storage_prefix(info) for info in resources.RESOURCES if "watch" in info.verbs}
        ):
            await self.hubs.hub(prefix)
        services = ServiceAllocation(
            ServiceIPs(self.store, cfg.service_cluster_ip_range),
            NodePorts(self.store, *cfg.service_node_port_range),
        )
        self.registry = Registry(self.store, self.hubs, services)
        authenticator = self._credentials()
        await self._bootstrap()
        app = build_app(
            self.registry,
            authenticator,
            server_address=f"{cfg.advertise_address}:{cfg.secure_port}",
            ready=self.ready,
            kubelets=KubeletConnector(self.ca.cert, *astuple(self.kubelet_client)),
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
        self._tasks.append(asyncio.create_task(self._compact_periodically(), name="compaction"))
        upkeep = etcd_maintenance.run(self.store, defragment=not self.config.etcd_servers)
        self._tasks.append(asyncio.create_task(upkeep, name="etcd-upkeep"))
        log.info("serving on https://%s:%d", cfg.bind_address, cfg.secure_port)

    async def serve(self) -> None:
        assert self._server is not None
        await self._server.serve()

    async def ready(self) -> bool:
        if self.store is None:
            return False
        try:
            await asyncio.wait_for(self.store.revision(), timeout=2.0)
        except Exception:
            return False
        return True

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
                    log.info("compacted etcd at revision %d", previous)
                previous = current
            except Exception as e:
                log.warning("compaction failed: %s", e)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.hubs is not None:
            await self.hubs.stop()
        if self.store is not None:
            await self.store.close()
        if self.etcd is not None:
            await asyncio.to_thread(self.etcd.stop)
            with contextlib.suppress(FileNotFoundError):
                (self.config.state_dir / "etcd.pid").unlink()


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def run(config: ServerConfig) -> None:
    server = APIServer(config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await server.start()
        serving = asyncio.create_task(server.serve())
        stopper = asyncio.create_task(stopping.wait())
        await asyncio.wait({serving, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if server._server is not None:
            server._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    finally:
        await server.stop()
