"""container_env: what a container's environment holds, case by case as Kubernetes defines it."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubelet.env import (
    EnvError,
    container_env,
    expand,
    go_quote,
    mapping_for,
    service_env_vars,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CONFIGMAPS = {
    ("ns", "cfg"): {
        "metadata": {"name": "cfg"},
        "data": {"mode": "fast", "LEVEL": "3", "bad key": "x"},
    },
}
SECRETS = {
    ("ns", "creds"): {
        "metadata": {"name": "creds"},
        "data": {"password": b64("s3cret"), "USER": b64("bob")},
    },
}


def make_pod(container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "ns",
            "uid": "1234-uid",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "hi"},
        },
        "spec": {
            "nodeName": "node-a",
            "serviceAccountName": "default",
            "containers": [container],
            **spec,
        },
        "status": {"podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}]},
    }


def env_of(container: dict[str, Any], **kw: Any) -> list[tuple[str, str]]:
    pod = make_pod(container)
    return container_env(
        pod,
        container,
        node_ip="192.168.1.10",
        get_configmap=lambda ns, name: CONFIGMAPS.get((ns, name)),
        get_secret=lambda ns, name: SECRETS.get((ns, name)),
        **kw,
    )


@pytest.mark.parametrize(
    ("text", "context", "expected"),
    [
        ("plain", {}, "plain"),
        ("$(A)", {"A": "x"}, "x"),
        ("pre-$(A)-post", {"A": "x"}, "pre-x-post"),
        ("$(MISSING)", {}, "$(MISSING)"),
        ("$$(A)", {"A": "x"}, "$(A)"),
        ("$$$(A)", {"A": "x"}, "$x"),
        ("$(A", {"A": "x"}, "$(A"),
        ("$A", {"A": "x"}, "$A"),
        ("cost: 5$", {}, "cost: 5$"),
        ("$(A)$(B)", {"A": "1", "B": "2"}, "12"),
        ("$()", {}, "$()"),
        ("é$(A)é", {"A": "ü"}, "éüé"),
    ],
)
def test_expand_is_kubernetes_expansion(text: str, context: dict[str, str], expected: str) -> None:
    assert expand(text, mapping_for(context)) == expected


def test_values_expand_earlier_variables_and_service_env_but_not_later_ones() -> None:
    container = {
        "name": "app",
        "env": [
            {"name": "A", "value": "a"},
            {"name": "B", "value": "$(A)-$(C)-$(FOO_SERVICE_HOST)"},
            {"name": "C", "value": "c"},
            {"name": "EMPTY", "value": ""},
        ],
    }
    env = dict(env_of(container, service_env={"FOO_SERVICE_HOST": "10.96.0.7"}))
    assert env["B"] == "a-$(C)-10.96.0.7"
    assert env["EMPTY"] == ""
    assert env["FOO_SERVICE_HOST"] == "10.96.0.7"


def test_own_variables_win_over_service_variables_which_come_first() -> None:
    container = {"name": "app", "env": [{"name": "FOO_SERVICE_HOST", "value": "mine"}]}
    env = env_of(container, service_env={"FOO_SERVICE_HOST": "10.96.0.7", "FOO_SERVICE_PORT": "80"})
    assert env == [("FOO_SERVICE_PORT", "80"), ("FOO_SERVICE_HOST", "mine")]


@pytest.mark.parametrize(
    ("field_path", "expected"),
    [
        ("metadata.name", "web-1"),
        ("metadata.namespace", "ns"),
        ("metadata.uid", "1234-uid"),
        ("metadata.labels['app']", "web"),
        ("metadata.labels['absent']", ""),
        ("metadata.annotations['note']", "hi"),
        ("metadata.labels", 'app="web"\ntier="front"'),
        ("spec.nodeName", "node-a"),
        ("spec.serviceAccountName", "default"),
        ("status.hostIP", "192.168.1.10"),
        ("status.podIP", "10.244.1.5"),
        ("status.podIPs", "10.244.1.5"),
    ],
)
def test_field_ref(field_path: str, expected: str) -> None:
    container = {
        "name": "app",
        "env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": field_path}}}],
    }
    assert env_of(container) == [("V", expected)]


def test_pod_ips_given_by_the_caller_win_over_status() -> None:
    container = {
        "name": "app",
        "env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    }
    assert env_of(container, pod_ips=["10.244.9.9"]) == [("V", "10.244.9.9")]


def test_unsupported_field_ref_is_an_error() -> None:
    container = {
        "name": "app",
        "env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}],
    }
    with pytest.raises(EnvError, match=r"field label not supported: spec\.bogus"):
        env_of(container)


@pytest.mark.parametrize(
    ("resources", "ref", "expected"),
    [
        ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu"}, "1"),
        ({"limits": {"cpu": "500m"}}, {"resource": "limits.cpu", "divisor": "1m"}, "500"),
        ({"limits": {"cpu": "2"}}, {"resource": "limits.cpu"}, "2"),
        ({"limits": {"memory": "128Mi"}}, {"resource": "limits.memory"}, "134217728"),
        ({"limits": {"memory": "128Mi"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "128"),
        ({"limits": {"memory": "100M"}}, {"resource": "limits.memory", "divisor": "1Mi"}, "96"),
        ({"requests": {"cpu": "250m"}}, {"resource": "requests.cpu", "divisor": "1m"}, "250"),
        ({}, {"resource": "requests.memory"}, "0"),
        ({}, {"resource": "limits.cpu"}, "4"),  # no limit: node allocatable
        ({}, {"resource": "limits.memory", "divisor": "1Gi"}, "8"),
    ],
)
def test_resource_field_ref(resources: dict[str, Any], ref: dict[str, Any], expected: str) -> None:
    container = {
        "name": "app",
        "resources": resources,
        "env": [{"name": "V", "valueFrom": {"resourceFieldRef": ref}}],
    }
    assert env_of(container, node_allocatable={"cpu": "4", "memory": "8Gi"}) == [("V", expected)]


def test_config_map_and_secret_key_refs() -> None:
    container = {
        "name": "app",
        "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {
                "name": "OPT1",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
            {
                "name": "OPT2",
                "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nokey", "optional": True}},
            },
            {
                "name": "OPT3",
                "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": True}},
            },
            {
                "name": "OPT4",
                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nokey", "optional": True}},
            },
        ],
    }
    assert env_of(container) == [("MODE", "fast"), ("PASS", "s3cret")]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"configMapKeyRef": {"name": "x", "key": "k"}}, 'configmap "x" not found'),
        (
            {"configMapKeyRef": {"name": "cfg", "key": "k"}},
            "couldn't find key k in ConfigMap ns/cfg",
        ),
        ({"secretKeyRef": {"name": "s", "key": "k"}}, 'secret "s" not found'),
        ({"secretKeyRef": {"name": "creds", "key": "k"}}, "couldn't find key k in Secret ns/creds"),
    ],
)
def test_missing_references_say_what_is_missing(source: dict[str, Any], message: str) -> None:
    container = {"name": "app", "env": [{"name": "V", "valueFrom": source}]}
    with pytest.raises(EnvError) as info:
        env_of(container)
    assert str(info.value) == message


def test_env_from_with_prefix_skips_invalid_names_and_env_overrides() -> None:
    container = {
        "name": "app",
        "envFrom": [
            {"configMapRef": {"name": "cfg"}},
            {"secretRef": {"name": "creds"}, "prefix": "DB_"},
            {"configMapRef": {"name": "missing", "optional": True}},
        ],
        "env": [{"name": "LEVEL", "value": "override-$(mode)"}],
    }
    warnings: list[str] = []
    env = env_of(container, on_invalid_keys=warnings.append)
    assert env == [
        ("mode", "fast"),
        ("LEVEL", "override-fast"),
        ("DB_password", "s3cret"),
        ("DB_USER", "bob"),
    ]
    assert warnings == [
        "Keys [bad key] from the EnvFrom configMap ns/cfg were skipped since they are "
        "considered invalid environment variable names."
    ]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"configMapRef": {"name": "missing"}}, 'configmap "missing" not found'),
        ({"secretRef": {"name": "missing"}}, 'secret "missing" not found'),
    ],
)
def test_env_from_missing_source(source: dict[str, Any], message: str) -> None:
    with pytest.raises(EnvError, match=message):
        env_of({"name": "app", "envFrom": [source]})


def service(name: str, ns: str, ip: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}


def test_service_env_vars_as_docker_links() -> None:
    services = [
        service("redis-primary", "ns", "10.96.0.11", [{"port": 6379, "protocol": "TCP"}]),
        service(
            "web",
            "ns",
            "10.96.0.12",
            [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}],
        ),
        service(
            "kubernetes",
            "default",
            "10.96.0.1",
            [{"name": "https", "port": 443, "protocol": "TCP"}],
        ),
        service("other", "elsewhere", "10.96.0.13", [{"port": 1}]),
        service("headless", "ns", "None", [{"port": 1}]),
    ]
    env = service_env_vars(services, "ns")
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == "10.96.0.11"
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert env["REDIS_PRIMARY_PORT"] == "tcp://10.96.0.11:6379"
    assert env["REDIS_PRIMARY_PORT_6379_TCP"] == "tcp://10.96.0.11:6379"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_PROTO"] == "tcp"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_PORT"] == "6379"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_ADDR"] == "10.96.0.11"
    assert env["WEB_SERVICE_PORT"] == "80"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_SERVICE_PORT_DNS"] == "53"
    assert env["WEB_PORT_53_UDP"] == "udp://10.96.0.12:53"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert not any(k.startswith(("OTHER_", "HEADLESS_")) for k in env)


def test_service_links_disabled_keeps_only_kubernetes() -> None:
    services = [
        service("web", "ns", "10.96.0.12", [{"port": 80}]),
        service("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443}]),
    ]
    env = service_env_vars(services, "ns", enable_service_links=False)
    assert "WEB_SERVICE_HOST" not in env
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("web", '"web"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a\nb\tc\\", '"a\\nb\\tc\\\\"'),
        ("\x01", '"\\x01"'),
        ("naïve ✓", '"naïve ✓"'),
        ("\u00a0", '"\\u00a0"'),
    ],
)
def test_go_quote_as_format_map_quotes_values(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted
