"""Defaulting: the values Kubernetes fills in when a manifest leaves them out.

Each function mirrors one of Kubernetes' `SetDefaults_*` functions, so that
`kubectl get -o yaml` shows the same object a real cluster would store.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from . import crd
from .resources import ResourceInfo


def _image_pull_policy(image: str) -> str:
    """Always for :latest or no tag; IfNotPresent for a tag or digest."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def container(c: dict[str, Any]) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if "image" in c and "imagePullPolicy" not in c:
        c["imagePullPolicy"] = _image_pull_policy(str(c["image"]))
    c.setdefault("resources", {})
    res = c["resources"]
    # Limits without requests: the requests default to the limits.
    if res.get("limits"):
        requests = res.setdefault("requests", {})
        for name, value in res["limits"].items():
            requests.setdefault(name, value)
    for port in c.get("ports") or []:
        port.setdefault("protocol", "TCP")
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            if isinstance(probe.get("httpGet"), dict):
                probe["httpGet"].setdefault("path", "/")
                probe["httpGet"].setdefault("scheme", "HTTP")


def pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    if spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        if isinstance(c, dict):
            container(c)
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if not any(k for k in v if k != "name"):
            v["emptyDir"] = {}
        for source in ("configMap", "secret"):
            if isinstance(v.get(source), dict):
                v[source].setdefault("defaultMode", 0o644)
        if isinstance(v.get("hostPath"), dict):
            v["hostPath"].setdefault("type", "")
    for t in spec.get("tolerations") or []:
        if isinstance(t, dict) and t.get("key") is None and t.get("operator") is None:
            t["operator"] = "Exists"


def pod(obj: dict[str, Any]) -> None:
    pod_spec(obj.setdefault("spec", {}))


def _template(spec: dict[str, Any]) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        template.setdefault("metadata", {})
        pod_spec(template.setdefault("spec", {}))


def deployment(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(spec)


def replicaset(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _template(spec)


def service(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec["type"] == "ExternalName":
        return
    spec.setdefault("sessionAffinity", "None")
    if spec.get("sessionAffinity") == "ClientIP":
        spec.setdefault("sessionAffinityConfig", {"clientIP": {"timeoutSeconds": 10800}})
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "targetPort" not in port and "port" in port:
                port["targetPort"] = port["port"]
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")


def namespace(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("finalizers", ["kubernetes"])
    meta = obj.setdefault("metadata", {})
    labels = meta.setdefault("labels", {})
    # Every namespace carries its own name as a label (since Kubernetes 1.21).
    if meta.get("name"):
        labels["kubernetes.io/metadata.name"] = meta["name"]


def secret(obj: dict[str, Any]) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def endpoint_slice(obj: dict[str, Any]) -> None:
    for port in obj.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def node(obj: dict[str, Any]) -> None:
    obj.setdefault("spec", {})


def job_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_Job: one pod, six retries, NonIndexed."""
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        # With a per-index limit the job-wide one is effectively unlimited.
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault(
        "podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    )
    for rule in (spec.get("podFailurePolicy") or {}).get("rules") or []:
        for pattern in rule.get("onPodConditions") or [] if isinstance(rule, dict) else []:
            if isinstance(pattern, dict):
                pattern.setdefault("status", "True")
    _template(spec)


def job(obj: dict[str, Any]) -> None:
    job_spec(obj.setdefault("spec", {}))


def cronjob(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    template = spec.get("jobTemplate")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        # Only the pod template is defaulted here; the Job gets the rest when created.
        _template(template["spec"])


def daemonset(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    _template(spec)


def persistent_volume_claim_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("volumeMode", "Filesystem")


def statefulset(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            persistent_volume_claim_spec(claim.setdefault("spec", {}))
            claim.setdefault("status", {"phase": "Pending"})
    _template(spec)


def persistent_volume_claim(obj: dict[str, Any]) -> None:
    persistent_volume_claim_spec(obj.setdefault("spec", {}))


def persistent_volume(obj: dict[str, Any]) -> None:
    """SetDefaults_PersistentVolume: Retain and Filesystem unless said otherwise."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
    spec.setdefault("volumeMode", "Filesystem")


def storage_class(obj: dict[str, Any]) -> None:
    """SetDefaults_StorageClass: volumes are deleted with their claim, bound at once."""
    obj.setdefault("reclaimPolicy", "Delete")
    obj.setdefault("volumeBindingMode", "Immediate")


def replication_controller(obj: dict[str, Any]) -> None:
    """SetDefaults_ReplicationController: selector and labels from the template."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    if template_labels:
        if not spec.get("selector"):
            spec["selector"] = dict(template_labels)
        meta = obj.setdefault("metadata", {})
        if not meta.get("labels"):
            meta["labels"] = dict(template_labels)
    _template(spec)


def horizontal_pod_autoscaler(obj: dict[str, Any]) -> None:
    """SetDefaults_HorizontalPodAutoscaler (v2): one replica at least, CPU at 80%."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }
        ]


_BY_KIND: dict[tuple[str, str], Callable[[dict[str, Any]], None]] = {
    ("", "Pod"): pod,
    ("apps", "Deployment"): deployment,
    ("apps", "ReplicaSet"): replicaset,
    ("", "Service"): service,
    ("", "Namespace"): namespace,
    ("", "Secret"): secret,
    ("discovery.k8s.io", "EndpointSlice"): endpoint_slice,
    ("", "Node"): node,
    ("batch", "Job"): job,
    ("batch", "CronJob"): cronjob,
    ("apps", "DaemonSet"): daemonset,
    ("apps", "StatefulSet"): statefulset,
    ("", "PersistentVolumeClaim"): persistent_volume_claim,
    ("", "PersistentVolume"): persistent_volume,
    ("storage.k8s.io", "StorageClass"): storage_class,
    ("", "ReplicationController"): replication_controller,
    ("autoscaling", "HorizontalPodAutoscaler"): horizontal_pod_autoscaler,
}


_BY_KIND[("apiextensions.k8s.io", "CustomResourceDefinition")] = crd.default_crd


def apply_defaults(info: ResourceInfo, obj: dict[str, Any]) -> None:
    fill = _BY_KIND.get((info.group, info.kind))
    if fill is not None:
        fill(obj)
