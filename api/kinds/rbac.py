"""rbac.authorization.k8s.io/v1 (Role, ClusterRole and their bindings),
authorization.k8s.io/v1 access reviews, authentication.k8s.io/v1 TokenReview
and SelfSubjectReview."""

from __future__ import annotations

from api.schema import any_value, arr, boolean, integer, map_of, obj, string, strings, time

from .meta import LabelSelector, top_level

RBAC = "io.k8s.api.rbac.v1."
AUTHZ = "io.k8s.api.authorization.v1."
AUTHN = "io.k8s.api.authentication.v1."

PolicyRule = obj(
    RBAC + "PolicyRule",
    "What a role allows: verbs on resources (or on non-resource URLs).",
    required=("verbs",),
    verbs=strings("get, list, watch, create, update, patch, delete, deletecollection, or *."),
    apiGroups=strings('API groups of the resources; "" is the core group, * any.'),
    resources=strings("Resources, pods/log for a subresource, * for all."),
    resourceNames=strings("When set, only these object names."),
    nonResourceURLs=strings("Paths such as /healthz or /logs/*; only in ClusterRoles."),
)

AggregationRule = obj(
    RBAC + "AggregationRule",
    "Labels of ClusterRoles whose rules this ClusterRole collects.",
    clusterRoleSelectors=arr(LabelSelector, "Selectors of the roles to aggregate."),
)

Subject = obj(
    RBAC + "Subject",
    "Who a binding grants its role to.",
    required=("kind", "name"),
    kind=string("User, Group or ServiceAccount.", enum=("User", "Group", "ServiceAccount")),
    apiGroup=string("rbac.authorization.k8s.io for User and Group; empty for ServiceAccount."),
    name=string("Name of the subject."),
    namespace=string("Namespace of a ServiceAccount."),
)

RoleRef = obj(
    RBAC + "RoleRef",
    "The role a binding grants; it cannot be changed once set.",
    required=("apiGroup", "kind", "name"),
    apiGroup=string("rbac.authorization.k8s.io."),
    kind=string("Role or ClusterRole.", enum=("Role", "ClusterRole")),
    name=string("Name of the role."),
)

Role = top_level(
    RBAC + "Role",
    "Rules that apply within one namespace.",
    rules=arr(PolicyRule, "The rules."),
)
ClusterRole = top_level(
    RBAC + "ClusterRole",
    "Rules that apply cluster-wide, or in a namespace through a RoleBinding.",
    rules=arr(PolicyRule, "The rules."),
    aggregationRule=AggregationRule,
)
RoleBinding = top_level(
    RBAC + "RoleBinding",
    "Grants a Role or ClusterRole to subjects within one namespace.",
    subjects=arr(Subject, "Who gets the role."),
    roleRef=RoleRef,
)
ClusterRoleBinding = top_level(
    RBAC + "ClusterRoleBinding",
    "Grants a ClusterRole to subjects in every namespace.",
    subjects=arr(Subject, "Who gets the role."),
    roleRef=RoleRef,
)

ResourceAttributes = obj(
    AUTHZ + "ResourceAttributes",
    "A resource request to check.",
    namespace=string("Namespace."),
    verb=string("Verb."),
    group=string("API group."),
    version=string("API version."),
    resource=string("Resource."),
    subresource=string("Subresource."),
    name=string("Object name."),
    fieldSelector=any_value("Field selector."),
    labelSelector=any_value("Label selector."),
)
NonResourceAttributes = obj(
    AUTHZ + "NonResourceAttributes",
    "A non-resource request to check.",
    path=string("URL path."),
    verb=string("Verb."),
)
SubjectAccessReviewStatus = obj(
    AUTHZ + "SubjectAccessReviewStatus",
    "The answer.",
    allowed=boolean("Whether the request is allowed."),
    denied=boolean("Whether it is explicitly denied."),
    reason=string("Why."),
    evaluationError=string("What went wrong while deciding."),
)
SubjectAccessReview = top_level(
    AUTHZ + "SubjectAccessReview",
    "May this user do this? (asked for anyone; needs create on subjectaccessreviews)",
    spec=obj(
        AUTHZ + "SubjectAccessReviewSpec",
        "The question.",
        resourceAttributes=ResourceAttributes,
        nonResourceAttributes=NonResourceAttributes,
        user=string("User."),
        groups=strings("Groups."),
        uid=string("UID."),
        extra=map_of(strings(), "Extra."),
    ),
    status=SubjectAccessReviewStatus,
)
LocalSubjectAccessReview = top_level(
    AUTHZ + "LocalSubjectAccessReview",
    "A SubjectAccessReview within one namespace.",
    spec=SubjectAccessReview.fields["spec"],
    status=SubjectAccessReviewStatus,
)
SelfSubjectAccessReview = top_level(
    AUTHZ + "SelfSubjectAccessReview",
    "May I do this? (kubectl auth can-i)",
    spec=obj(
        AUTHZ + "SelfSubjectAccessReviewSpec",
        "The question.",
        resourceAttributes=ResourceAttributes,
        nonResourceAttributes=NonResourceAttributes,
    ),
    status=SubjectAccessReviewStatus,
)
SelfSubjectRulesReview = top_level(
    AUTHZ + "SelfSubjectRulesReview",
    "What may I do in this namespace? (kubectl auth can-i --list)",
    spec=obj(AUTHZ + "SelfSubjectRulesReviewSpec", "The namespace.", namespace=string("Ns.")),
    status=obj(
        AUTHZ + "SubjectRulesReviewStatus",
        "The rules.",
        resourceRules=arr(any_value("A resource rule."), "Resource rules."),
        nonResourceRules=arr(any_value("A non-resource rule."), "Non-resource rules."),
        incomplete=boolean("Whether the list may be missing rules."),
        evaluationError=string("What went wrong."),
    ),
)
UserInfoSchema = obj(
    AUTHN + "UserInfo",
    "A user as the apiserver authenticated it.",
    username=string("Name."),
    uid=string("UID."),
    groups=strings("Groups."),
    extra=map_of(strings(), "Extra."),
)
SelfSubjectReview = top_level(
    AUTHN + "SelfSubjectReview",
    "Who am I? (kubectl auth whoami)",
    status=obj(AUTHN + "SelfSubjectReviewStatus", "The answer.", userInfo=UserInfoSchema),
)
TokenReview = top_level(
    AUTHN + "TokenReview",
    "Is this token valid, and whose is it?",
    spec=obj(
        AUTHN + "TokenReviewSpec",
        "The token.",
        token=string("The bearer token."),
        audiences=strings("Audiences the token must be for."),
    ),
    status=obj(
        AUTHN + "TokenReviewStatus",
        "The answer.",
        authenticated=boolean("Whether the token is valid."),
        user=UserInfoSchema,
        audiences=strings("Audiences it is valid for."),
        error=string("Why not."),
    ),
)
TokenRequest = top_level(
    AUTHN + "TokenRequest",
    "A token for a ServiceAccount (kubectl create token).",
    spec=obj(
        AUTHN + "TokenRequestSpec",
        "The request.",
        audiences=strings("Audiences."),
        expirationSeconds=integer("Requested lifetime.", format="int64"),
        boundObjectRef=any_value("Object the token is bound to."),
    ),
    status=obj(
        AUTHN + "TokenRequestStatus",
        "The token.",
        token=string("The token."),
        expirationTimestamp=time("When it expires."),
    ),
)

CERTS = "io.k8s.api.certificates.v1."
CertificateSigningRequest = top_level(
    CERTS + "CertificateSigningRequest",
    "A request for a certificate from a signer (kubelets use it to get their client certs).",
    spec=obj(
        CERTS + "CertificateSigningRequestSpec",
        "What is asked for.",
        required=("request", "signerName"),
        request=string("The PEM-encoded PKCS#10 request, base64 in JSON.", format="byte"),
        signerName=string("Who should sign: kubernetes.io/kube-apiserver-client-kubelet, ..."),
        expirationSeconds=integer("Requested validity."),
        usages=strings("digital signature, key encipherment, client auth, ..."),
        username=string("The requester (set by the apiserver)."),
        uid=string("The requester's uid (set by the apiserver)."),
        groups=strings("The requester's groups (set by the apiserver)."),
        extra=map_of(strings(), "The requester's extra attributes."),
    ),
    status=obj(
        CERTS + "CertificateSigningRequestStatus",
        "Approval and the issued certificate.",
        conditions=arr(
            obj(
                CERTS + "CertificateSigningRequestCondition",
                "Approved, Denied or Failed.",
                type=string("Approved, Denied or Failed."),
                status=string("True or False."),
                reason=string("Why, one word."),
                message=string("Why, in words."),
                lastUpdateTime=time("Last update."),
                lastTransitionTime=time("Last change."),
            ),
            "Conditions.",
        ),
        certificate=string("The issued certificate, PEM, base64 in JSON.", format="byte"),
    ),
)
