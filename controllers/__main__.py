"""`python -m controllers` (what `skiff controller-manager` runs).

Starts the shared informers and every controller, behind leader election on
the Lease kube-system/kube-controller-manager, so that two copies can run and
only one acts. Losing the lease stops the controllers until it is won again.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import socket
import sys
import uuid
from pathlib import Path

from client.config import load_config
from client.controller import Context, Controller, Informers
from client.events import EventRecorder
from client.leaderelection import LeaderElector
from client.loopcontrol import LoopControl
from client.rest import Client
from client.run import component_main, run_until_signalled
from client.trace import Tracer

from .certificates import CertificateController, Signing
from .clusterroleaggregation import ClusterRoleAggregationController
from .cronjob import CronJobController
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .endpoints import EndpointsController
from .garbagecollector import GarbageCollector
from .job import JobController
from .namespace import NamespaceController
from .nodelifecycle import NodeLifecycleController, Settings
from .persistentvolume import PersistentVolumeController
from .pod_fields import for_controllers
from .podautoscaler import HorizontalPodAutoscalerController
from .podgc import PodGCController
from .replicaset import ReplicaSetController
from .replicationcontroller import ReplicationControllerController
from .rootcacertpublisher import RootCACertPublisher
from .serviceaccount import ServiceAccountController
from .servicelb import ServiceLBController
from .statefulset import StatefulSetController
from .volumeprotection import VolumeProtectionController

CONTROLLERS: dict[str, type[Controller]] = {
    "deployment": DeploymentController,
    "replicaset": ReplicaSetController,
    "replicationcontroller": ReplicationControllerController,
    "job": JobController,
    "cronjob": CronJobController,
    "daemonset": DaemonSetController,
    "statefulset": StatefulSetController,
    "horizontalpodautoscaling": HorizontalPodAutoscalerController,
    "garbagecollector": GarbageCollector,
    "podgc": PodGCController,
    "endpoints": EndpointsController,
    "nodelifecycle": NodeLifecycleController,
    "namespace": NamespaceController,
    "serviceaccount": ServiceAccountController,
    "csr": CertificateController,
    "servicelb": ServiceLBController,
    "clusterrole-aggregation": ClusterRoleAggregationController,
    "root-ca-cert-publisher": RootCACertPublisher,
    "persistentvolume-binder": PersistentVolumeController,
    "pvc-protection": VolumeProtectionController,
}


# Who an Event says it is from (`kubectl describe`'s "From" column): each controller
# signs its own, in Kubernetes' words, where that differs from the controller's name.
EVENT_SOURCE = {
    "endpoints": "endpoint-controller",
    "nodelifecycle": "node-controller",
    "persistentvolume-binder": "persistentvolume-controller",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff controller-manager", description=__doc__)
    p.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG or ~/.kube/config")
    p.add_argument(
        "--controllers", default=",".join(CONTROLLERS), help="comma-separated controllers to run"
    )
    p.add_argument("--leader-elect", default="true", choices=["true", "false"])
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0)
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0)
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    p.add_argument(
        "--cluster-cidr",
        default="10.244.0.0/16",
        help="pod addresses; each node gets a slice of it",
    )
    p.add_argument("--node-cidr-mask-size", type=int, default=24)
    p.add_argument(
        "--node-monitor-grace-period",
        type=float,
        default=40.0,
        help="seconds without a Lease renewal before a node is NotReady",
    )
    p.add_argument(
        "--cluster-signing-cert-file",
        type=Path,
        default=None,
        help="the CA that signs approved client certificates (e.g. STATE/pki/ca.crt)",
    )
    p.add_argument("--cluster-signing-key-file", type=Path, default=None)
    p.add_argument(
        "--terminated-pod-gc-threshold",
        type=int,
        default=12500,
        help="terminated pods kept before the pod garbage collector deletes the oldest (0: never)",
    )
    p.add_argument(
        "-v", "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    client = Client(load_config(args.kubeconfig), user_agent="skiff-controller-manager")
    identity = f"{socket.gethostname()}_{uuid.uuid4()}"
    names = [n for n in args.controllers.split(",") if n]
    unknown = [n for n in names if n not in CONTROLLERS]
    if unknown:
        raise SystemExit(f"skiff controller-manager: unknown controllers: {', '.join(unknown)}")

    async def lead() -> None:
        informers = Informers(client, transforms={"Pod": for_controllers})
        host = socket.gethostname()
        tracer = Tracer(client, "controller-manager")
        loop = LoopControl(client, "controller-manager")
        ctx = Context(
            client,
            informers,
            EventRecorder(client, "controller-manager", host),
            tracer=tracer,
            loop=loop,
        )
        settings = Settings(
            args.cluster_cidr, args.node_cidr_mask_size, args.node_monitor_grace_period
        )

        def own(n: str) -> Context:
            source = EVENT_SOURCE.get(n, CONTROLLERS[n].name)
            return dataclasses.replace(ctx, recorder=EventRecorder(client, source, host))

        signing = Signing(args.cluster_signing_cert_file, args.cluster_signing_key_file)

        def make(n: str) -> Controller:
            if n == "nodelifecycle":
                return NodeLifecycleController(own(n), settings)
            if n == "csr":
                return CertificateController(own(n), signing)
            if n == "podgc":
                return PodGCController(own(n), args.terminated_pod_gc_threshold)
            return CONTROLLERS[n](own(n))

        controllers = [make(n) for n in names]
        informers.start()
        loop.start()
        tracer.start()
        try:
            await asyncio.gather(*(c.run() for c in controllers))
        finally:
            await tracer.stop()
            await loop.stop()
            await informers.stop()

    elector = LeaderElector(
        client,
        namespace="kube-system",
        name="kube-controller-manager",
        identity=identity,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )
    try:
        await run_until_signalled(lead, elector=elector if args.leader_elect == "true" else None)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return component_main("skiff controller-manager", args, run)


if __name__ == "__main__":
    sys.exit(main())
