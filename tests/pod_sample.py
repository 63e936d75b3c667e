"""A pod with every field a running Deployment pod has, as the API serves it: the
input of the informer transforms' tests (tests/unit/*/test_pod_fields.py)."""

from __future__ import annotations

import copy
from typing import Any

_CONTAINER = {
    "name": "web",
    "image": "registry.local/library/busybox:1.36",
    "imagePullPolicy": "IfNotPresent",
    "command": ["sh", "-c"],
    "args": ["httpd -f -p 8080"],
    "workingDir": "/srv",
    "env": [{"name": "APP", "value": "web"}],
    "envFrom": [{"configMapRef": {"name": "settings"}}],
    "ports": [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"containerPort": 9090, "hostPort": 9090, "hostIP": "127.0.0.1", "protocol": "TCP"},
    ],
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "32Mi"}},
    "volumeMounts": [
        {"name": "kube-api-access-x", "mountPath": "/var/run/secrets", "readOnly": True}
    ],
    "volumeDevices": [{"name": "raw", "devicePath": "/dev/xvda"}],
    "livenessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 10},
    "readinessProbe": {"tcpSocket": {"port": 8080}},
    "startupProbe": {"exec": {"command": ["true"]}},
    "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}},
    "securityContext": {"runAsUser": 1000},
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "stdin": False,
    "stdinOnce": False,
    "tty": False,
}

_STATUS = {
    "name": "web",
    "image": "registry.local/library/busybox:1.36",
    "imageID": "sha256:" + "a" * 64,
    "containerID": "skiff://" + "b" * 64,
    "ready": True,
    "started": True,
    "restartCount": 2,
    "state": {
        "terminated": {"exitCode": 3, "reason": "Error", "finishedAt": "2026-12-02T10:00:00Z"}
    },
    "lastState": {},
}

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "web-5d9c7b8f6d-abcde",
        "generateName": "web-5d9c7b8f6d-",
        "namespace": "ns",
        "uid": "u-1",
        "resourceVersion": "42",
        "generation": 1,
        "creationTimestamp": "2026-12-02T09:00:00Z",
        "deletionTimestamp": "2026-12-02T11:00:00Z",
        "deletionGracePeriodSeconds": 30,
        "labels": {"app": "web", "pod-template-hash": "5d9c7b8f6d"},
        "annotations": {
            "controller.kubernetes.io/pod-deletion-cost": "5",
            "kubectl.kubernetes.io/last-applied-configuration": '{"kind":"Pod"}',
        },
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-5d9c7b8f6d",
                "uid": "rs-1",
                "controller": True,
            }
        ],
        "finalizers": ["batch.kubernetes.io/job-tracking"],
        "managedFields": [
            {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}
        ],
    },
    "spec": {
        "containers": [_CONTAINER],
        "initContainers": [{**_CONTAINER, "name": "init", "restartPolicy": "Always"}],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "settings"}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "info", "downwardAPI": {"items": [{"path": "ns"}]}},
            {
                "name": "kube-api-access-x",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]},
            },
        ],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "activeDeadlineSeconds": 600,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "nodeName": "n1",
        "nodeSelector": {"disk": "ssd"},
        "hostname": "web-0",
        "subdomain": "web",
        "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
        ],
        "priorityClassName": "high",
        "priority": 1000,
        "preemptionPolicy": "PreemptLowerPriority",
        "overhead": {"cpu": "5m"},
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}
        ],
        "enableServiceLinks": True,
        "securityContext": {},
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-02T09:01:00Z"}
        ],
        "hostIP": "10.0.0.1",
        "hostIPs": [{"ip": "10.0.0.1"}],
        "podIP": "10.244.0.5",
        "podIPs": [{"ip": "10.244.0.5"}],
        "startTime": "2026-12-02T09:00:01Z",
        "nominatedNodeName": "n2",
        "qosClass": "Burstable",
        "containerStatuses": [_STATUS],
        "initContainerStatuses": [{**_STATUS, "name": "init"}],
    },
}


def pod() -> dict[str, Any]:
    """A fresh copy (the transforms may reuse the values of the object they are given)."""
    return copy.deepcopy(POD)
