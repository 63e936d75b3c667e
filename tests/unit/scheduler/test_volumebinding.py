"""VolumeBinding over tables: claims that must exist, be bound, or be bindable on the node."""

from __future__ import annotations

import random
from typing import Any

import pytest

from scheduler.cache import NodeInfo
from scheduler.framework import schedule
from scheduler.plugins.volumebinding import Volumes, claims_to_bind


def node(name: str) -> NodeInfo:
    return NodeInfo(
        {
            "metadata": {
                "name": name,
                "uid": "u-" + name,
                "labels": {"kubernetes.io/hostname": name},
            },
            "spec": {},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}},
        }
    )


def pod(*claims: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims],
        },
    }


def claim(name: str, sc: str, volume: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": "u-" + name},
        "spec": {
            "storageClassName": sc,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeName": volume,
        },
        "status": {"phase": "Bound" if volume else "Pending"},
    }


def pv(name: str, sc: str, on: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "storageClassName": sc,
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
            "hostPath": {"path": "/x"},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/hostname", "operator": "In", "values": [on]}
                            ]
                        }
                    ]
                }
            },
        },
        "status": {"phase": "Available"},
    }


CLASSES = {
    "local-path": {
        "metadata": {"name": "local-path"},
        "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer",
    },
    "local": {
        "metadata": {"name": "local"},
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "WaitForFirstConsumer",
    },
    "now": {
        "metadata": {"name": "now"},
        "provisioner": "example.com/x",
        "volumeBindingMode": "Immediate",
    },
}


def view(claims: list, pvs: list) -> Volumes:
    return Volumes(
        {f"default/{c['metadata']['name']}": c for c in claims},
        {v["metadata"]["name"]: v for v in pvs},
        CLASSES,
    )


@pytest.mark.parametrize(
    ("name", "the_pod", "volumes", "node_name", "message"),
    [
        (
            "missing claim",
            pod("data"),
            view([], []),
            None,
            '0/2 nodes are available: persistentvolumeclaim "data" not found.',
        ),
        (
            "unbound immediate claim",
            pod("data"),
            view([claim("data", "now")], []),
            None,
            "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
        ),
        (
            "bound claim goes where its volume is",
            pod("data"),
            view([claim("data", "local", "pv-b")], [pv("pv-b", "local", "b")]),
            "b",
            "",
        ),
        (
            "bound claim whose volume is on no node here",
            pod("data"),
            view([claim("data", "local", "pv-z")], [pv("pv-z", "local", "z")]),
            None,
            "0/2 nodes are available: 2 node(s) had volume node affinity conflict.",
        ),
        (
            "delayed claim, static volume on one node",
            pod("data"),
            view([claim("data", "local")], [pv("pv-a", "local", "a")]),
            "a",
            "",
        ),
        (
            "delayed claim, no static volume and no provisioner",
            pod("data"),
            view([claim("data", "local")], []),
            None,
            "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind.",
        ),
        (
            "delayed claim with a provisioner fits any node",
            pod("data"),
            view([claim("data", "local-path")], []),
            "any",
            "",
        ),
    ],
)
def test_volume_binding(
    name: str, the_pod: dict, volumes: Volumes, node_name: str | None, message: str
) -> None:
    decision = schedule(the_pod, [node("a"), node("b")], random.Random(0), volumes)
    if node_name is None:
        assert decision.node is None, name
        assert decision.message == message, name
    elif node_name == "any":
        assert decision.node in ("a", "b"), name
    else:
        assert decision.node == node_name, name


def test_only_waiting_claims_get_the_selected_node() -> None:
    volumes = view(
        [claim("a", "local-path"), claim("b", "local", "pv-b")], [pv("pv-b", "local", "n")]
    )
    assert [c["metadata"]["name"] for c in claims_to_bind(pod("a", "b"), volumes)] == ["a"]
