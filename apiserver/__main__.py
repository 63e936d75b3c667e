"""`python -m apiserver` (what `skiff apiserver` runs): flags as kube-apiserver names them."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from pathlib import Path

from .audit import PolicyError, load_policy
from .etcd_process import EtcdError
from .server import ServerConfig, config_from_json, run, run_worker
from .storage import StorageError
from .workers import (
    WORKER_ENV,
    default_workers,
    die_with_parent,
    listen_socket,
    prefork,
    settle_gc,
)


def parse_args(argv: list[str]) -> ServerConfig:
    p = argparse.ArgumentParser(prog="skiff apiserver", description=__doc__)
    p.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/skiff"),
        help="where etcd data, certificates and the admin kubeconfig live",
    )
    p.add_argument("--secure-port", type=int, default=6443)
    p.add_argument("--bind-address", default="0.0.0.0")
    p.add_argument(
        "--advertise-address",
        default="127.0.0.1",
        help="the address clients and nodes use to reach this server",
    )
    p.add_argument(
        "--etcd-servers",
        default="",
        help="comma-separated etcd client URLs (https:// for TLS); empty starts an embedded "
        "etcd, served over TLS with client certificates from pki/etcd/",
    )
    p.add_argument("--etcd-cafile", type=Path, default=None, help="CA of etcd's certificate")
    p.add_argument("--etcd-certfile", type=Path, default=None, help="client certificate for etcd")
    p.add_argument("--etcd-keyfile", type=Path, default=None, help="its private key")
    p.add_argument("--etcd-name", default="skiff", help="this embedded etcd member's name")
    p.add_argument(
        "--etcd-initial-cluster",
        default="",
        help="every member of a multi-member embedded etcd, name=https://ip:2380,...; "
        "all members need the same pki/etcd/ca.crt and ca.key (see docs/multi-vm-lab.md)",
    )
    p.add_argument(
        "--etcd-initial-cluster-state",
        default="new",
        choices=["new", "existing"],
        help="new: the members start together; existing: join a running cluster",
    )
    p.add_argument(
        "--etcd-client-port",
        type=int,
        default=0,
        help="client port of the embedded etcd (default: a free one alone, 2379 in a cluster)",
    )
    p.add_argument(
        "--etcd-livez-grace-period",
        type=float,
        default=60.0,
        help="seconds etcd may be out of reach before /livez fails (/readyz fails at once)",
    )
    p.add_argument(
        "--token-auth-file",
        type=Path,
        default=None,
        help='static tokens, CSV: token,user,uid,"group1,group2"',
    )
    p.add_argument("--service-cluster-ip-range", default="10.96.0.0/12")
    p.add_argument("--service-node-port-range", default="30000-32767")
    p.add_argument(
        "--etcd-compaction-interval",
        type=float,
        default=300.0,
        help="seconds between compactions of etcd history",
    )
    p.add_argument(
        "--event-ttl",
        type=duration_seconds,
        default=3600.0,
        help="how long Events are kept after their last write (1h0m0s, 30m, 90s)",
    )
    p.add_argument("--audit-policy-file", type=Path, default=None, help="audit.k8s.io/v1 Policy")
    p.add_argument("--audit-log-path", type=Path, default=None, help="where audit events go")
    p.add_argument("--audit-log-maxsize", type=int, default=100, help="MB before rotation")
    p.add_argument("--audit-log-maxbackup", type=int, default=5, help="rotated files kept")
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="processes serving the port (default: one per CPU, at most 4); 1 serves "
        "from this one process",
    )
    p.add_argument(
        "-v", "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    a = p.parse_args(argv)
    if (a.audit_policy_file is None) != (a.audit_log_path is None):
        p.error("--audit-policy-file and --audit-log-path go together")
    if a.etcd_initial_cluster and a.etcd_servers:
        p.error("--etcd-initial-cluster is for the embedded etcd; not with --etcd-servers")
    if a.workers < 1:
        p.error(f"--workers must be 1 or more, not {a.workers}")
    low, _, high = a.service_node_port_range.partition("-")
    if not (low.isdigit() and high.isdigit()):
        p.error(f"--service-node-port-range must be LOW-HIGH, not {a.service_node_port_range!r}")
    return ServerConfig(
        state_dir=a.state_dir,
        secure_port=a.secure_port,
        bind_address=a.bind_address,
        advertise_address=a.advertise_address,
        etcd_servers=[u for u in a.etcd_servers.split(",") if u],
        etcd_cafile=a.etcd_cafile,
        etcd_certfile=a.etcd_certfile,
        etcd_keyfile=a.etcd_keyfile,
        etcd_name=a.etcd_name,
        etcd_initial_cluster=a.etcd_initial_cluster,
        etcd_initial_cluster_state=a.etcd_initial_cluster_state,
        etcd_client_port=a.etcd_client_port,
        etcd_livez_grace=a.etcd_livez_grace_period,
        token_auth_file=a.token_auth_file,
        service_cluster_ip_range=a.service_cluster_ip_range,
        service_node_port_range=(int(low), int(high)),
        etcd_compaction_interval=a.etcd_compaction_interval,
        event_ttl=a.event_ttl,
        log_level=a.log_level,
        audit_policy_file=a.audit_policy_file,
        audit_log_path=a.audit_log_path,
        audit_log_maxsize=a.audit_log_maxsize,
        audit_log_maxbackup=a.audit_log_maxbackup,
        workers=a.workers,
    )


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def duration_seconds(text: str) -> float:
    """A Go duration as kube-apiserver's flags take it (`1h0m0s`, `30m`, `90s`), or
    plain seconds; argparse's error for anything else."""
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (like 1h0m0s, 30m or 90s)")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def worker_main(spec: str) -> int:
    """A worker the parent started (workers.py): its configuration comes from it."""
    given = json.loads(spec)
    die_with_parent(int(given["parent"]))
    config = config_from_json(json.dumps(given["config"]))
    logging.basicConfig(
        level=config.log_level.upper(),
        format=f"%(asctime)s %(name)s[w{given['index']}] %(levelname)s %(message)s",
    )
    try:
        asyncio.run(run_worker(config, int(given["fd"])))
    except (StorageError, OSError) as e:
        print(f"skiff apiserver worker {given['index']}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def main(argv: list[str] | None = None) -> int:
    spec = os.environ.pop(WORKER_ENV, None)
    if spec is not None:
        return worker_main(spec)
    config = parse_args(sys.argv[1:] if argv is None else argv)
    sock, preforked = None, None
    if config.workers > 1:
        # Bound and forked now, before any thread or event loop: see workers.py.
        try:
            sock = listen_socket(config.bind_address, config.secure_port)
        except OSError as e:
            print(f"skiff apiserver: {e}", file=sys.stderr)
            return 1
        settle_gc()  # everything is imported: shared with the workers, never walked by them
        preforked = prefork(config.workers, sock, worker_main)
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    try:
        if config.audit_policy_file is not None:  # a bad policy stops us before etcd starts
            load_policy(config.audit_policy_file.read_text())
        asyncio.run(run(config, sock, preforked))
    except (EtcdError, StorageError, OSError, PolicyError) as e:
        print(f"skiff apiserver: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown: everything is stopped and flushed by
    now, and collecting the garbage of a long-running server only made stopping
    take seconds (the time an orderly restart or a supervisor waits)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
