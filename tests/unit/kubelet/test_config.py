"""From a Pod spec to the runtime's configs: the kubelet's translations, by table."""

from __future__ import annotations

from typing import Any

import pytest

from kubelet.config import (
    ConfigError,
    cgroup_parent,
    container_config,
    dns_config,
    linux_resources,
    oom_score_adj,
    pod_resources,
    sandbox_config,
    security_context,
)
from proto import runtime_pb2 as pb

GI = 1024**3
HOST = pb.DNSConfig(servers=["192.0.2.53"], searches=["lab.example"], options=["edns0"])


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec},
    }


def test_cluster_first_dns() -> None:
    dns = dns_config(
        pod(), cluster_dns="10.96.0.10", cluster_domain="cluster.local", host_resolv=HOST
    )
    assert list(dns.servers) == ["10.96.0.10"]
    assert list(dns.searches) == [
        "shop.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
        "lab.example",
    ]
    assert list(dns.options) == ["ndots:5"]


@pytest.mark.parametrize(
    ("spec", "servers"),
    [
        ({"dnsPolicy": "Default"}, ["192.0.2.53"]),
        ({"hostNetwork": True}, ["192.0.2.53"]),
        ({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}, ["10.96.0.10"]),
        ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"]}}, ["1.2.3.4"]),
    ],
)
def test_dns_policies(spec: dict[str, Any], servers: list[str]) -> None:
    dns = dns_config(
        pod(**spec), cluster_dns="10.96.0.10", cluster_domain="cluster.local", host_resolv=HOST
    )
    assert list(dns.servers) == servers


def test_dns_config_options_override() -> None:
    spec = {"dnsConfig": {"options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}
    dns = dns_config(
        pod(**spec), cluster_dns="10.96.0.10", cluster_domain="cluster.local", host_resolv=HOST
    )
    assert list(dns.options) == ["ndots:2", "rotate"]


@pytest.mark.parametrize(
    ("qos", "parent"),
    [
        ("Guaranteed", "kubepods/podu1"),
        ("Burstable", "kubepods/burstable/podu1"),
        ("BestEffort", "kubepods/besteffort/podu1"),
    ],
)
def test_cgroup_parent(qos: str, parent: str) -> None:
    assert cgroup_parent(pod(), qos) == parent


def test_container_resources() -> None:
    c = {
        "name": "app",
        "resources": {
            "requests": {"cpu": "250m", "memory": "1Gi"},
            "limits": {"cpu": "500m", "memory": "2Gi"},
        },
    }
    r = linux_resources(c, qos="Burstable", node_memory=8 * GI)
    assert (r.cpu_shares, r.cpu_period, r.cpu_quota) == (256, 100_000, 50_000)
    assert r.memory_limit_in_bytes == 2 * GI
    assert r.oom_score_adj == 1000 - 1000 // 8


def test_best_effort_gets_minimum_shares() -> None:
    r = linux_resources({"name": "app"}, qos="BestEffort", node_memory=GI)
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes, r.oom_score_adj) == (2, 0, 0, 1000)


@pytest.mark.parametrize(
    ("qos", "memory_request", "adj"),
    [
        ("Guaranteed", GI, -997),
        ("BestEffort", 0, 1000),
        ("Burstable", 0, 999),
        ("Burstable", 8 * GI, 2),
        ("Burstable", 4 * GI, 500),
    ],
)
def test_oom_score_adj(qos: str, memory_request: int, adj: int) -> None:
    assert oom_score_adj(qos, memory_request, 8 * GI) == adj


def test_pod_level_limits_only_when_every_container_has_one() -> None:
    limited = pod(
        containers=[
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}}},
        ]
    )
    r = pod_resources(limited)
    assert (r.cpu_quota, r.memory_limit_in_bytes) == (150_000, 2 * GI)
    partly = pod(containers=[{"name": "a", "resources": {"limits": {"cpu": "1"}}}, {"name": "b"}])
    assert pod_resources(partly).cpu_quota == 0


@pytest.mark.parametrize(
    ("pod_sc", "sc", "image_uid", "error"),
    [
        ({"runAsNonRoot": True}, {}, 0, "image will run as root"),
        ({"runAsNonRoot": True}, {"runAsUser": 0}, 1000, "runAsUser breaks non-root policy"),
        ({"runAsNonRoot": True}, {}, None, "non-numeric user (nobody)"),
        ({"runAsNonRoot": True}, {}, 1000, None),
        ({"runAsNonRoot": True, "runAsUser": 1000}, {}, 0, None),
    ],
)
def test_run_as_non_root(pod_sc: dict, sc: dict, image_uid: int | None, error: str | None) -> None:
    p = pod(securityContext=pod_sc)
    container = {"name": "app", "securityContext": sc}
    if error is None:
        security_context(p, container, image_uid=image_uid, image_user="nobody")
        return
    with pytest.raises(ConfigError, match=error.replace("(", r"\(").replace(")", r"\)")):
        security_context(p, container, image_uid=image_uid, image_user="nobody")


def test_security_context_fields() -> None:
    p = pod(securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000})
    container = {
        "name": "app",
        "securityContext": {
            "runAsUser": 2000,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
        },
    }
    sc = security_context(p, container, image_uid=0, image_user="")
    assert (sc.run_as_user, sc.has_run_as_user, sc.run_as_group) == (2000, True, 3000)
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(sc.supplemental_groups) == [2000]


def test_sandbox_config() -> None:
    p = pod(
        hostNetwork=True,
        hostPID=True,
        hostname="front",
        containers=[{"name": "app", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
    )
    config = sandbox_config(
        p,
        attempt=1,
        qos="BestEffort",
        log_dir="/var/log/pods",
        cluster_dns="10.96.0.10",
        cluster_domain="cluster.local",
        host_resolv=HOST,
    )
    assert config.hostname == "front"
    assert config.log_directory == "/var/log/pods/shop_web_u1"
    assert config.metadata.attempt == 1
    assert config.labels["io.kubernetes.pod.uid"] == "u1"
    assert config.linux.namespace_options.network == pb.NamespaceOption.NODE
    assert config.linux.namespace_options.pid == pb.NamespaceOption.NODE
    assert (config.port_mappings[0].container_port, config.port_mappings[0].host_port) == (80, 8080)


def test_container_config_labels_and_log_path() -> None:
    p = pod()
    container = {"name": "app", "command": ["sh"], "args": ["-c", "true"], "workingDir": "/w"}
    config = container_config(
        p,
        container,
        attempt=3,
        image="docker.io/library/busybox:latest",
        env=[("A", "1")],
        mounts=[("/data", "/host/data", True)],
        resources=pb.LinuxContainerResources(),
        security=pb.LinuxContainerSecurityContext(),
    )
    assert config.metadata.attempt == 3
    assert config.log_path == "app/3.log"
    assert config.labels["io.kubernetes.container.name"] == "app"
    assert list(config.command) == ["sh"] and list(config.args) == ["-c", "true"]
    assert config.working_dir == "/w"
    assert [(e.key, e.value) for e in config.envs] == [("A", "1")]
    assert config.mounts[0].readonly


def test_command_and_args_expand_the_containers_variables() -> None:
    container = {
        "name": "app",
        "command": ["echo", "$(GREETING)"],
        "args": ["$(NAME) costs $$5", "$(UNKNOWN)"],
    }
    config = container_config(
        pod(),
        container,
        attempt=0,
        image="busybox",
        env=[("GREETING", "hi"), ("NAME", "tea")],
        mounts=[],
        resources=pb.LinuxContainerResources(),
        security=pb.LinuxContainerSecurityContext(),
    )
    assert list(config.command) == ["echo", "hi"]
    assert list(config.args) == ["tea costs $5", "$(UNKNOWN)"]
