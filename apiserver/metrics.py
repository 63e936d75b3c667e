"""Prometheus metrics under Kubernetes' own names, so dashboards built for
kube-apiserver (request rate by verb and code, latency, watch count, etcd
latency) read skiff's `/metrics` unchanged.

With several worker processes (workers.py) each worker counts in memory-mapped
files under the directory `PROMETHEUS_MULTIPROC_DIR` names (prometheus_client's
multiprocess mode, set by the parent before a worker starts), and `/metrics` on
any worker reads all of them: the figures are the sum over every worker, also
over workers that have died and been replaced (their counters stay counted).
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "apiserver_request_total",
    "Requests served, by verb, group, version, resource, subresource, scope and HTTP code.",
    ["verb", "group", "version", "resource", "subresource", "scope", "code"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "apiserver_request_duration_seconds",
    "Time to serve a request (watches: time to start the stream).",
    ["verb", "group", "version", "resource", "subresource", "scope"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
WATCHES = Gauge(
    "apiserver_longrunning_requests",
    "Open long-running requests (watches).",
    ["verb", "group", "version", "resource", "scope"],
    registry=REGISTRY,
    multiprocess_mode="livesum",  # open watches of the workers alive now
)
ETCD_LATENCY = Histogram(
    "etcd_request_duration_seconds",
    "etcd request latency by operation and resource.",
    ["operation", "type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)


def exposition() -> bytes:
    """The text format; under workers, the sum over every worker's files."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY)
    summed = CollectorRegistry()
    MultiProcessCollector(summed, path=directory)
    return generate_latest(summed)
