"""Bootstrap-token authentication and what such a token may do."""

from __future__ import annotations

import base64
import datetime

import pytest

from apiserver.bootstrap_tokens import CLUSTER_INFO, anonymous_may, bootstrapper_may, user_for

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
TOKEN = "abcdef.0123456789abcdef"


def secret(**fields: str) -> dict:
    data = {
        "token-id": "abcdef",
        "token-secret": "0123456789abcdef",
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        **fields,
    }
    return {
        "type": "bootstrap.kubernetes.io/token",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items() if v},
    }


def test_a_valid_token_is_its_bootstrap_user() -> None:
    user = user_for(secret(expiration="2026-01-02T00:00:00Z"), TOKEN, NOW)
    assert user is not None
    assert user.name == "system:bootstrap:abcdef"
    assert user.groups == (
        "system:bootstrappers",
        "system:bootstrappers:kubeadm:default-node-token",
        "system:authenticated",
    )


@pytest.mark.parametrize(
    ("sec", "token"),
    [
        (secret(expiration="2026-01-01T11:59:59Z"), TOKEN),  # expired
        (secret(), "abcdef.ffffffffffffffff"),  # wrong secret
        (secret(**{"usage-bootstrap-authentication": ""}), TOKEN),  # not for authentication
        ({**secret(), "type": "Opaque"}, TOKEN),  # not a bootstrap token Secret
        (secret(), "not-a-token"),
    ],
)
def test_refused(sec: dict, token: str) -> None:
    assert user_for(sec, token, NOW) is None


def test_extra_groups_outside_bootstrappers_are_dropped() -> None:
    user = user_for(secret(**{"auth-extra-groups": "system:masters"}), TOKEN, NOW)
    assert user is not None and "system:masters" not in user.groups


CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", CSRS, True),
        ("GET", CSRS + "/node-csr-1", True),
        ("GET", CSRS, True),
        ("GET", CLUSTER_INFO, True),
        ("GET", "/api", True),
        ("DELETE", CSRS + "/node-csr-1", False),
        ("PUT", CSRS + "/node-csr-1/approval", False),  # it may not approve itself
        ("GET", "/api/v1/namespaces/default/pods", False),
        ("GET", "/api/v1/namespaces/kube-system/secrets", False),
        ("POST", "/api/v1/nodes", False),
    ],
)
def test_what_a_bootstrap_token_may_do(method: str, path: str, allowed: bool) -> None:
    assert bootstrapper_may(method, path) is allowed


def test_anonymous_may_only_read_cluster_info() -> None:
    assert anonymous_may("GET", CLUSTER_INFO)
    assert not anonymous_may("PUT", CLUSTER_INFO)
    assert not anonymous_may("GET", "/api/v1/namespaces/kube-public/configmaps")
