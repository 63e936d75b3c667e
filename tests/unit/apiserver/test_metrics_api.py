"""kubectl top's numbers: CPU rates from two samples of cumulative counters, as
metrics-server computes them, and the kubelet certificates the apiserver makes."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from apiserver import certs, kubelet_certs, metrics_api
from apiserver.metrics_api import Sample

WALL = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)


def _sample(taken: float, node_cpu: int, pods: dict) -> Sample:
    return Sample(
        taken=taken, wall=WALL, node_cpu=node_cpu, node_memory=512 * 1024 * 1024, pods=pods
    )


def test_node_cpu_is_a_rate_and_memory_the_working_set():
    node = {"metadata": {"name": "n1", "labels": {"a": "b"}}}
    old, new = _sample(10.0, 1_000_000_000, {}), _sample(12.0, 1_500_000_000, {})
    m = metrics_api.node_metrics(node, old, new)
    assert m is not None
    assert m["usage"] == {"cpu": "250000000n", "memory": "524288Ki"}
    assert m["window"] == "2.000s" and m["metadata"]["labels"] == {"a": "b"}


def test_a_pod_needs_a_rate_for_every_container():
    pod = {"metadata": {"name": "p", "namespace": "default"}}
    before = {("default", "p"): {"a": (100, 0, "t0"), "b": (0, 0, "t0")}}
    after = {("default", "p"): {"a": (1_000_100, 2048, "t0"), "b": (0, 4096, "t0")}}
    m = metrics_api.pod_metrics(pod, _sample(0.0, 0, before), _sample(1.0, 0, after))
    assert m is not None
    assert m["containers"] == [
        {"name": "a", "usage": {"cpu": "1000000n", "memory": "2Ki"}},
        {"name": "b", "usage": {"cpu": "0n", "memory": "4Ki"}},
    ]
    restarted = {("default", "p"): {"a": (5, 0, "t1"), "b": (0, 0, "t0")}}
    assert metrics_api.pod_metrics(pod, _sample(0.0, 0, before), _sample(1.0, 0, restarted)) is None
    assert metrics_api.pod_metrics(pod, _sample(0.0, 0, {}), _sample(1.0, 0, after)) is None


def test_a_counter_that_went_back_gives_no_rate():
    assert metrics_api.rate(10, 5, 1.0) is None
    assert metrics_api.rate(10, 20, 0.0) is None
    assert metrics_api.rate(0, 500_000_000, 0.5) == 1_000_000_000


def test_summary_parsing():
    summary = {
        "node": {"cpu": {"usageCoreNanoSeconds": 7}, "memory": {"workingSetBytes": 9}},
        "pods": [
            {
                "podRef": {"name": "p", "namespace": "ns"},
                "containers": [
                    {
                        "name": "c",
                        "startTime": "s",
                        "cpu": {"usageCoreNanoSeconds": 3},
                        "memory": {"workingSetBytes": 4},
                    }
                ],
            }
        ],
    }
    s = metrics_api.parse_summary(summary, 1.0)
    assert (s.node_cpu, s.node_memory, s.pods) == (7, 9, {("ns", "p"): {"c": (3, 4, "s")}})


def test_kubelet_certificates(tmp_path: Path):
    pki = tmp_path / "pki"
    ca = certs.ensure_ca(pki)
    client = kubelet_certs.ensure_kubelet_client(pki, ca)
    cert = x509.load_pem_x509_certificate(client.cert.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "kube-apiserver-kubelet-client"
    )
    # Not system:masters (only the admin is): RBAC binds it to system:kubelet-api-admin.
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == []
    # One issued in system:masters by an older skiff is made again.
    certs.issue(
        ca,
        client,
        common_name="kube-apiserver-kubelet-client",
        organizations=["system:masters"],
        client=True,
    )
    again = kubelet_certs.ensure_kubelet_client(pki, ca)
    reissued = x509.load_pem_x509_certificate(again.cert.read_bytes())
    assert reissued.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME) == []
    assert (
        kubelet_certs.main(
            [
                "serving",
                "--state-dir",
                str(tmp_path),
                "--node",
                "n1",
                "--ip",
                "10.0.0.5",
                "--out",
                str(tmp_path / "k"),
            ]
        )
        == 0
    )
    serving = x509.load_pem_x509_certificate((tmp_path / "k" / "kubelet.crt").read_bytes())
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["n1"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.5"]
    assert serving.issuer == x509.load_pem_x509_certificate(ca.cert.read_bytes()).subject


def test_which_container_a_stream_is_about():
    import pytest

    from apiserver import errors
    from apiserver.kubelet_proxy import _container

    one = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}
    two = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]},
    }
    assert _container(one, "", "log") == "a"
    assert _container(two, "i", "log") == "i"
    with pytest.raises(
        errors.ApiError,
        match=r"choose one of: \[a b\] or one of the init "
        r"containers: \[i\]",
    ):
        _container(two, "", "exec")
    with pytest.raises(errors.ApiError, match="container c is not valid for pod p"):
        _container(two, "c", "exec")
