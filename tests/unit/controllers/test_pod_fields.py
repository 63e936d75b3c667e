"""What the controller-manager's shared pod informer keeps of a pod: everything but
what no controller reads (controllers/pod_fields.py)."""

from __future__ import annotations

import copy

from api.pods import is_ready, pod_requests
from controllers.pod_fields import for_controllers
from tests.pod_sample import POD, pod


def expected() -> dict:
    """The sample pod with what controllers/pod_fields.py drops taken out by hand."""
    want = copy.deepcopy(POD)
    meta = want["metadata"]
    del meta["managedFields"]
    del meta["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    for kind in ("containers", "initContainers"):
        for c in want["spec"][kind]:
            for name in (
                "image", "imagePullPolicy", "command", "args", "workingDir", "env", "envFrom",
                "volumeMounts", "volumeDevices", "livenessProbe", "readinessProbe",
                "startupProbe", "lifecycle", "securityContext", "terminationMessagePath",
                "terminationMessagePolicy", "stdin", "stdinOnce", "tty",
            ):  # fmt: skip
                del c[name]
    for v in want["spec"]["volumes"]:
        for source in ("projected", "configMap", "secret", "downwardAPI"):
            v.pop(source, None)
    for kind in ("containerStatuses", "initContainerStatuses"):
        for s in want["status"][kind]:
            del s["image"], s["imageID"], s["containerID"]
    return want


def test_drops_only_what_no_controller_reads() -> None:
    assert for_controllers(pod()) == expected()


def test_keeps_what_the_controllers_read() -> None:
    kept = for_controllers(pod())
    meta, spec, status = kept["metadata"], kept["spec"], kept["status"]
    # GC, pod GC, owners and finalizers; ReplicaSet's deletion cost; the Job's tracking.
    assert meta["ownerReferences"] == POD["metadata"]["ownerReferences"]
    assert meta["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert meta["annotations"] == {"controller.kubernetes.io/pod-deletion-cost": "5"}
    assert meta["deletionTimestamp"] and meta["creationTimestamp"] and meta["uid"]
    # Endpoints: ports by name, hostname and subdomain, IPs, readiness.
    assert spec["containers"][0]["ports"] == POD["spec"]["containers"][0]["ports"]
    assert (spec["hostname"], spec["subdomain"]) == ("web-0", "web")
    assert status["podIP"] == "10.244.0.5" and is_ready(kept)
    # HPA: requests; DaemonSet and taint eviction: selector, affinity, tolerations.
    assert pod_requests(kept) == pod_requests(POD)
    assert spec["nodeSelector"] and spec["affinity"] and spec["tolerations"]
    # Volume protection and StatefulSet: the claims.
    assert spec["volumes"][:2] == POD["spec"]["volumes"][:2]
    # Job: exit codes and finish times; ReplicaSet: restart counts.
    s = status["containerStatuses"][0]
    assert (s["name"], s["restartCount"], s["state"]["terminated"]["exitCode"]) == ("web", 2, 3)


def test_a_pod_without_the_dropped_fields_is_unchanged() -> None:
    bare = {"metadata": {"name": "p", "annotations": None}, "spec": {"containers": None}}
    assert for_controllers(copy.deepcopy(bare)) == bare


def test_equal_values_of_pods_are_kept_once() -> None:
    a, b = for_controllers(pod()), for_controllers(pod())
    assert a == b and a is not b
    for part, name in [
        ("spec", "containers"),
        ("spec", "tolerations"),
        ("metadata", "labels"),
        ("metadata", "ownerReferences"),
    ]:
        assert a[part][name] is b[part][name]
    other = pod()
    other["metadata"]["labels"]["app"] = "db"
    assert for_controllers(other)["metadata"]["labels"]["app"] == "db"
    assert a["metadata"]["labels"]["app"] == "web"
