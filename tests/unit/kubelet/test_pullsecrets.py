"""Pull secrets: which credentials the kubelet hands the runtime for which image."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kubelet.pullsecrets import (
    PullSecretError,
    credentials_for,
    failed_pull_secrets_message,
    image_repository,
    keyring_key,
    pod_pull_secrets,
    pull_auth,
    pull_auths,
    urls_match,
)


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def config_json(auths: dict[str, Any], name: str = "regcred") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": b64(json.dumps({"auths": auths}))},
    }


def dockercfg(entries: dict[str, Any], name: str = "oldcred") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "type": "kubernetes.io/dockercfg",
        "data": {".dockercfg": b64(json.dumps(entries))},
    }


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("nginx:1.27", "docker.io/library/nginx"),
        ("bitnami/redis:7", "docker.io/bitnami/redis"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("index.docker.io/library/nginx", "docker.io/library/nginx"),
        ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd"),
        ("localhost:5000/app@sha256:" + "a" * 64, "localhost:5000/app"),
        ("localhost/app", "localhost/app"),
        ("registry.example.com:8443/team/app:v1", "registry.example.com:8443/team/app"),
    ],
)
def test_image_repository(image: str, repository: str) -> None:
    assert image_repository(image) == repository


@pytest.mark.parametrize(
    ("registry", "key"),
    [
        ("https://index.docker.io/v1/", "index.docker.io"),
        ("quay.io", "quay.io"),
        ("http://quay.io/v2/coreos", "quay.io/coreos"),
        ("registry.example.com:5000", "registry.example.com:5000"),
    ],
)
def test_keyring_keys(registry: str, key: str) -> None:
    assert keyring_key(registry) == key


@pytest.mark.parametrize(
    ("glob", "target", "matches"),
    [
        ("quay.io", "quay.io/coreos/etcd", True),
        ("quay.io/coreos", "quay.io/coreos/etcd", True),
        ("quay.io/other", "quay.io/coreos/etcd", False),
        ("*.example.com", "registry.example.com/app", True),
        ("*.example.com", "example.com/app", False),
        ("*.example.com", "a.b.example.com/app", False),
        ("registry.example.com:5000", "registry.example.com/app", False),
        ("registry.example.com:5000", "registry.example.com:5000/app", True),
        ("docker.io", "docker.io/library/nginx", True),
    ],
)
def test_urls_match(glob: str, target: str, matches: bool) -> None:
    assert urls_match(glob, target) is matches


def test_most_specific_key_first_and_all_matches_returned() -> None:
    secret = config_json(
        {
            "quay.io": {"username": "any", "password": "1"},
            "quay.io/coreos": {"username": "coreos", "password": "2"},
            "gcr.io": {"username": "g", "password": "3"},
        }
    )
    creds = credentials_for("quay.io/coreos/etcd:v3", [secret])
    assert [(c.username, c.password) for c in creds] == [("coreos", "2"), ("any", "1")]
    assert creds[0].source == "ns/regcred"
    assert credentials_for("ghcr.io/x/y", [secret]) == []


def test_auth_field_wins_and_goes_to_the_runtime() -> None:
    secret = config_json(
        {"registry.example.com": {"username": "ignored", "auth": b64("alice:pa:ss")}}
    )
    (cred,) = credentials_for("registry.example.com/team/app:v1", [secret])
    assert (cred.username, cred.password) == ("alice", "pa:ss")
    auth = cred.to_auth_config()
    assert (auth.username, auth.password, auth.server_address) == (
        "alice",
        "pa:ss",
        "registry.example.com",
    )


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "registry-1.docker.io", "docker.io"]
)
def test_docker_hub_aliases(key: str) -> None:
    secret = config_json({key: {"username": "hub", "password": "p"}})
    for image in ("nginx", "bitnami/redis:7", "docker.io/library/busybox"):
        assert [c.username for c in credentials_for(image, [secret])] == ["hub"]
    assert credentials_for("quay.io/x/y", [secret]) == []


def test_legacy_dockercfg_and_other_types() -> None:
    old = dockercfg({"https://quay.io": {"auth": b64("bob:pw"), "email": "b@example.com"}})
    opaque = {"metadata": {"name": "o", "namespace": "ns"}, "type": "Opaque", "data": {}}
    (cred,) = credentials_for("quay.io/bob/app", [opaque, old])
    assert (cred.username, cred.password, cred.source) == ("bob", "pw", "ns/oldcred")


def test_tokens() -> None:
    secret = config_json({"r.example.com": {"registrytoken": "bearer-xyz"}})
    (cred,) = credentials_for("r.example.com/app", [secret])
    assert cred.to_auth_config().registry_token == "bearer-xyz"


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (
            {
                "metadata": {"name": "bad", "namespace": "ns"},
                "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": b64("{not json")},
            },
            "secret ns/bad: .dockerconfigjson is not valid JSON",
        ),
        (
            config_json({"r.example.com": {"auth": b64("no-colon")}}),
            "unable to parse auth field, must be formatted as base64(username:password)",
        ),
    ],
)
def test_unreadable_secrets(secret: dict[str, Any], message: str) -> None:
    with pytest.raises(PullSecretError) as info:
        credentials_for("r.example.com/app", [secret])
    assert message in str(info.value)


def test_pod_pull_secrets_reports_missing() -> None:
    store = {("ns", "regcred"): config_json({})}
    pod = {
        "metadata": {"namespace": "ns"},
        "spec": {"imagePullSecrets": [{"name": "regcred"}, {"name": "gone"}, {"name": ""}]},
    }
    found, missing = pod_pull_secrets(pod, lambda ns, n: store.get((ns, n)))
    assert [s["metadata"]["name"] for s in found] == ["regcred"]
    assert missing == ["gone"]
    assert failed_pull_secrets_message(missing) == (
        "Unable to retrieve some image pull secrets (gone); "
        "attempting to pull the image may not succeed."
    )


def test_pull_auth_for_a_pod() -> None:
    store = {
        ("ns", "regcred"): config_json(
            {
                "registry.example.com": {"username": "a", "password": "1"},
                "registry.example.com/team": {"username": "b", "password": "2"},
            }
        )
    }
    pod = {
        "metadata": {"namespace": "ns"},
        "spec": {"imagePullSecrets": [{"name": "regcred"}, {"name": "gone"}]},
    }
    warnings: list[str] = []

    def get(ns: str, name: str) -> dict[str, Any] | None:
        return store.get((ns, name))

    auths = pull_auths(
        pod, "registry.example.com/team/app:v1", get_secret=get, on_missing=warnings.append
    )
    assert [(a.username, a.password) for a in auths] == [("b", "2"), ("a", "1")]
    assert warnings == [failed_pull_secrets_message(["gone"])]
    first = pull_auth(pod, "registry.example.com/team/app:v1", get_secret=get)
    assert first is not None and first.username == "b"
    assert pull_auth(pod, "nginx", get_secret=get) is None
    assert pull_auth({"metadata": {"namespace": "ns"}, "spec": {}}, "nginx", get_secret=get) is None
