"""RBAC over real requests: bootstrap roles, namespaces, escalation, impersonation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import Users, bind, eventually, make_namespace

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def cm(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"k": "v"}}


def test_denied_request_is_403_in_kubernetes_words(users: Users, unique: str) -> None:
    nobody = users.client(f"nobody-{unique}")
    r = nobody.get("/api/v1/namespaces/default/pods")
    assert r.status_code == 403
    status = r.json()
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'pods is forbidden: User "nobody-{unique}" cannot list resource "pods" '
        'in API group "" in the namespace "default"'
    )
    assert status["details"] == {"kind": "pods"}
    r = nobody.get("/apis/apps/v1/namespaces/default/deployments/web")
    assert r.json()["message"] == (
        f'deployments.apps "web" is forbidden: User "nobody-{unique}" cannot get resource '
        '"deployments" in API group "apps" in the namespace "default"'
    )
    r = nobody.get("/api/v1/nodes")
    assert r.json()["message"].endswith('in API group "" at the cluster scope')
    r = nobody.get("/api/v1/namespaces/default/pods/x/log")
    assert 'cannot get resource "pods/log"' in r.json()["message"]
    r = nobody.get("/metrics")
    assert r.status_code == 403
    assert r.json()["message"] == f'forbidden: User "nobody-{unique}" cannot get path "/metrics"'
    # What every authenticated user may do: discovery, health, and asking about itself.
    assert nobody.get("/apis").status_code == 200
    assert nobody.get("/api/v1").status_code == 200
    assert nobody.get("/healthz").status_code == 200
    who = nobody.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert who.status_code == 201
    assert who.json()["status"]["userInfo"]["username"] == f"nobody-{unique}"


# (role, method, path-in-namespace, body, allowed)
TABLE = [
    ("view", "GET", "pods", None, True),
    ("view", "GET", "configmaps", None, True),
    ("view", "GET", "secrets", None, False),
    ("view", "POST", "configmaps", cm("c1"), False),
    ("view", "DELETE", "pods", None, False),
    ("view", "GET", "rolebindings", None, False),
    ("edit", "GET", "secrets", None, True),
    ("edit", "POST", "configmaps", cm("c2"), True),
    ("edit", "GET", "deployments", None, True),
    ("edit", "GET", "rolebindings", None, False),
    ("edit", "GET", "leases", None, False),
    ("admin", "GET", "rolebindings", None, True),
    ("admin", "GET", "roles", None, True),
    ("admin", "POST", "configmaps", cm("c3"), True),
]
PREFIX = {
    "deployments": "/apis/apps/v1",
    "rolebindings": RBAC,
    "roles": RBAC,
    "leases": "/apis/coordination.k8s.io/v1",
}


@pytest.mark.parametrize("role", ["view", "edit", "admin"])
def test_bootstrap_role_truth_table(
    api: httpx.Client, users: Users, unique: str, role: str
) -> None:
    ns = make_namespace(api, f"rbac-{role}-{unique}")
    other = make_namespace(api, f"rbac-{role}-other-{unique}")
    name = f"{role}-user-{unique}"
    bind(api, ns, role, user=name)
    me = users.client(name)
    eventually(lambda: me.get(f"/api/v1/namespaces/{ns}/pods").status_code == 200, what="binding")
    for r_role, method, resource, body, allowed in TABLE:
        if r_role != role:
            continue
        prefix = PREFIX.get(resource, "/api/v1")
        for where, expect in ((ns, allowed), (other, False)):
            r = me.request(method, f"{prefix}/namespaces/{where}/{resource}", json=body)
            got = r.status_code != 403
            assert got == expect, (role, method, resource, where, r.status_code, r.text)
    # Cluster-scoped objects are never granted by a RoleBinding.
    assert me.get("/api/v1/nodes").status_code == 403
    assert me.get("/api/v1/namespaces").status_code == 403
    assert me.get(f"/api/v1/namespaces/{ns}").status_code == 200  # its own namespace object


def test_cluster_role_binding_grants_everywhere(
    api: httpx.Client, users: Users, unique: str
) -> None:
    name = f"viewer-{unique}"
    bind(api, "", "view", user=name)
    me = users.client(name)
    eventually(lambda: me.get("/api/v1/pods").status_code == 200, what="cluster-wide view")
    assert me.get("/api/v1/namespaces/kube-system/configmaps").status_code == 200
    assert me.get("/api/v1/namespaces/kube-system/secrets").status_code == 403


def test_group_subject_and_resource_names(api: httpx.Client, users: Users, unique: str) -> None:
    ns = make_namespace(api, f"rbac-names-{unique}")
    for n in ("one", "two"):
        assert api.post(f"/api/v1/namespaces/{ns}/configmaps", json=cm(n)).status_code == 201
    role = {
        "metadata": {"name": "only-one"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["one"],
                "verbs": ["get", "update"],
            },
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ],
    }
    assert api.post(f"{RBAC}/namespaces/{ns}/roles", json=role).status_code == 201
    group = f"team-{unique}"
    bind(api, ns, "only-one", group=group, kind="Role")
    me = users.client(f"member-{unique}", (group,))
    eventually(
        lambda: me.get(f"/api/v1/namespaces/{ns}/configmaps/one").status_code == 200,
        what="group binding",
    )
    assert me.get(f"/api/v1/namespaces/{ns}/configmaps/two").status_code == 403
    assert me.get(f"/api/v1/namespaces/{ns}/configmaps").status_code == 403  # list: no name
    assert me.get(f"/api/v1/namespaces/{ns}/pods/x/log").status_code != 403
    assert me.get(f"/api/v1/namespaces/{ns}/pods/x").status_code == 403
    outsider = users.client(f"outsider-{unique}")
    assert outsider.get(f"/api/v1/namespaces/{ns}/configmaps/one").status_code == 403


def test_escalation_is_refused(api: httpx.Client, users: Users, unique: str) -> None:
    ns = make_namespace(api, f"rbac-esc-{unique}")
    name = f"ns-admin-{unique}"
    bind(api, ns, "admin", user=name)
    me = users.client(name)
    eventually(lambda: me.get(f"{RBAC}/namespaces/{ns}/roles").status_code == 200, what="admin")
    # A role within what admin holds: fine.
    ok = {
        "metadata": {"name": "pods-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    assert me.post(f"{RBAC}/namespaces/{ns}/roles", json=ok).status_code == 201
    # Nodes are not namespace-admin's to give.
    bad = {
        "metadata": {"name": "nodes-reader"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
    }
    r = me.post(f"{RBAC}/namespaces/{ns}/roles", json=bad)
    assert r.status_code == 403
    assert r.json()["message"] == (
        f'roles.rbac.authorization.k8s.io "nodes-reader" is forbidden: user "{name}" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}'
    )
    # Nor may it bind cluster-admin, even inside its namespace...
    binding = {
        "metadata": {"name": "me-too"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cluster-admin",
        },
        "subjects": [{"kind": "User", "name": name, "apiGroup": "rbac.authorization.k8s.io"}],
    }
    r = me.post(f"{RBAC}/namespaces/{ns}/rolebindings", json=binding)
    assert r.status_code == 403
    assert "is attempting to grant RBAC permissions not currently held" in r.json()["message"]
    # ...nor sneak a rule in by updating an existing role.
    current = me.get(f"{RBAC}/namespaces/{ns}/roles/pods-reader").json()
    current["rules"].append({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]})
    assert me.put(f"{RBAC}/namespaces/{ns}/roles/pods-reader", json=current).status_code == 403
    # Binding edit (which admin holds) is allowed.
    binding["metadata"]["name"] = "edit-for-friend"
    binding["roleRef"]["name"] = "edit"
    binding["subjects"][0]["name"] = f"friend-{unique}"
    assert me.post(f"{RBAC}/namespaces/{ns}/rolebindings", json=binding).status_code == 201
    # With the `bind` verb on cluster-admin, binding it becomes possible.
    granter = {
        "metadata": {"name": f"bind-ca-{unique}"},
        "rules": [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["clusterroles"],
                "verbs": ["bind"],
                "resourceNames": ["cluster-admin"],
            }
        ],
    }
    assert api.post(f"{RBAC}/clusterroles", json=granter).status_code == 201
    bind(api, ns, f"bind-ca-{unique}", user=name, name="may-bind")
    binding["metadata"]["name"] = "me-too"
    binding["roleRef"]["name"] = "cluster-admin"
    binding["subjects"][0]["name"] = name
    eventually(
        lambda: me.post(f"{RBAC}/namespaces/{ns}/rolebindings", json=binding).status_code == 201,
        what="bind verb",
    )


def test_role_validation(api: httpx.Client, unique: str) -> None:
    bad = {
        "metadata": {"name": f"bad-{unique}"},
        "rules": [{"apiGroups": [""], "resources": ["pods"]}],
    }
    r = api.post(f"{RBAC}/clusterroles", json=bad)
    assert r.status_code == 422
    assert r.json()["details"]["causes"][0]["field"] == "rules[0].verbs"
    binding = {
        "metadata": {"name": f"b-{unique}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "x", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    assert api.post(f"{RBAC}/clusterrolebindings", json=binding).status_code == 201
    changed = api.get(f"{RBAC}/clusterrolebindings/b-{unique}").json()
    changed["roleRef"]["name"] = "edit"
    r = api.put(f"{RBAC}/clusterrolebindings/b-{unique}", json=changed)
    assert r.status_code == 422
    assert "cannot change roleRef" in r.json()["message"]


def test_impersonation_needs_its_verb(api: httpx.Client, users: Users, unique: str) -> None:
    alice, bob = f"alice-{unique}", f"bob-{unique}"
    ns = make_namespace(api, f"rbac-imp-{unique}")
    bind(api, ns, "view", user=bob)
    me = users.client(alice)
    r = me.get(f"/api/v1/namespaces/{ns}/pods", headers={"Impersonate-User": bob})
    assert r.status_code == 403
    assert r.json()["message"] == (
        f'users "{bob}" is forbidden: User "{alice}" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    )
    role = {
        "metadata": {"name": f"impersonate-{unique}"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["users"],
                "verbs": ["impersonate"],
                "resourceNames": [bob],
            }
        ],
    }
    assert api.post(f"{RBAC}/clusterroles", json=role).status_code == 201
    bind(api, "", f"impersonate-{unique}", user=alice)
    eventually(
        lambda: (
            me.get(f"/api/v1/namespaces/{ns}/pods", headers={"Impersonate-User": bob}).status_code
            == 200
        ),
        what="impersonate grant",
    )
    # Acting as bob is exactly bob's rights: no more.
    r = me.get(f"/api/v1/namespaces/{ns}/secrets", headers={"Impersonate-User": bob})
    assert r.status_code == 403 and f'User "{bob}"' in r.json()["message"]
    who = me.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json={"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1"},
        headers={"Impersonate-User": bob},
    ).json()
    assert who["status"]["userInfo"]["username"] == bob
    # Groups are a separate grant.
    r = me.get(
        f"/api/v1/namespaces/{ns}/pods",
        headers={"Impersonate-User": bob, "Impersonate-Group": "system:masters"},
    )
    assert r.status_code == 403
    assert 'cannot impersonate resource "groups"' in r.json()["message"]


def test_subject_access_review(api: httpx.Client, users: Users, unique: str) -> None:
    ns = make_namespace(api, f"rbac-sar-{unique}")
    carol = f"carol-{unique}"
    bind(api, ns, "edit", user=carol)

    def review(verb: str, resource: str, namespace: str) -> dict:
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": carol,
                "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace},
            },
        }
        r = api.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json=body)
        assert r.status_code == 201, r.text
        return r.json()["status"]

    assert eventually(lambda: review("create", "pods", ns)["allowed"], what="edit binding")
    assert not review("create", "pods", "default")["allowed"]
    # Only who may create subjectaccessreviews may ask about others.
    r = users.client(carol).post(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        json={"spec": {"user": "x", "resourceAttributes": {"verb": "get", "resource": "pods"}}},
    )
    assert r.status_code == 403
