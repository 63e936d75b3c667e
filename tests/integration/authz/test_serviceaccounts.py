"""Service-account tokens: TokenRequest, TokenReview, bearer use, the pod's token volume."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from typing import Any

import httpx
import kubernetes

from .conftest import Users, eventually, make_namespace

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def claims(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def make_sa(api: httpx.Client, ns: str, name: str, **extra: Any) -> dict[str, Any]:
    r = api.post(
        f"/api/v1/namespaces/{ns}/serviceaccounts", json={"metadata": {"name": name}, **extra}
    )
    assert r.status_code == 201, r.text
    return r.json()


def request_token(api: httpx.Client, ns: str, name: str, **spec: Any) -> httpx.Response:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    return api.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{name}/token", json=body)


def test_token_request_review_and_use(apiserver: Any, api: httpx.Client, unique: str) -> None:
    ns = make_namespace(api, f"sa-{unique}")
    sa = make_sa(api, ns, "robot")
    r = request_token(api, ns, "robot", expirationSeconds=1200)
    assert r.status_code == 201, r.text
    token = r.json()["status"]["token"]
    c = claims(token)
    assert c["sub"] == f"system:serviceaccount:{ns}:robot"
    assert c["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert c["kubernetes.io"]["serviceaccount"]["uid"] == sa["metadata"]["uid"]
    assert 1190 <= c["exp"] - c["iat"] <= 1200
    assert request_token(api, ns, "robot", expirationSeconds=60).status_code == 422
    assert request_token(api, ns, "missing").status_code == 404
    # TokenReview says whose it is; a tampered token is not.
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    status = api.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:serviceaccount:{ns}:robot"
    assert f"system:serviceaccounts:{ns}" in status["user"]["groups"]
    review["spec"]["token"] = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert (
        api.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()["status"][
            "authenticated"
        ]
        is False
    )
    review["spec"] = {"token": token, "audiences": ["vault"]}
    assert not api.post("/apis/authentication.k8s.io/v1/tokenreviews", json=review).json()[
        "status"
    ]["authenticated"]
    # As a bearer token: the account's rights, 403 beyond them (official Python client).
    binding = {
        "metadata": {"name": "robot-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}],
    }
    assert (
        api.post(
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", json=binding
        ).status_code
        == 201
    )
    config = kubernetes.client.Configuration()
    config.host = apiserver.url
    config.ssl_ca_cert = str(apiserver.ca)
    config.api_key = {"authorization": f"Bearer {token}"}
    with kubernetes.client.ApiClient(config) as client:
        core = kubernetes.client.CoreV1Api(client)
        eventually(lambda: core.list_namespaced_pod(ns).items == [], what="view binding")
        try:
            core.list_namespaced_secret(ns)
            raise AssertionError("a view token listed secrets")
        except kubernetes.client.ApiException as e:
            assert e.status == 403
            assert (
                f'User "system:serviceaccount:{ns}:robot" cannot list resource "secrets"'
                in json.loads(e.body)["message"]
            )
    # Deleting the account kills its tokens.
    assert api.delete(f"/api/v1/namespaces/{ns}/serviceaccounts/robot").status_code == 200
    with httpx.Client(base_url=apiserver.url, verify=apiserver.ssl_context()) as anon:
        eventually(
            lambda: (
                anon.get(
                    f"/api/v1/namespaces/{ns}/pods", headers={"Authorization": f"Bearer {token}"}
                ).status_code
                == 401
            ),
            what="token of a deleted account refused",
        )


def test_bound_token_dies_with_its_pod(apiserver: Any, api: httpx.Client, unique: str) -> None:
    ns = make_namespace(api, f"sab-{unique}")
    make_sa(api, ns, "default")
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    made = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).json()
    r = request_token(
        api,
        ns,
        "default",
        boundObjectRef={
            "kind": "Pod",
            "apiVersion": "v1",
            "name": "p",
            "uid": made["metadata"]["uid"],
        },
    )
    assert r.status_code == 201, r.text
    token = r.json()["status"]["token"]
    assert claims(token)["kubernetes.io"]["pod"] == {"name": "p", "uid": made["metadata"]["uid"]}
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=apiserver.url, verify=apiserver.ssl_context()) as anon:
        eventually(lambda: anon.get("/apis", headers=auth).status_code == 200, what="token works")
        assert api.delete(f"/api/v1/namespaces/{ns}/pods/p?gracePeriodSeconds=0").status_code == 200
        eventually(lambda: anon.get("/apis", headers=auth).status_code == 401, what="pod gone")


def test_pods_get_the_token_volume(api: httpx.Client, unique: str) -> None:
    ns = make_namespace(api, f"sav-{unique}")
    make_sa(api, ns, "default")
    make_sa(api, ns, "quiet", automountServiceAccountToken=False)
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "initContainers": [{"name": "i", "image": "busybox"}],
        },
    }
    made = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).json()
    spec = made["spec"]
    assert spec["serviceAccountName"] == "default"
    volume = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert sources[2]["downwardAPI"]["items"][0]["path"] == "namespace"
    for c in spec["containers"] + spec["initContainers"]:
        assert {"name": volume["name"], "mountPath": MOUNT, "readOnly": True} in c["volumeMounts"]
    # automountServiceAccountToken: false on the pod, or on its account, is honoured.
    pod["metadata"]["name"] = "off"
    pod["spec"]["automountServiceAccountToken"] = False
    off = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).json()
    assert not any(
        v["name"].startswith("kube-api-access-") for v in off["spec"].get("volumes") or []
    )
    pod["metadata"]["name"] = "quiet"
    del pod["spec"]["automountServiceAccountToken"]
    pod["spec"]["serviceAccountName"] = "quiet"
    quiet = api.post(f"/api/v1/namespaces/{ns}/pods", json=pod).json()
    assert not any(
        v["name"].startswith("kube-api-access-") for v in quiet["spec"].get("volumes") or []
    )


def test_kubectl_create_token(
    apiserver: Any, api: httpx.Client, users: Users, unique: str, kubectl_binary: str
) -> None:
    ns = make_namespace(api, f"sak-{unique}")
    make_sa(api, ns, "bot")
    done = subprocess.run(
        [
            kubectl_binary,
            "--kubeconfig",
            str(apiserver.kubeconfig),
            "create",
            "token",
            "bot",
            "-n",
            ns,
            "--duration",
            "20m",
            "--audience",
            "https://kubernetes.default.svc.cluster.local",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    c = claims(token)
    assert c["sub"] == f"system:serviceaccount:{ns}:bot"
    assert abs((c["exp"] - c["iat"]) - 1200) <= 1 and c["exp"] > time.time()
    who = subprocess.run(
        [
            kubectl_binary,
            "--kubeconfig",
            str(apiserver.kubeconfig),
            "--token",
            token,
            "auth",
            "whoami",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert f"system:serviceaccount:{ns}:bot" in who.stdout, who.stderr
    # Asking for a token needs create on serviceaccounts/token: a nobody gets 403.
    mine = users.kubeconfig(f"nobody-{unique}")
    done = subprocess.run(
        [kubectl_binary, "--kubeconfig", str(mine), "create", "token", "bot", "-n", ns],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert 'cannot create resource "serviceaccounts/token"' in done.stderr
