"""Malformed input to the authorization layer never crashes it: odd tokens are 401,
odd review bodies and headers are answered (2xx/4xx), never a 500."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from .conftest import make_namespace


def b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


TOKENS = [
    "a.b.c",
    "..",
    "x" * 10_000,
    b64({"alg": "none"}) + "." + b64({"sub": "system:serviceaccount:default:default"}) + ".",
    b64({"alg": "RS256"}) + "." + b64([1, 2]) + "." + b64("sig"),
    b64({"alg": "RS256"}) + ".!!!." + "AAAA",
    b64("str") + "." + b64({}) + ".x",
    "\u00e9t\u00e9.\u00e9.\u00e9",
]


@pytest.mark.parametrize("token", TOKENS)
def test_odd_bearer_tokens_are_401(apiserver: Any, token: str) -> None:
    with httpx.Client(base_url=apiserver.url, verify=apiserver.ssl_context()) as anon:
        r = anon.get("/api/v1/namespaces", headers={"Authorization": f"Bearer {token}".encode()})
        assert r.status_code == 401
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
    with apiserver.client() as api:
        r = api.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review)
        assert r.status_code == 201 and r.json()["status"]["authenticated"] is False


BODIES: list[tuple[str, Any]] = [
    ("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {"spec": []}),
    (
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"spec": {"resourceAttributes": "pods"}},
    ),
    (
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"spec": {"resourceAttributes": {"verb": 5, "resource": None}}},
    ),
    ("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", [1, 2, 3]),
    ("/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", {"spec": {"namespace": {"a": 1}}}),
    (
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {"spec": {"user": "x", "groups": "notalist", "nonResourceAttributes": {"path": 1}}},
    ),
    ("/apis/authorization.k8s.io/v1/subjectaccessreviews", {"spec": {}}),
    ("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": 12, "audiences": "x"}}),
    ("/apis/authentication.k8s.io/v1/selfsubjectreviews", "just a string"),
    (
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        {"spec": {"expirationSeconds": "600"}},
    ),
    (
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        {"spec": {"expirationSeconds": True}},
    ),
    (
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        {"spec": {"expirationSeconds": 10**30}},
    ),
    (
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        {"spec": {"boundObjectRef": {"kind": "Pod", "name": ["x"]}}},
    ),
    (
        "/api/v1/namespaces/default/serviceaccounts/default/token",
        {"spec": {"audiences": [None, {"a": 1}]}},
    ),
    (
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        {"metadata": {"name": "m1"}, "spec": "x"},
    ),
    (
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        {"metadata": {"name": "m2"}, "spec": {"request": 5, "signerName": "a/b"}},
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {"metadata": {"name": "m3"}, "rules": "all"},
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {"metadata": {"name": "m4"}, "rules": [None, 1, "x"]},
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {"metadata": {"name": "m5"}, "roleRef": "view", "subjects": [1]},
    ),
    (
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "metadata": {"name": "m6"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": "everyone",
        },
    ),
]


@pytest.mark.parametrize(("path", "body"), BODIES)
def test_odd_bodies_are_answered_not_crashed(api: httpx.Client, path: str, body: Any) -> None:
    r = api.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
    assert r.status_code < 500, r.text
    assert "Traceback" not in r.text


def test_odd_impersonation_headers(api: httpx.Client, users: Any, unique: str) -> None:
    make_namespace(api, f"imp-odd-{unique}")
    for headers in (
        {"Impersonate-Group": "x"},  # a group without a user
        {"Impersonate-User": ""},
        {"Impersonate-User": "system:serviceaccount:"},
        {"Impersonate-User": "system:serviceaccount:a:b:c"},
        {"Impersonate-User": "u", "Impersonate-Uid": "1", "Impersonate-Extra-Scopes": "x"},
    ):
        r = api.get("/api/v1/namespaces", headers=headers)
        assert r.status_code < 500 or r.json()["reason"] == "InternalError", headers
        assert "Traceback" not in r.text
    nobody = users.client(f"nobody-{unique}")
    r = nobody.get("/api/v1/namespaces", headers={"Impersonate-User": "u", "Impersonate-Uid": "1"})
    assert r.status_code == 403


def test_null_rules_and_subjects_are_refused_and_harm_nobody(
    api: httpx.Client, users: Any, unique: str
) -> None:
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    r = api.post(
        f"{rbac}/clusterroles", json={"metadata": {"name": f"n-{unique}"}, "rules": [None]}
    )
    assert r.status_code == 422, r.text
    binding = {
        "metadata": {"name": f"n-{unique}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [None, {"kind": "Group", "name": "system:authenticated"}],
    }
    r = api.post(f"{rbac}/clusterrolebindings", json=binding)
    assert r.status_code == 422, r.text
    someone = users.client(f"someone-{unique}")
    assert someone.get("/api/v1/namespaces/default/pods").status_code == 403
