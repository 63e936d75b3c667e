"""certificates.k8s.io/v1 CertificateSigningRequest: how a node asks for its client certificate."""

from __future__ import annotations

from api.schema import any_value, arr, integer, obj, string, strings, time

from .meta import top_level

CERTS = "io.k8s.api.certificates.v1."
CertificateSigningRequest = top_level(
    CERTS + "CertificateSigningRequest",
    "A request for a certificate signed by a named signer; approved, then signed.",
    spec=obj(
        CERTS + "CertificateSigningRequestSpec",
        "The request.",
        required=("request", "signerName"),
        request=string("A PEM PKCS#10 certificate request (base64 in JSON).", format="byte"),
        signerName=string("Who signs it, e.g. kubernetes.io/kube-apiserver-client-kubelet."),
        expirationSeconds=integer("The validity asked for."),
        usages=strings("Key usages, e.g. digital signature, client auth."),
        username=string("Who created the request (set by the apiserver)."),
        uid=string("Their uid (set by the apiserver)."),
        groups=strings("Their groups (set by the apiserver)."),
        extra=any_value("Their extra attributes (set by the apiserver)."),
    ),
    status=obj(
        CERTS + "CertificateSigningRequestStatus",
        "Approval and the issued certificate.",
        conditions=arr(
            obj(
                CERTS + "CertificateSigningRequestCondition",
                "Approved, Denied or Failed.",
                required=("type", "status"),
                type=string("Approved, Denied or Failed."),
                status=string("True, False or Unknown."),
                reason=string("Why, in one word."),
                message=string("Why, for people."),
                lastUpdateTime=time("When last updated."),
                lastTransitionTime=time("When it last changed."),
            ),
            "The conditions.",
            merge_key="type",
        ),
        certificate=string("The issued certificate, PEM (base64 in JSON).", format="byte"),
    ),
)
