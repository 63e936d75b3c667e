"""The roles and bindings every cluster starts with, named as Kubernetes names them.

kube-apiserver writes these at start (its `rbac/bootstrap-roles` post-start
hook) and puts back any that were deleted; it leaves alone a role whose
`rbac.authorization.kubernetes.io/autoupdate` annotation is "false". skiff
does the same. Each component role holds what that skiff component uses of the
API — read controllers/, scheduler/, kubelet/ and proxy/ to see why each rule
is there.

admin, edit and view carry an `aggregationRule`: their rules are the union of
every ClusterRole labelled `rbac.authorization.k8s.io/aggregate-to-<name>:
"true"`, kept up to date by the clusterrole-aggregation controller. The
apiserver fills them once at bootstrap so a cluster is usable before the
controller-manager first runs.
"""

from __future__ import annotations

from typing import Any

from api.rbac import aggregated_rules

from .rbac import GROUP

READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-"
KUBELET_API_CLIENT = "kube-apiserver-kubelet-client"


def rule(verbs: list[str], groups: list[str], resources: list[str], **extra: Any) -> dict:
    r: dict[str, Any] = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if extra.get("names"):
        r["resourceNames"] = extra["names"]
    return r


def urls(verbs: list[str], paths: list[str]) -> dict:
    return {"verbs": verbs, "nonResourceURLs": paths}


def _meta(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults", **(labels or {})},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    }


def cluster_role(
    name: str,
    rules: list[dict],
    *,
    labels: dict[str, str] | None = None,
    aggregate_from: str = "",
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": _meta(name, labels),
        "rules": rules,
    }
    if aggregate_from:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {AGGREGATE_LABEL + aggregate_from: "true"}}]
        }
    return role


def binding(name: str, role: str, subjects: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [
            {"kind": kind, "apiGroup": GROUP, "name": subject} for kind, subject in subjects
        ],
    }


EVENTS = [
    rule(["create", "patch", "update"], [""], ["events"]),
    rule(["create", "patch", "update"], ["events.k8s.io"], ["events"]),
]
LEADER_ELECTION = [
    rule(["create", "get", "list", "watch", "update", "patch"], ["coordination.k8s.io"], ["leases"])
]

VIEW = [
    rule(
        READ,
        [""],
        [
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
        ],
    ),
    rule(
        READ,
        [""],
        [
            "bindings",
            "events",
            "limitranges",
            "namespaces/status",
            "pods/log",
            "pods/status",
            "replicationcontrollers/status",
            "resourcequotas",
            "resourcequotas/status",
        ],
    ),
    rule(READ, [""], ["namespaces"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    rule(
        READ,
        ["apps"],
        [
            "controllerrevisions",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
        ],
    ),
    rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
    rule(READ, ["metrics.k8s.io"], ["pods", "nodes"]),
]

EDIT = [
    rule(
        ["create", "get", "list", "watch"],
        [""],
        ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
    ),
    rule(READ, [""], ["secrets", "services/proxy"]),
    rule(["impersonate"], [""], ["serviceaccounts"]),
    rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(
        WRITE,
        [""],
        [
            "configmaps",
            "events",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "secrets",
            "serviceaccounts",
            "services",
            "services/proxy",
        ],
    ),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(
        WRITE,
        ["apps"],
        [
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ],
    ),
    rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
    rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    rule(WRITE, ["discovery.k8s.io"], ["endpointslices"]),
]

ADMIN = [
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    rule(ALL, [GROUP], ["rolebindings", "roles"]),
]

SCHEDULER = [
    *EVENTS,
    *LEADER_ELECTION,
    rule(READ, [""], ["nodes", "namespaces", "services", "replicationcontrollers"]),
    rule(["delete", "get", "list", "watch"], [""], ["pods"]),
    rule(["create"], [""], ["bindings", "pods/binding"]),
    rule(["patch", "update"], [""], ["pods/status"]),
    # Kubernetes' system:volume-scheduler: binding a WaitForFirstConsumer claim
    # annotates it with the chosen node (volume.kubernetes.io/selected-node).
    rule([*READ, "patch", "update"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(READ, ["apps"], ["replicasets", "statefulsets"]),
    rule(READ, ["policy"], ["poddisruptionbudgets"]),
    rule(READ, ["storage.k8s.io"], ["csinodes", "storageclasses", "csidrivers"]),
    rule(READ, [""], ["configmaps"]),
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
]

# The controller-manager runs every controller under one identity, so its role
# is the union of the controllers' own (Kubernetes' system:controller:* roles):
# the namespace controller and the garbage collector read and delete anything
# namespaced, the workload controllers write what they manage.
CONTROLLER_MANAGER = [
    *EVENTS,
    *LEADER_ELECTION,
    rule(READ, ["*"], ["*"]),
    rule(["delete", "deletecollection"], ["*"], ["*"]),
    # The garbage collector removes finalizers and ownerReferences on any kind it
    # follows (system:controller:generic-garbage-collector's `*` patch/update).
    rule(["patch", "update"], ["*"], ["*"]),
    rule(
        ["create", "patch", "update"],
        [""],
        [
            "pods",
            "pods/status",
            "endpoints",
            "serviceaccounts",
            "configmaps",
            "secrets",
            "services",
            "services/status",
        ],
    ),
    rule(
        ["patch", "update"],
        [""],
        ["nodes", "nodes/status", "namespaces", "namespaces/finalize", "namespaces/status"],
    ),
    rule(
        ["create", "patch", "update"],
        ["apps"],
        [
            "replicasets",
            "replicasets/status",
            "replicasets/scale",
            "deployments",
            "deployments/status",
            "deployments/scale",
            "daemonsets",
            "daemonsets/status",
            "statefulsets",
            "statefulsets/status",
            "statefulsets/scale",
            "controllerrevisions",
        ],
    ),
    # the job, cronjob, PV binder, replication and HPA controllers' writes
    rule(
        ["create", "patch", "update"],
        ["batch"],
        ["jobs", "jobs/status", "jobs/finalizers", "cronjobs", "cronjobs/status"],
    ),
    rule(
        ["create", "patch", "update"],
        [""],
        [
            "persistentvolumes",
            "persistentvolumes/status",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "replicationcontrollers",
            "replicationcontrollers/status",
            "replicationcontrollers/scale",
        ],
    ),
    rule(["patch", "update"], ["autoscaling"], ["horizontalpodautoscalers/status"]),
    rule(["create", "patch", "update"], ["discovery.k8s.io"], ["endpointslices"]),
    rule(["create"], [""], ["serviceaccounts/token", "pods/eviction"]),
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    # csrapproving: joining kubelets' client certificates (controllers/certificates.py)
    rule(["update"], ["certificates.k8s.io"], ["certificatesigningrequests/approval"]),
    rule(
        ["approve"],
        ["certificates.k8s.io"],
        ["signers"],
        names=["kubernetes.io/kube-apiserver-client-kubelet"],
    ),
    # The clusterrole-aggregation controller writes aggregated rules; it may
    # only collect rules that exist, which escalation checks verify on update.
    rule(["escalate", "get", "list", "patch", "update", "watch"], [GROUP], ["clusterroles"]),
]

NODE_PROXIER = [
    *EVENTS,
    rule(["list", "watch"], [""], ["endpoints", "services"]),
    rule(READ, [""], ["nodes"]),
    rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
]

# skiff's cluster DNS (proxy/dns.py, `skiff dns`): CoreDNS's read rights, and it
# registers itself: the kube-dns Service and an EndpointSlice per server.
DNS = [
    rule(["list", "watch"], [""], ["services", "endpoints", "namespaces", "pods"]),
    rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
    rule(["get", "create", "update", "patch"], [""], ["services"]),
    rule(["get", "create", "update", "patch", "delete"], ["discovery.k8s.io"], ["endpointslices"]),
]

# What the Node authorizer lets every kubelet do (then narrowed to its own
# objects by the authorizer's graph and NodeRestriction).
NODE = [
    rule(["create", "delete", "get", "list", "watch", "patch", "update"], [""], ["nodes"]),
    rule(["patch", "update"], [""], ["nodes/status"]),
    rule(["create", "patch", "update"], [""], ["events"]),
    rule(["create", "patch", "update"], ["events.k8s.io"], ["events"]),
    rule(READ, [""], ["pods", "services", "endpoints"]),
    rule(["create", "delete"], [""], ["pods"]),
    rule(["patch", "update"], [""], ["pods/status"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(["get"], [""], ["configmaps", "secrets", "persistentvolumeclaims", "persistentvolumes"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(["get"], [""], ["serviceaccounts"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    rule(["create", "delete", "get", "patch", "update"], ["coordination.k8s.io"], ["leases"]),
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(
        ["create"], ["authorization.k8s.io"], ["subjectaccessreviews", "localsubjectaccessreviews"]
    ),
    rule(["get", "list", "watch"], ["node.k8s.io"], ["runtimeclasses"]),
    rule(
        ["create", "get", "list", "watch"], ["certificates.k8s.io"], ["certificatesigningrequests"]
    ),
]

# The local-path provisioner runs inside every kubelet (kubelet/localpath.py; k3s
# runs it as a Deployment with a service account of its own): it follows claims
# and volumes, makes hostPath volumes for claims that name its node, deletes them
# under Delete, and makes the default StorageClass. Bound to system:nodes.
LOCAL_PATH_PROVISIONER = [
    rule(READ, [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(["create", "delete", "patch", "update"], [""], ["persistentvolumes"]),
    rule([*READ, "create"], ["storage.k8s.io"], ["storageclasses"]),
]

KUBELET_API_ADMIN = [
    rule(["get", "list", "watch", "proxy"], [""], ["nodes"]),
    rule(
        ALL,
        [""],
        [
            "nodes/log",
            "nodes/metrics",
            "nodes/proxy",
            "nodes/stats",
            "nodes/spec",
            "nodes/checkpoint",
            "nodes/configz",
            "nodes/healthz",
            "nodes/pods",
        ],
    ),
]

DISCOVERY_URLS = [
    "/api",
    "/api/*",
    "/apis",
    "/apis/*",
    "/healthz",
    "/livez",
    "/openapi",
    "/openapi/*",
    "/readyz",
    "/version",
    "/version/",
]
PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]


def cluster_roles() -> list[dict[str, Any]]:
    roles = [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), urls(["*"], ["*"])]),
        cluster_role("system:discovery", [urls(["get"], DISCOVERY_URLS)]),
        cluster_role("system:public-info-viewer", [urls(["get"], PUBLIC_URLS)]),
        cluster_role(
            "system:basic-user",
            [
                rule(
                    ["create"],
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
            ],
        ),
        cluster_role(
            "system:monitoring",
            [
                urls(
                    ["get"],
                    [
                        "/metrics",
                        "/metrics/slis",
                        "/livez",
                        "/readyz",
                        "/healthz",
                        "/livez/*",
                        "/readyz/*",
                        "/healthz/*",
                    ],
                )
            ],
        ),
        cluster_role("admin", [], aggregate_from="admin", labels={}),
        cluster_role("edit", [], aggregate_from="edit", labels={AGGREGATE_LABEL + "admin": "true"}),
        cluster_role("view", [], aggregate_from="view", labels={AGGREGATE_LABEL + "edit": "true"}),
        cluster_role(
            "system:aggregate-to-admin", ADMIN, labels={AGGREGATE_LABEL + "admin": "true"}
        ),
        cluster_role("system:aggregate-to-edit", EDIT, labels={AGGREGATE_LABEL + "edit": "true"}),
        cluster_role("system:aggregate-to-view", VIEW, labels={AGGREGATE_LABEL + "view": "true"}),
        cluster_role("system:kube-scheduler", SCHEDULER),
        cluster_role("system:kube-controller-manager", CONTROLLER_MANAGER),
        cluster_role("system:node-proxier", NODE_PROXIER),
        cluster_role("system:skiff:dns", DNS),
        cluster_role("system:node", NODE),
        cluster_role("system:kubelet-api-admin", KUBELET_API_ADMIN),
        cluster_role("system:skiff:local-path-provisioner", LOCAL_PATH_PROVISIONER),
        # skiff's own: every loop writes its reconcile trace and reads the loop
        # control, both ConfigMaps in kube-system (docs/architecture.md).
        cluster_role(
            "system:skiff:loops",
            [rule(["get", "list", "watch", "create", "update", "patch"], [""], ["configmaps"])],
        ),
        # what a bootstrap token may do: ask for a node certificate (kubeadm's binding below)
        cluster_role(
            "system:node-bootstrapper",
            [
                rule(
                    ["create", "get", "list", "watch"],
                    ["certificates.k8s.io"],
                    ["certificatesigningrequests"],
                )
            ],
        ),
    ]
    by_name = {r["metadata"]["name"]: r for r in roles}
    for name in ("view", "edit", "admin"):  # inner first: edit collects view, admin edit
        by_name[name]["rules"] = aggregated_rules(by_name[name], roles)
    return roles


def cluster_role_bindings() -> list[dict[str, Any]]:
    return [
        binding("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
        binding("system:discovery", "system:discovery", [("Group", "system:authenticated")]),
        binding("system:basic-user", "system:basic-user", [("Group", "system:authenticated")]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            [("Group", "system:authenticated"), ("Group", "system:unauthenticated")],
        ),
        binding("system:monitoring", "system:monitoring", [("Group", "system:monitoring")]),
        binding(
            "system:kube-scheduler", "system:kube-scheduler", [("User", "system:kube-scheduler")]
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            [("User", "system:kube-controller-manager")],
        ),
        binding("system:node-proxier", "system:node-proxier", [("User", "system:kube-proxy")]),
        binding("system:skiff:dns", "system:skiff:dns", [("User", "system:skiff:dns")]),
        binding(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            [("Group", "system:bootstrappers")],
        ),
        binding("system:node", "system:node", []),
        binding(
            "system:skiff:local-path-provisioner",
            "system:skiff:local-path-provisioner",
            [("Group", "system:nodes")],
        ),
        binding(
            "system:skiff:loops",
            "system:skiff:loops",
            [
                ("User", "system:kube-scheduler"),
                ("User", "system:kube-controller-manager"),
                ("User", "system:kube-proxy"),
            ],
        ),
        binding(
            "system:kube-apiserver-kubelet-client",
            "system:kubelet-api-admin",
            [("User", KUBELET_API_CLIENT)],
        ),
    ]
