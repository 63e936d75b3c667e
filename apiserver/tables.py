"""Server-side printing: the `meta.k8s.io/v1 Table` that `kubectl get` prints.

kubectl asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
columns the server returns, so the columns here are the ones users know from
Kubernetes' own printers (pkg/printers/internalversion), computed the same way
(a pod's STATUS, RESTARTS with "(5m ago)", ages like 5m2s or 3d4h).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from api.meta import parse_time

Row = list[Any]
Column = tuple[str, str, int, str]  # name, type, priority, description
NONE = "<none>"

NAME: Column = ("Name", "string", 0, "Name must be unique within a namespace.")
AGE: Column = ("Age", "string", 0, "Time since the object was created.")


# -- formatting ---------------------------------------------------------------


def human_duration(d: datetime.timedelta) -> str:
    """Kubernetes' duration.HumanDuration: 0s, 45s, 5m2s, 3h, 2d3h, 5y."""
    seconds = int(d.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m{s}s" if s else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h{m}m" if m else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d{h}h" if h else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y{dy}d" if dy else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(text: str | None, now: datetime.datetime) -> str:
    t = parse_time(text)
    return human_duration(now - t) if t else "<unknown>"


# -- pods -----------------------------------------------------------------------------


def _pod_row(pod: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    meta = pod.get("metadata") or {}
    containers = spec.get("containers") or []
    restarts, ready, last_restart = 0, 0, None
    reason = status.get("reason") or status.get("phase") or "Pending"
    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if last.get("finishedAt"):
            last_restart = max(last_restart or "", last["finishedAt"])
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            if term.get("reason"):
                reason = f"Init:{term['reason']}"
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode')}"
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = f"Init:{wait['reason']}"
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last = (cs.get("lastState") or {}).get("terminated") or {}
            if last.get("finishedAt"):
                last_restart = max(last_restart or "", last["finishedAt"])
            state = cs.get("state") or {}
            wait, term = state.get("waiting"), state.get("terminated")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = (
                    f"Signal:{term['signal']}"
                    if term.get("signal")
                    else f"ExitCode:{term.get('exitCode')}"
                )
            elif state.get("running") is not None and cs.get("ready"):
                has_running = True
                ready += 1
            elif state.get("running") is not None:
                has_running = True
        if reason == "Completed" and has_running:
            conditions = status.get("conditions") or []
            is_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            )
            reason = "Running" if is_ready else "NotReady"
    if meta.get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    if spec.get("schedulingGates") and not spec.get("nodeName"):
        reason = "SchedulingGated"
    restart_text = str(restarts)
    when = parse_time(last_restart)
    if restarts and when:
        restart_text = f"{restarts} ({human_duration(now - when)} ago)"
    gates = spec.get("readinessGates") or []
    if gates:
        true = {c.get("type") for c in status.get("conditions") or [] if c.get("status") == "True"}
        gates_text = f"{sum(1 for g in gates if g.get('conditionType') in true)}/{len(gates)}"
    else:
        gates_text = NONE
    return [
        meta.get("name", ""),
        f"{ready}/{len(containers)}",
        reason,
        restart_text,
        age(meta.get("creationTimestamp"), now),
        status.get("podIP") or NONE,
        spec.get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        gates_text,
    ]


POD_COLUMNS: list[Column] = [
    NAME,
    ("Ready", "string", 0, "The number of containers that are ready."),
    ("Status", "string", 0, "The aggregate status of the containers in this pod."),
    ("Restarts", "string", 0, "The number of times the containers in this pod restarted."),
    AGE,
    ("IP", "string", 1, "IP address allocated to the pod."),
    ("Node", "string", 1, "Name of the node the pod is assigned to."),
    ("Nominated Node", "string", 1, "Node nominated by preemption."),
    ("Readiness Gates", "string", 1, "Readiness gates that are true."),
]


# -- workloads ------------------------------------------------------------------------


def _containers_images(spec: dict[str, Any]) -> tuple[str, str]:
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


def _selector(sel: dict[str, Any] | None) -> str:
    if not sel:
        return NONE
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in sel.get("matchExpressions") or []:
        op, key, values = e.get("operator"), e.get("key"), ",".join(e.get("values") or [])
        parts.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": f"{key}",
                "DoesNotExist": f"!{key}",
            }.get(op, key)
        )
    return ",".join(parts) or NONE


def _deployment_row(d: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = d.get("spec") or {}, d.get("status") or {}, d.get("metadata") or {}
    names, images = _containers_images(spec)
    return [
        meta.get("name", ""),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        int(status.get("updatedReplicas", 0)),
        int(status.get("availableReplicas", 0)),
        age(meta.get("creationTimestamp"), now),
        names,
        images,
        _selector(spec.get("selector")),
    ]


def _replicaset_row(rs: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = rs.get("spec") or {}, rs.get("status") or {}, rs.get("metadata") or {}
    names, images = _containers_images(spec)
    return [
        meta.get("name", ""),
        int(spec.get("replicas", 0)),
        int(status.get("replicas", 0)),
        int(status.get("readyReplicas", 0)),
        age(meta.get("creationTimestamp"), now),
        names,
        images,
        _selector(spec.get("selector")),
    ]


CONTAINERS: Column = ("Containers", "string", 1, "Names of each container in the template.")
IMAGES: Column = ("Images", "string", 1, "Images referenced by each container in the template.")
SELECTOR: Column = ("Selector", "string", 1, "Label selector for the pods.")


# -- services, endpoints ------------------------------------------------------------


def _service_row(svc: dict[str, Any], now: datetime.datetime) -> Row:
    spec, meta = svc.get("spec") or {}, svc.get("metadata") or {}
    kind = spec.get("type", "ClusterIP")
    external = spec.get("externalIPs") or []
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    lb = [i.get("ip") or i.get("hostname") for i in ingress]
    if kind == "ExternalName":
        external_text = spec.get("externalName") or NONE
    elif kind == "LoadBalancer":
        external_text = ",".join(lb + external) or "<pending>"
    else:
        external_text = ",".join(external) or NONE
    ports = []
    for p in spec.get("ports") or []:
        text = f"{p.get('port')}"
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        ports.append(f"{text}/{p.get('protocol', 'TCP')}")
    selector = spec.get("selector") or {}
    return [
        meta.get("name", ""),
        kind,
        spec.get("clusterIP") or NONE,
        external_text,
        ",".join(ports) or NONE,
        age(meta.get("creationTimestamp"), now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or NONE,
    ]


def _endpoints_row(ep: dict[str, Any], now: datetime.datetime) -> Row:
    meta = ep.get("metadata") or {}
    addresses = []
    for subset in ep.get("subsets") or []:
        ports = subset.get("ports") or [{}]
        for a in subset.get("addresses") or []:
            for p in ports:
                addresses.append(f"{a.get('ip')}:{p['port']}" if p.get("port") else a.get("ip"))
    text = ",".join(addresses[:3])
    if len(addresses) > 3:
        text += f" + {len(addresses) - 3} more..."
    return [meta.get("name", ""), text or NONE, age(meta.get("creationTimestamp"), now)]


def _slice_row(es: dict[str, Any], now: datetime.datetime) -> Row:
    meta = es.get("metadata") or {}
    ports = ",".join(str(p.get("port")) for p in es.get("ports") or [] if p.get("port"))
    addresses = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    text = ",".join(addresses[:3]) + (
        f" + {len(addresses) - 3} more..." if len(addresses) > 3 else ""
    )
    return [
        meta.get("name", ""),
        es.get("addressType", ""),
        ports or NONE,
        text or NONE,
        age(meta.get("creationTimestamp"), now),
    ]


# -- nodes, namespaces, config ---------------------------------------------------------


def _node_row(node: dict[str, Any], now: datetime.datetime) -> Row:
    meta, spec, status = (
        node.get("metadata") or {},
        node.get("spec") or {},
        node.get("status") or {},
    )
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    state = "Unknown"  # no Ready condition yet; False or Unknown print NotReady, as kubectl's
    if ready is not None:
        state = "Ready" if ready.get("status") == "True" else "NotReady"
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = meta.get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    if labels.get("kubernetes.io/role"):
        roles.append(labels["kubernetes.io/role"])
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        return next((a["address"] for a in addresses if a.get("type") == kind), NONE)

    return [
        meta.get("name", ""),
        state,
        ",".join(roles) or NONE,
        age(meta.get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _namespace_row(ns: dict[str, Any], now: datetime.datetime) -> Row:
    meta = ns.get("metadata") or {}
    return [
        meta.get("name", ""),
        (ns.get("status") or {}).get("phase", ""),
        age(meta.get("creationTimestamp"), now),
    ]


def _configmap_row(cm: dict[str, Any], now: datetime.datetime) -> Row:
    meta = cm.get("metadata") or {}
    count = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [meta.get("name", ""), count, age(meta.get("creationTimestamp"), now)]


def _secret_row(s: dict[str, Any], now: datetime.datetime) -> Row:
    meta = s.get("metadata") or {}
    return [
        meta.get("name", ""),
        s.get("type", ""),
        len(s.get("data") or {}),
        age(meta.get("creationTimestamp"), now),
    ]


def _sa_row(sa: dict[str, Any], now: datetime.datetime) -> Row:
    meta = sa.get("metadata") or {}
    return [
        meta.get("name", ""),
        len(sa.get("secrets") or []),
        age(meta.get("creationTimestamp"), now),
    ]


def _lease_row(lease: dict[str, Any], now: datetime.datetime) -> Row:
    meta = lease.get("metadata") or {}
    return [
        meta.get("name", ""),
        (lease.get("spec") or {}).get("holderIdentity") or NONE,
        age(meta.get("creationTimestamp"), now),
    ]


def _csr_row(csr: dict[str, Any], now: datetime.datetime) -> Row:
    """NAME AGE SIGNERNAME REQUESTOR REQUESTEDDURATION CONDITION, as kubectl shows a CSR."""
    meta, spec = csr.get("metadata") or {}, csr.get("spec") or {}
    status = csr.get("status") or {}
    conditions = [
        c["type"] for c in status.get("conditions") or [] if c.get("status", "True") == "True"
    ]
    if status.get("certificate"):
        conditions.append("Issued")
    seconds = spec.get("expirationSeconds")
    return [
        meta.get("name", ""),
        age(meta.get("creationTimestamp"), now),
        spec.get("signerName", ""),
        spec.get("username", ""),
        human_duration(datetime.timedelta(seconds=int(seconds))) if seconds else NONE,
        ",".join(conditions) or "Pending",
    ]


def _apiservice_row(svc: dict[str, Any], now: datetime.datetime) -> Row:
    """kube-aggregator's columns: `Local` or namespace/name; `True`, or `False (Reason)`."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    ref = spec.get("service")
    service = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else "Local"
    available = next(
        (
            c
            for c in (svc.get("status") or {}).get("conditions") or []
            if c.get("type") == "Available"
        ),
        None,
    )
    if available is None:
        shown = "Unknown"
    elif available.get("status") == "True":
        shown = "True"
    else:
        shown = f"{available.get('status', 'Unknown')} ({available.get('reason', '')})"
    return [meta.get("name", ""), service, shown, age(meta.get("creationTimestamp"), now)]


def _event_row(ev: dict[str, Any], now: datetime.datetime) -> Row:
    meta = ev.get("metadata") or {}
    new = "regarding" in ev
    target = ev.get("regarding" if new else "involvedObject") or {}
    first = ev.get("deprecatedFirstTimestamp" if new else "firstTimestamp") or ev.get("eventTime")
    last = (
        ev.get("deprecatedLastTimestamp" if new else "lastTimestamp")
        or (ev.get("series") or {}).get("lastObservedTime")
        or ev.get("eventTime")
        or first
    )
    count = (
        ev.get("deprecatedCount" if new else "count") or (ev.get("series") or {}).get("count") or 1
    )
    source = (
        ev.get("reportingController")
        if new
        else ((ev.get("source") or {}).get("component") or ev.get("reportingComponent"))
    )
    kind = (target.get("kind") or "").lower()
    return [
        age(last, now),
        ev.get("type", ""),
        ev.get("reason", ""),
        f"{kind}/{target.get('name', '')}",
        ev.get("note" if new else "message", ""),
        target.get("fieldPath", ""),
        source or "",
        age(first, now),
        int(count),
        meta.get("name", ""),
    ]


def _default_row(obj: dict[str, Any], now: datetime.datetime) -> Row:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), age(meta.get("creationTimestamp"), now)]


PRINTERS: dict[tuple[str, str], tuple[list[Column], Callable[[dict, datetime.datetime], Row]]] = {
    ("", "Pod"): (POD_COLUMNS, _pod_row),
    ("apps", "Deployment"): (
        [
            NAME,
            ("Ready", "string", 0, "Number of the pod with ready state."),
            (
                "Up-to-date",
                "integer",
                0,
                "Total number of non-terminated pods targeted by this "
                "deployment that have the desired template spec.",
            ),
            (
                "Available",
                "integer",
                0,
                "Total number of available pods (ready for at least "
                "minReadySeconds) targeted by this deployment.",
            ),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        _deployment_row,
    ),
    ("apps", "ReplicaSet"): (
        [
            NAME,
            ("Desired", "integer", 0, "Number of desired pods."),
            ("Current", "integer", 0, "Number of actually running pods."),
            ("Ready", "integer", 0, "Number of ready pods."),
            AGE,
            CONTAINERS,
            IMAGES,
            SELECTOR,
        ],
        _replicaset_row,
    ),
    ("", "Service"): (
        [
            NAME,
            ("Type", "string", 0, "The type of service."),
            ("Cluster-IP", "string", 0, "The cluster IP of the service."),
            ("External-IP", "string", 0, "The external IPs of the service."),
            ("Port(s)", "string", 0, "The ports of the service."),
            AGE,
            ("Selector", "string", 1, "The selector of the service."),
        ],
        _service_row,
    ),
    ("", "Endpoints"): (
        [NAME, ("Endpoints", "string", 0, "Endpoints of the service."), AGE],
        _endpoints_row,
    ),
    ("discovery.k8s.io", "EndpointSlice"): (
        [
            NAME,
            ("AddressType", "string", 0, "Type of addresses."),
            ("Ports", "string", 0, "Ports of the slice."),
            ("Endpoints", "string", 0, "Addresses of the slice."),
            AGE,
        ],
        _slice_row,
    ),
    ("", "Node"): (
        [
            NAME,
            ("Status", "string", 0, "The status of the node."),
            ("Roles", "string", 0, "The roles of the node."),
            AGE,
            ("Version", "string", 0, "Kubelet version."),
            ("Internal-IP", "string", 1, "Internal IP."),
            ("External-IP", "string", 1, "External IP."),
            ("OS-Image", "string", 1, "OS image."),
            ("Kernel-Version", "string", 1, "Kernel."),
            ("Container-Runtime", "string", 1, "Container runtime."),
        ],
        _node_row,
    ),
    ("", "Namespace"): (
        [NAME, ("Status", "string", 0, "The status of the namespace."), AGE],
        _namespace_row,
    ),
    ("", "ConfigMap"): ([NAME, ("Data", "integer", 0, "Number of keys."), AGE], _configmap_row),
    ("", "Secret"): (
        [
            NAME,
            ("Type", "string", 0, "The type of the secret."),
            ("Data", "integer", 0, "Number of keys."),
            AGE,
        ],
        _secret_row,
    ),
    ("", "ServiceAccount"): ([NAME, ("Secrets", "integer", 0, "Number of secrets."), AGE], _sa_row),
    ("coordination.k8s.io", "Lease"): (
        [NAME, ("Holder", "string", 0, "The holder."), AGE],
        _lease_row,
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"): (
        [
            NAME,
            AGE,
            ("SignerName", "string", 0, "The signer."),
            ("Requestor", "string", 0, "Who asked."),
            ("RequestedDuration", "string", 0, "The validity asked for."),
            ("Condition", "string", 0, "Approved, Denied, Failed, Issued or Pending."),
        ],
        _csr_row,
    ),
    ("apiregistration.k8s.io", "APIService"): (
        [
            NAME,
            ("Service", "string", 0, "The service behind it, or Local."),
            ("Available", "string", 0, "Whether it is available."),
            AGE,
        ],
        _apiservice_row,
    ),
}
EVENT_PRINTER = (
    [
        ("Last Seen", "string", 0, "Time since the last occurrence."),
        ("Type", "string", 0, "Normal or Warning."),
        ("Reason", "string", 0, "Why."),
        ("Object", "string", 0, "The object."),
        ("Message", "string", 0, "What happened."),
        ("Subobject", "string", 1, "Field path."),
        ("Source", "string", 1, "Reporter."),
        ("First Seen", "string", 1, "Time since the first occurrence."),
        ("Count", "integer", 1, "Occurrences."),
        ("Name", "string", 1, "Event name."),
    ],
    _event_row,
)
PRINTERS[("", "Event")] = EVENT_PRINTER
PRINTERS[("events.k8s.io", "Event")] = EVENT_PRINTER
DEFAULT_PRINTER = ([NAME, AGE], _default_row)


def accepts_table(accept: str) -> bool:
    for part in accept.split(","):
        params = {
            p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip()
            for p in part.split(";")[1:]
            if "=" in p
        }
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
    return False


def table_for(
    *,
    group: str,
    kind: str,
    objects: list[dict[str, Any]],
    include_object: str = "Metadata",
    now: datetime.datetime | None = None,
    resource_version: str = "",
    continue_token: str = "",
    remaining: int | None = None,
) -> dict[str, Any]:
    now = now or datetime.datetime.now(datetime.UTC)
    columns, printer = PRINTERS.get((group, kind), DEFAULT_PRINTER)
    return table(
        [column(n, t, p, d, "name" if n == "Name" else "") for n, t, p, d in columns],
        [(obj, printer(obj, now)) for obj in objects],
        include_object, resource_version, continue_token, remaining,
    )  # fmt: skip


def column(name: str, kind: str, priority: int, description: str, fmt: str = "") -> dict[str, Any]:
    """One of a Table's columnDefinitions."""
    return {
        "name": name,
        "type": kind,
        "format": fmt,
        "description": description,
        "priority": priority,
    }


def table(
    definitions: list[dict[str, Any]],
    rows: list[tuple[dict[str, Any], Row]],
    include_object: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    remaining: int | None = None,
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of (object, cells) rows, each with the whole object, its
    metadata (the default: what kubectl asks for) or nothing, as `includeObject` says;
    shared by the built-in kinds and the custom resources (crd/tables.py)."""
    out = []
    for obj, cells in rows:
        row: dict[str, Any] = {"cells": cells}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        out.append(row)
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": definitions,
        "rows": out,
    }


# -- batch/v1, DaemonSet, StatefulSet, ControllerRevision, PVC, ReplicationController --


def _has_condition(obj: dict[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def _job_status(job: dict[str, Any]) -> str:
    """The STATUS column, first match wins, as Kubernetes' printJob."""
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    if _has_condition(job, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    if _has_condition(job, "Suspended"):
        return "Suspended"
    if _has_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_row(job: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = job.get("spec") or {}, job.get("status") or {}, job.get("metadata") or {}
    succeeded = int(status.get("succeeded", 0))
    parallelism = int(spec.get("parallelism", 0) or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif parallelism > 1:
        completions = f"{succeeded}/1 of {parallelism}"
    else:
        completions = f"{succeeded}/1"
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    duration = human_duration((end or now) - start) if start else ""
    names, images = _containers_images(spec)
    return [
        meta.get("name", ""),
        _job_status(job),
        completions,
        duration,
        age(meta.get("creationTimestamp"), now),
        names,
        images,
        _selector(spec.get("selector")),
    ]


def _cronjob_row(cj: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = cj.get("spec") or {}, cj.get("status") or {}, cj.get("metadata") or {}
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _containers_images(job_spec)
    return [
        meta.get("name", ""),
        spec.get("schedule", ""),
        spec.get("timeZone") or NONE,
        "True" if spec.get("suspend") else "False",
        len(status.get("active") or []),
        age(last, now) if last else NONE,
        age(meta.get("creationTimestamp"), now),
        names,
        images,
        _selector(job_spec.get("selector")),
    ]


def _daemonset_row(ds: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = ds.get("spec") or {}, ds.get("status") or {}, ds.get("metadata") or {}
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    names, images = _containers_images(spec)
    return [
        meta.get("name", ""),
        int(status.get("desiredNumberScheduled", 0)),
        int(status.get("currentNumberScheduled", 0)),
        int(status.get("numberReady", 0)),
        int(status.get("updatedNumberScheduled", 0)),
        int(status.get("numberAvailable", 0)),
        ",".join(f"{k}={v}" for k, v in sorted(node_selector.items())) or NONE,
        age(meta.get("creationTimestamp"), now),
        names,
        images,
        _selector(spec.get("selector")),
    ]


def _statefulset_row(sts: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = sts.get("spec") or {}, sts.get("status") or {}, sts.get("metadata") or {}
    names, images = _containers_images(spec)
    return [
        meta.get("name", ""),
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
        age(meta.get("creationTimestamp"), now),
        names,
        images,
    ]


def _controller_revision_row(cr: dict[str, Any], now: datetime.datetime) -> Row:
    meta = cr.get("metadata") or {}
    controller = NONE
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            group = ref.get("apiVersion", "").rpartition("/")[0]
            kind = ref.get("kind", "").lower()
            controller = f"{kind}.{group}/{ref.get('name')}" if group else f"{kind}/{ref['name']}"
    return [
        meta.get("name", ""),
        controller,
        int(cr.get("revision", 0)),
        age(meta.get("creationTimestamp"), now),
    ]


def _pvc_row(pvc: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = pvc.get("spec") or {}, pvc.get("status") or {}, pvc.get("metadata") or {}
    short = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    bound = bool(spec.get("volumeName"))
    return [
        meta.get("name", ""),
        "Terminating" if meta.get("deletionTimestamp") else status.get("phase", ""),
        spec.get("volumeName", ""),
        str((status.get("capacity") or {}).get("storage", "")) if bound else "",
        ",".join(short.get(m, m) for m in status.get("accessModes") or []) if bound else "",
        spec.get("storageClassName") or NONE,
        spec.get("volumeAttributesClassName") or NONE,
        age(meta.get("creationTimestamp"), now),
        spec.get("volumeMode", ""),
    ]


_ACCESS_SHORT = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _pv_row(pv: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = pv.get("spec") or {}, pv.get("status") or {}, pv.get("metadata") or {}
    ref = spec.get("claimRef") or {}
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref.get("name") else ""
    return [
        meta.get("name", ""),
        str((spec.get("capacity") or {}).get("storage", "")),
        ",".join(_ACCESS_SHORT.get(m, m) for m in spec.get("accessModes") or []),
        spec.get("persistentVolumeReclaimPolicy", ""),
        "Terminating" if meta.get("deletionTimestamp") else status.get("phase", ""),
        claim,
        spec.get("storageClassName", ""),
        spec.get("volumeAttributesClassName") or NONE,
        status.get("reason", ""),
        age(meta.get("creationTimestamp"), now),
        spec.get("volumeMode", ""),
    ]


def _storage_class_row(sc: dict[str, Any], now: datetime.datetime) -> Row:
    meta = sc.get("metadata") or {}
    name = meta.get("name", "")
    annotations = meta.get("annotations") or {}
    if "true" in (
        annotations.get("storageclass.kubernetes.io/is-default-class"),
        annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
    ):
        name += " (default)"
    return [
        name,
        sc.get("provisioner", ""),
        sc.get("reclaimPolicy", "Delete"),
        sc.get("volumeBindingMode", "Immediate"),
        bool(sc.get("allowVolumeExpansion", False)),
        age(meta.get("creationTimestamp"), now),
    ]


def _replication_controller_row(rc: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = rc.get("spec") or {}, rc.get("status") or {}, rc.get("metadata") or {}
    names, images = _containers_images(spec)
    return [
        meta.get("name", ""),
        int(spec.get("replicas", 0)),
        int(status.get("replicas", 0)),
        int(status.get("readyReplicas", 0)),
        age(meta.get("creationTimestamp"), now),
        names,
        images,
        ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or NONE,
    ]


PRINTERS.update(
    {
        ("batch", "Job"): (
            [
                NAME,
                ("Status", "string", 0, "Status of the job."),
                ("Completions", "string", 0, "The completion status of the job."),
                ("Duration", "string", 0, "Time required to complete the job."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            _job_row,
        ),
        ("batch", "CronJob"): (
            [
                NAME,
                ("Schedule", "string", 0, "The schedule in Cron format."),
                ("Timezone", "string", 0, "The time zone of the schedule."),
                ("Suspend", "boolean", 0, "Whether new Jobs are started."),
                ("Active", "integer", 0, "Jobs running now."),
                ("Last Schedule", "string", 0, "When a Job was last scheduled."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            _cronjob_row,
        ),
        ("apps", "DaemonSet"): (
            [
                NAME,
                ("Desired", "integer", 0, "Nodes that should run the daemon pod."),
                ("Current", "integer", 0, "Nodes running at least one daemon pod that should."),
                ("Ready", "integer", 0, "Nodes whose daemon pod is ready."),
                ("Up-to-date", "integer", 0, "Nodes running the updated daemon pod."),
                ("Available", "integer", 0, "Nodes whose daemon pod is available."),
                ("Node Selector", "string", 0, "Which nodes run the daemon pod."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            _daemonset_row,
        ),
        ("apps", "StatefulSet"): (
            [
                NAME,
                ("Ready", "string", 0, "Number of the pod with ready state."),
                AGE,
                CONTAINERS,
                IMAGES,
            ],
            _statefulset_row,
        ),
        ("apps", "ControllerRevision"): (
            [
                NAME,
                ("Controller", "string", 0, "Controller of the object."),
                ("Revision", "integer", 0, "Revision of the ControllerRevision."),
                AGE,
            ],
            _controller_revision_row,
        ),
        ("", "PersistentVolumeClaim"): (
            [
                NAME,
                ("Status", "string", 0, "The phase of the claim."),
                ("Volume", "string", 0, "The bound volume."),
                ("Capacity", "string", 0, "Capacity of the bound volume."),
                ("Access Modes", "string", 0, "Access modes of the bound volume."),
                ("StorageClass", "string", 0, "Storage class of the claim."),
                ("VolumeAttributesClass", "string", 0, "Volume attributes class of the claim."),
                AGE,
                ("VolumeMode", "string", 1, "Filesystem or Block."),
            ],
            _pvc_row,
        ),
        ("", "PersistentVolume"): (
            [
                NAME,
                ("Capacity", "string", 0, "Capacity of the volume."),
                ("Access Modes", "string", 0, "How the volume can be mounted."),
                ("Reclaim Policy", "string", 0, "What happens when the claim goes."),
                ("Status", "string", 0, "The phase of the volume."),
                ("Claim", "string", 0, "The bound claim."),
                ("StorageClass", "string", 0, "Storage class of the volume."),
                ("VolumeAttributesClass", "string", 0, "Volume attributes class."),
                ("Reason", "string", 0, "Why the volume is in its phase."),
                AGE,
                ("VolumeMode", "string", 1, "Filesystem or Block."),
            ],
            _pv_row,
        ),
        ("storage.k8s.io", "StorageClass"): (
            [
                NAME,
                ("Provisioner", "string", 0, "The provisioner."),
                ("ReclaimPolicy", "string", 0, "Reclaim policy of its volumes."),
                ("VolumeBindingMode", "string", 0, "When claims are bound."),
                ("AllowVolumeExpansion", "string", 0, "Whether claims may grow."),
                AGE,
            ],
            _storage_class_row,
        ),
        ("", "ReplicationController"): (
            [
                NAME,
                ("Desired", "integer", 0, "Number of desired pods."),
                ("Current", "integer", 0, "Number of actually running pods."),
                ("Ready", "integer", 0, "Number of ready pods."),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            _replication_controller_row,
        ),
    }
)


def _hpa_targets(hpa: dict[str, Any]) -> str:
    """`cpu: 20%/50%`, or `cpu: <unknown>/50%` before the first measurement."""
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    if "targetCPUUtilizationPercentage" in spec:  # the autoscaling/v1 view
        current = status.get("currentCPUUtilizationPercentage")
        shown = f"{current}%" if current is not None else "<unknown>"
        return f"cpu: {shown}/{spec['targetCPUUtilizationPercentage']}%"
    current_by_name = {
        (m.get("resource") or {}).get("name"): (m.get("resource") or {}).get("current") or {}
        for m in status.get("currentMetrics") or []
        if m.get("type") == "Resource"
    }
    parts = []
    for m in spec.get("metrics") or []:
        if m.get("type") != "Resource":
            parts.append(f"<{m.get('type', '').lower()}>")
            continue
        resource = m.get("resource") or {}
        name, target = resource.get("name", ""), resource.get("target") or {}
        current = current_by_name.get(name) or {}
        if target.get("type") == "Utilization":
            have = current.get("averageUtilization")
            shown = f"{have}%" if have is not None else "<unknown>"
            parts.append(f"{name}: {shown}/{target.get('averageUtilization')}%")
        else:
            have = current.get("averageValue")
            want = target.get("averageValue") or target.get("value")
            parts.append(f"{name}: {have if have is not None else '<unknown>'}/{want}")
    return ", ".join(parts) or "<none>"


def _hpa_row(hpa: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status, meta = hpa.get("spec") or {}, hpa.get("status") or {}, hpa.get("metadata") or {}
    ref = spec.get("scaleTargetRef") or {}
    return [
        meta.get("name", ""),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        _hpa_targets(hpa),
        int(spec.get("minReplicas", 1)),
        int(spec.get("maxReplicas", 0)),
        int(status.get("currentReplicas", 0)),
        age(meta.get("creationTimestamp"), now),
    ]


PRINTERS[("autoscaling", "HorizontalPodAutoscaler")] = (
    [
        NAME,
        ("Reference", "string", 0, "The reference to the autoscaled object."),
        ("Targets", "string", 0, "The current and target values of the metrics."),
        ("MinPods", "string", 0, "Lower limit for the number of pods."),
        ("MaxPods", "integer", 0, "Upper limit for the number of pods."),
        ("Replicas", "integer", 0, "Current number of replicas."),
        AGE,
    ],
    _hpa_row,
)
