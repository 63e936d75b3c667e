"""The pure parts of authorization, table-tested: request attributes, RBAC rule
matching, escalation coverage, aggregation, the Node graph, the ServiceAccount
admission plugin and service-account tokens."""

from __future__ import annotations

from typing import Any

import pytest

from api.rbac import aggregated_rules
from apiserver.auth import UserInfo
from apiserver.authz.attributes import Attributes, from_request
from apiserver.authz.authorizer import forbidden_message
from apiserver.authz.filter import impersonated
from apiserver.authz.node import references
from apiserver.authz.rbac import Policy, RBACAuthorizer, rule_allows, uncovered
from apiserver.serviceaccounts import TOKEN_MOUNT_PATH, TokenIssuer, admit_pod

A = Attributes


@pytest.mark.parametrize(
    ("method", "path", "query", "want"),
    [
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            "",
            A("list", resource="pods", namespace="ns", api_version="v1"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            "watch=1",
            A("watch", resource="pods", namespace="ns", api_version="v1"),
        ),
        (
            "GET",
            "/api/v1/watch/namespaces/ns/pods/p",
            "",
            A("watch", resource="pods", namespace="ns", name="p", api_version="v1"),
        ),
        (
            "POST",
            "/api/v1/namespaces/ns/pods",
            "",
            A("create", resource="pods", namespace="ns", api_version="v1"),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns/pods/p/log",
            "",
            A(
                "get",
                resource="pods",
                subresource="log",
                namespace="ns",
                name="p",
                api_version="v1",
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces/ns/pods/p/exec",
            "",
            A(
                "create",
                resource="pods",
                subresource="exec",
                namespace="ns",
                name="p",
                api_version="v1",
            ),
        ),
        (
            "PUT",
            "/api/v1/namespaces/ns",
            "",
            A("update", resource="namespaces", namespace="ns", name="ns", api_version="v1"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/ns/finalize",
            "",
            A(
                "update",
                resource="namespaces",
                subresource="finalize",
                namespace="ns",
                name="ns",
                api_version="v1",
            ),
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/ns/deployments",
            "",
            A(
                "deletecollection",
                api_group="apps",
                resource="deployments",
                namespace="ns",
                api_version="v1",
            ),
        ),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/ns/deployments/d/scale",
            "",
            A(
                "patch",
                api_group="apps",
                resource="deployments",
                subresource="scale",
                namespace="ns",
                name="d",
                api_version="v1",
            ),
        ),
        (
            "GET",
            "/api/v1/nodes/n/proxy/metrics/cadvisor",
            "",
            A("get", resource="nodes", subresource="proxy", name="n", api_version="v1"),
        ),
        (
            "GET",
            "/api/v1/nodes",
            "fieldSelector=metadata.name%3Dn1",
            A("list", resource="nodes", name="n1", api_version="v1"),
        ),
    ],
)
def test_request_attributes(method: str, path: str, query: str, want: Attributes) -> None:
    from urllib.parse import unquote

    got = from_request(method, path, unquote(query))
    assert got == Attributes(**{**want.__dict__, "path": path})


@pytest.mark.parametrize("path", ["/healthz", "/api", "/apis/apps/v1", "/openapi/v2", "/metrics"])
def test_non_resource_paths(path: str) -> None:
    got = from_request("GET", path)
    assert not got.resource_request and got.verb == "get" and got.path == path


RULES: list[tuple[dict[str, Any], Attributes, bool]] = [
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, A("get", resource="pods"), True),
    (
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
        A("list", resource="pods"),
        False,
    ),
    (
        {"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]},
        A("delete", resource="pods"),
        True,
    ),
    (
        {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]},
        A("get", resource="pods"),
        False,
    ),
    (
        {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]},
        A("get", api_group="x", resource="y"),
        True,
    ),
    (
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
        A("get", resource="pods", subresource="log"),
        False,
    ),
    (
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
        A("get", resource="pods", subresource="log"),
        True,
    ),
    (
        {"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]},
        A("get", resource="pods", subresource="log"),
        True,
    ),
    (
        {"verbs": ["get"], "apiGroups": [""], "resources": ["*"]},
        A("get", resource="pods", subresource="log"),
        True,
    ),
    (
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
        A("get", resource="pods", name="a"),
        True,
    ),
    (
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
        A("get", resource="pods", name="b"),
        False,
    ),
    (
        {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
        A("list", resource="pods"),
        False,
    ),
    (
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        A("get", resource_request=False, path="/healthz"),
        True,
    ),
    (
        {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]},
        A("get", resource_request=False, path="/logs/x/y"),
        True,
    ),
    (
        {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]},
        A("get", resource_request=False, path="/log"),
        False,
    ),
    (
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
        A("post", resource_request=False, path="/healthz"),
        False,
    ),
    (
        {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]},
        A("get", resource_request=False, path="/healthz"),
        False,
    ),
]


@pytest.mark.parametrize(("rule", "attrs", "allowed"), RULES)
def test_rule_matching(rule: dict[str, Any], attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


def policy(
    roles: list[dict], cluster_roles: list[dict], rbs: list[dict], crbs: list[dict]
) -> Policy:
    return Policy(
        roles=lambda ns: [r for r in roles if r["metadata"]["namespace"] == ns],
        role=lambda ns, n: next(
            (r for r in roles if r["metadata"] == {"namespace": ns, "name": n}), None
        ),
        cluster_role=lambda n: next((r for r in cluster_roles if r["metadata"]["name"] == n), None),
        role_bindings=lambda ns: [b for b in rbs if b["metadata"]["namespace"] == ns],
        cluster_role_bindings=lambda: crbs,
    )


def test_bindings_by_user_group_serviceaccount_and_namespace() -> None:
    reader = {
        "metadata": {"name": "reader"},
        "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
    }
    local = {
        "metadata": {"namespace": "a", "name": "local"},
        "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}],
    }
    rbs = [
        {
            "metadata": {"namespace": "a", "name": "1"},
            "roleRef": {"kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "User", "name": "u"}],
        },
        {
            "metadata": {"namespace": "a", "name": "2"},
            "roleRef": {"kind": "Role", "name": "local"},
            "subjects": [{"kind": "Group", "name": "g"}],
        },
        {
            "metadata": {"namespace": "b", "name": "3"},
            "roleRef": {"kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}],
        },
    ]
    crbs = [
        {
            "metadata": {"name": "4"},
            "roleRef": {"kind": "ClusterRole", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "c"}],
        }
    ]
    authz = RBACAuthorizer(policy([local], [reader], rbs, crbs))
    u, g = UserInfo("u"), UserInfo("x", "", ("g",))
    sa_b, sa_c = UserInfo("system:serviceaccount:b:sa"), UserInfo("system:serviceaccount:c:sa")
    assert authz.authorize(u, A("get", resource="pods", namespace="a"))[0]
    assert not authz.authorize(u, A("get", resource="pods", namespace="b"))[0]
    assert not authz.authorize(u, A("get", resource="pods"))[0]  # cluster scope
    assert authz.authorize(g, A("list", resource="pods", namespace="a"))[0]
    assert not authz.authorize(g, A("get", resource="pods", namespace="a"))[0]
    assert authz.authorize(sa_b, A("get", resource="pods", namespace="b"))[0]
    assert not authz.authorize(sa_b, A("get", resource="pods", namespace="a"))[0]
    assert authz.authorize(sa_c, A("get", resource="pods", namespace="zzz"))[0]
    assert authz.authorize(sa_c, A("get", resource="pods"))[0]


@pytest.mark.parametrize(
    ("owner", "wanted", "missing"),
    [
        (
            [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            [{"verbs": ["get"], "apiGroups": ["x"], "resources": ["y"]}],
            0,
        ),
        (
            [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}],
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            0,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            [{"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}],
            1,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            [{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}],
            1,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}],
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            1,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}],
            [
                {
                    "verbs": ["get"],
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "resourceNames": ["a", "b"],
                }
            ],
            0,
        ),
        (
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]}],
            [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}],
            0,
        ),
        (
            [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}],
            [{"verbs": ["get"], "nonResourceURLs": ["/logs/a"]}],
            0,
        ),
        (
            [{"verbs": ["get"], "nonResourceURLs": ["/logs/a"]}],
            [{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}],
            1,
        ),
    ],
)
def test_escalation_coverage(owner: list[dict], wanted: list[dict], missing: int) -> None:
    assert len(uncovered(owner, wanted)) == missing


def test_aggregation_collects_selected_roles_in_name_order() -> None:
    label = "rbac.authorization.k8s.io/aggregate-to-view"
    view = {
        "metadata": {"name": "view"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]},
    }
    r1 = {"verbs": ["get"], "apiGroups": ["b"], "resources": ["x"]}
    r2 = {"verbs": ["get"], "apiGroups": ["a"], "resources": ["y"]}
    roles = [
        view,
        {"metadata": {"name": "zz", "labels": {label: "true"}}, "rules": [r1]},
        {"metadata": {"name": "aa", "labels": {label: "true"}}, "rules": [r2, r1]},
        {"metadata": {"name": "other", "labels": {label: "false"}}, "rules": [{"verbs": ["*"]}]},
    ]
    assert aggregated_rules(view, roles) == [r2, r1]


def test_forbidden_messages() -> None:
    u = UserInfo("x")
    assert forbidden_message(u, A("list", resource="pods", namespace="y")) == (
        'User "x" cannot list resource "pods" in API group "" in the namespace "y"'
    )
    assert forbidden_message(
        u, A("get", api_group="apps", resource="deployments", subresource="scale")
    ) == (
        'User "x" cannot get resource "deployments/scale" in API group "apps" at the cluster scope'
    )
    assert (
        forbidden_message(u, A("get", resource_request=False, path="/x"))
        == 'User "x" cannot get path "/x"'
    )


def test_impersonation_adds_groups_and_checks_each() -> None:
    asked: list[Attributes] = []

    def allow(_: UserInfo, attrs: Attributes) -> bool:
        asked.append(attrs)
        return True

    admin = UserInfo("admin", "", ("system:masters",))
    got = impersonated(admin, [(b"impersonate-user", b"system:serviceaccount:ns:sa")], allow)
    assert got == UserInfo(
        "system:serviceaccount:ns:sa",
        "",
        ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"),
    )
    assert asked == [A("impersonate", resource="serviceaccounts", namespace="ns", name="sa")]
    asked.clear()
    got = impersonated(
        admin, [(b"impersonate-user", b"bob"), (b"impersonate-group", b"dev")], allow
    )
    assert got.groups == ("dev", "system:authenticated")
    assert [a.resource for a in asked] == ["users", "groups"]
    assert impersonated(admin, [], allow) is admin
    asked.clear()
    impersonated(
        admin, [(b"impersonate-user", b"bob"), (b"impersonate-extra-scopes", b"view")], allow
    )
    assert asked[-1] == A(
        "impersonate",
        api_group="authentication.k8s.io",
        resource="userextras",
        subresource="scopes",
        name="view",
    )


def test_node_graph_references() -> None:
    pod = {
        "spec": {
            "serviceAccountName": "sa",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol"}},
                {"name": "b", "configMap": {"name": "cm"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "claim"}},
                {
                    "name": "d",
                    "projected": {
                        "sources": [{"secret": {"name": "proj"}}, {"configMap": {"name": "pcm"}}]
                    },
                },
            ],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "initenv"}}]}],
            "containers": [
                {
                    "name": "c",
                    "env": [
                        {
                            "name": "X",
                            "valueFrom": {"configMapKeyRef": {"name": "envcm", "key": "k"}},
                        }
                    ],
                }
            ],
        }
    }
    assert set(references(pod)) == {
        ("serviceaccount", "sa"),
        ("secret", "pull"),
        ("secret", "vol"),
        ("configmap", "cm"),
        ("pvc", "claim"),
        ("secret", "proj"),
        ("configmap", "pcm"),
        ("secret", "initenv"),
        ("configmap", "envcm"),
    }


def test_service_account_admission() -> None:
    pod = {
        "spec": {
            "containers": [
                {"name": "c"},
                {"name": "d", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
            ]
        }
    }
    admit_pod(pod, {"metadata": {"name": "default"}}, "abcde")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    assert [v["name"] for v in spec["volumes"]] == ["kube-api-access-abcde"]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": "kube-api-access-abcde", "mountPath": TOKEN_MOUNT_PATH, "readOnly": True}
    ]
    assert len(spec["containers"][1]["volumeMounts"]) == 1  # its own mount there wins
    for pod_says, account_says, mounted in [
        (None, False, False),
        (True, False, True),
        (False, None, False),
        (None, None, True),
    ]:
        pod = {"spec": {"containers": [{"name": "c"}]}}
        if pod_says is not None:
            pod["spec"]["automountServiceAccountToken"] = pod_says
        account: dict[str, Any] = {"metadata": {"name": "default"}}
        if account_says is not None:
            account["automountServiceAccountToken"] = account_says
        admit_pod(pod, account, "x")
        assert bool(pod["spec"].get("volumes")) is mounted
    # Malformed input is left to validation, never a crash.
    for spec in ({"containers": "no"}, {"containers": [1]}, {"volumes": "x", "containers": []}):
        admit_pod({"spec": spec}, {"metadata": {"name": "default"}}, "x")


def test_tokens_sign_verify_expire_and_bind() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    now = [1_000_000.0]
    live: dict[tuple[str, str, str], dict] = {}
    issuer = TokenIssuer(
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        lookup=lambda r, ns, n: live.get((r, ns, n)),
        clock=lambda: now[0],
    )
    sa = {"metadata": {"name": "sa", "namespace": "ns", "uid": "u1"}}
    live[("serviceaccounts", "ns", "sa")] = sa
    token, exp = issuer.issue(sa, expiration=600)
    assert exp == 1_000_600
    user, _auds = issuer.authenticate(token) or (None, None)
    assert user is not None and user.name == "system:serviceaccount:ns:sa" and user.uid == "u1"
    assert issuer.authenticate(token, ["other"]) is None
    assert issuer.authenticate(token[:-2] + "xx") is None
    now[0] += 600
    assert issuer.authenticate(token) is None  # expired
    now[0] -= 600
    live[("serviceaccounts", "ns", "sa")] = {
        "metadata": {"name": "sa", "namespace": "ns", "uid": "u2"}
    }
    assert issuer.authenticate(token) is None  # the account was made again
    live[("serviceaccounts", "ns", "sa")] = sa
    pod = {"metadata": {"name": "p", "uid": "p1"}, "spec": {"nodeName": "n"}}
    bound, _ = issuer.issue(sa, pod=pod, audiences=["vault"])
    assert issuer.authenticate(bound, ["vault"]) is None  # the pod is not there
    live[("pods", "ns", "p")] = pod
    assert issuer.authenticate(bound, ["vault"]) is not None
