"""`python -m kubelet` (what `skiff kubelet` runs): the node agent.

Wiring, in the order it happens: connect to the runtime (proto/runtime.proto on
a unix socket) and wait until it answers; register the Node; start the
informers (this node's pods by `spec.nodeName`, and the ConfigMaps, Secrets
and Services their env and volumes read); then run, until SIGTERM, the
heartbeat and node status, the pod workers with their runtime relist, the
static pods and the HTTPS API.
Stopping the kubelet stops no container: they belong to the runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from client.config import load_config
from client.events import EventRecorder
from client.informer import Informer
from client.loopcontrol import LoopControl
from client.rest import Client
from client.run import component_main, run_until_signalled
from client.trace import Tracer
from proto import DEFAULT_SOCKET, connect
from proto import runtime_pb2 as pb
from proto import runtime_pb2_grpc as pb_grpc

from .authz import WebhookAuthorizer
from .localpath import LocalPathProvisioner
from .node import NodeAgent, NodeSettings, choose_node_ip, hostname, parse_reserved
from .objects import ReferencedObjects, may_list
from .pods import BY_UID, PodWorkers, Settings, by_uid
from .server import KubeletServer
from .static import StaticPods
from .tokens import TokenManager
from .volumes import VolumeManager

log = logging.getLogger("skiff.kubelet")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff kubelet", description=__doc__)
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument("--node-name", default=hostname(), help="default: the host name")
    p.add_argument("--node-ip", default="", help="default: the default route's source address")
    p.add_argument("--runtime-endpoint", default=DEFAULT_SOCKET, help="the runtime's unix socket")
    p.add_argument("--root-dir", default="/var/lib/skiff/kubelet", type=Path)
    p.add_argument("--log-dir", default="/var/log/pods", help="where container logs go")
    p.add_argument("--pod-manifest-path", default=None, type=Path, help="static pods")
    p.add_argument(
        "--default-local-storage-path",
        default=Path("/var/lib/skiff/storage"),
        type=Path,
        help="where the local-path provisioner makes this node's volumes",
    )
    p.add_argument(
        "--disable-local-storage",
        action="store_true",
        help="do not run the local-path provisioner (nor create its StorageClass)",
    )
    p.add_argument("--cluster-dns", default="10.96.0.10", help="the pods' nameserver")
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--system-reserved", default="", help="e.g. cpu=500m,memory=1Gi")
    p.add_argument("--port", type=int, default=10250, help="the kubelet's HTTPS port")
    p.add_argument("--address", default="0.0.0.0", help="where the HTTPS server listens")
    p.add_argument("--tls-cert-file", type=Path, default=None)
    p.add_argument("--tls-private-key-file", type=Path, default=None)
    p.add_argument("--client-ca-file", type=Path, default=None)
    p.add_argument(
        "-v", "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return p.parse_args(argv)


def host_resolv(path: Path = Path("/etc/resolv.conf")) -> pb.DNSConfig:
    """The node's own resolv.conf, for dnsPolicy Default and hostNetwork pods."""
    servers, searches, options = [], [], []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]
        elif words[0] == "options":
            options += words[1:]
    return pb.DNSConfig(servers=servers, searches=searches, options=options)


def node_memory() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


async def wait_for_runtime(runtime: pb_grpc.RuntimeServiceStub, endpoint: str) -> None:
    delay = 0.2
    while True:
        try:
            version = await runtime.Version(pb.VersionRequest(), timeout=5)
            log.info("runtime %s %s at %s", version.runtime_name, version.runtime_version, endpoint)
            return
        except grpc.aio.AioRpcError as e:
            log.warning("waiting for the runtime at %s: %s", endpoint, e.details())
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def run(args: argparse.Namespace) -> None:
    # Worker threads for volume set-ups, which wait for the API (TokenRequest for the
    # projected service-account token): asyncio's default of cpus + 4 (6 on a 2-core
    # node) set up 30 pods started at once six at a time (docs/benchmarks.md).
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=32, thread_name_prefix="kubelet")
    )
    client = Client(load_config(args.kubeconfig), user_agent="skiff-kubelet")
    channel = connect(args.runtime_endpoint)
    runtime = pb_grpc.RuntimeServiceStub(channel)
    images = pb_grpc.ImageServiceStub(channel)
    node_ip, how = choose_node_ip(args.node_ip)
    log.info("node %s: InternalIP %s (%s)", args.node_name, node_ip, how)

    async def work() -> None:
        await wait_for_runtime(runtime, args.runtime_endpoint)
        agent = NodeAgent(
            client,
            runtime,
            images,
            NodeSettings(
                name=args.node_name,
                ip=node_ip,
                port=args.port,
                root_dir=args.root_dir,
                system_reserved=parse_reserved(args.system_reserved),
            ),
        )
        node = await agent.register()
        await agent.pass_pod_cidr(node)
        pods = Informer(
            client,
            "v1",
            "Pod",
            field_selector=f"spec.nodeName={args.node_name}",
            indexers={BY_UID: by_uid},
        )
        configmaps: Any = Informer(client, "v1", "ConfigMap")
        secrets: Any = Informer(client, "v1", "Secret")
        if not await may_list(client, "Secret"):
            # A node's own credentials (system:node:<name>): the Node authorizer lets it
            # read only what its pods use, one by one (kubelet/objects.py).
            log.info("reading Secrets and ConfigMaps one by one, as the node's pods use them")
            configmaps = ReferencedObjects(client, "ConfigMap", pods)
            secrets = ReferencedObjects(client, "Secret", pods)
        services = Informer(client, "v1", "Service")  # for the pods' service variables
        informers = (pods, configmaps, secrets, services)
        loop = asyncio.get_running_loop()

        def request_token(
            namespace: str, account: str, audiences: list[str], seconds: int, pod: dict
        ) -> tuple[str, float]:
            """TokenRequest bound to the pod (kubelet/tokens.py); called from mount threads."""
            return asyncio.run_coroutine_threadsafe(
                token_request(client, namespace, account, audiences, seconds, pod), loop
            ).result(timeout=30)

        def get_configmap(namespace: str, name: str) -> dict | None:
            return configmaps.store.get(f"{namespace}/{name}")

        def get_secret(namespace: str, name: str) -> dict | None:
            return secrets.store.get(f"{namespace}/{name}")

        # persistentVolumeClaim volumes: claim -> bound PersistentVolume -> directory.
        # The local-path provisioner in this kubelet lists claims and makes volumes;
        # a node's own credentials (system:node) may not, so both are off then.
        get_claim: Any = None
        get_volume: Any = None
        local_storage_allowed = await may_list(client, "PersistentVolumeClaim")
        if local_storage_allowed:
            claims = Informer(client, "v1", "PersistentVolumeClaim")
            volumes = Informer(client, "v1", "PersistentVolume")
            informers = (*informers, claims, volumes)

            def get_claim(namespace: str, name: str) -> dict | None:
                return claims.store.get(f"{namespace}/{name}")

            get_volume = volumes.store.get
        else:
            log.warning(
                "these credentials may not list PersistentVolumeClaims: claim volumes and "
                "the local-path provisioner are off on this node"
            )

        static = StaticPods(client, args.pod_manifest_path, args.node_name)
        static.refresh()
        tracer = Tracer(client, f"kubelet-{args.node_name}")
        loop_control = LoopControl(client, f"kubelet-{args.node_name}")
        workers = PodWorkers(
            client=client,
            runtime=runtime,
            images=images,
            recorder=EventRecorder(client, "kubelet", args.node_name),
            settings=Settings(
                node_name=args.node_name,
                node_ip=node_ip,
                log_dir=args.log_dir,
                cluster_dns=args.cluster_dns,
                cluster_domain=args.cluster_domain,
                node_memory=node_memory(),
                host_resolv=host_resolv(),
            ),
            pods=pods,
            configmaps=configmaps,
            secrets=secrets,
            services=services,
            volumes=VolumeManager(
                args.root_dir,
                get_configmap=get_configmap,
                get_secret=get_secret,
                tokens=TokenManager(request_token),
                get_claim=get_claim,
                get_volume=get_volume,
            ),
            static_pods=static,
            tracer=tracer,
            loop=loop_control,
        )
        for informer in informers:
            informer.start()
        tracer.start()
        loop_control.start()
        for informer in informers:
            await informer.wait_for_sync()
        server = await start_server(args, channel, workers, client)
        try:
            local_storage = (
                []
                if args.disable_local_storage or not local_storage_allowed
                else [
                    LocalPathProvisioner(
                        client, args.node_name, args.default_local_storage_path
                    ).run()
                ]
            )
            await asyncio.gather(
                agent.run(),
                workers.run(),
                static.run(node, pods.store.list, workers.wake),
                *local_storage,
            )
        finally:
            if server is not None:
                await server.stop()
            await workers.stop()
            await tracer.stop()
            await loop_control.stop()
            for informer in informers:
                await informer.stop()

    try:
        await run_until_signalled(work)
    finally:
        await channel.close()
        await client.close()


async def start_server(
    args: argparse.Namespace, channel: grpc.aio.Channel, workers: PodWorkers, client: Client
) -> KubeletServer | None:
    """The kubelet's HTTPS API (logs, exec, attach, port-forward, stats), when the TLS
    flags name a serving certificate, its key and the CA of its callers' certificates."""
    pki = (args.tls_cert_file, args.tls_private_key_file, args.client_ca_file)
    if not all(pki):
        log.warning(
            "not serving the kubelet API (kubectl logs, exec, port-forward will fail): "
            "--tls-cert-file, --tls-private-key-file and --client-ca-file are all needed"
        )
        return None
    server = KubeletServer(
        node_name=args.node_name,
        channel=channel,
        pods=workers.running_pod,
        bind_address=args.address,
        port=args.port,
        cert_file=args.tls_cert_file,
        key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        # Callers are authorized by the apiserver (SubjectAccessReview, kubelet/authz.py).
        authorizer=WebhookAuthorizer(args.node_name, client.create),
    )
    await server.start()
    log.info("serving the kubelet API on %s:%d", args.address, server.port)
    return server


async def token_request(
    client: Client, namespace: str, account: str, audiences: list[str], seconds: int, pod: dict
) -> tuple[str, float]:
    """A service-account token bound to `pod`, and when it expires (epoch seconds)."""
    meta = pod["metadata"]
    spec: dict[str, Any] = {
        "expirationSeconds": seconds,
        "boundObjectRef": {
            "kind": "Pod",
            "apiVersion": "v1",
            "name": meta["name"],
            "uid": meta.get("uid", ""),
        },
    }
    if audiences:
        spec["audiences"] = audiences
    answer = await client.create_subresource(
        "v1",
        "ServiceAccount",
        namespace,
        account,
        "token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
    )
    expires = datetime.datetime.strptime(
        answer["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=datetime.UTC)
    return str(answer["status"]["token"]), expires.timestamp()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return component_main("skiff kubelet", args, run, exit_codes={ValueError: 2})


if __name__ == "__main__":
    sys.exit(main())
