"""CertificateSigningRequests (certificates.k8s.io/v1): asked for, approved, signed.

As in Kubernetes:

- on create the apiserver records who asked (`spec.username`, `groups`,
  `uid`): a requester cannot claim to be someone else;
- `PUT .../certificatesigningrequests/<name>/approval` (`kubectl certificate
  approve|deny`) changes only the Approved/Denied conditions, and needs the
  `approve` verb on `signers` named by the CSR's signerName
  (`certificates.k8s.io`), besides update on the subresource;
- an approved request is signed with the cluster CA by its signer:
  `kubernetes.io/kube-apiserver-client-kubelet` (subject `CN=system:node:<name>,
  O=system:nodes` only, usages digital signature [+ key encipherment] + client
  auth: a kubelet's client certificate) and `kubernetes.io/kube-apiserver-client`
  (any client certificate except one claiming `system:masters`). A request
  its signer will not sign gets a `Failed` condition saying why.

Kubernetes signs in the controller-manager (csrsigning); skiff's CA key lives
with the apiserver, so the apiserver signs as the approval is written.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from api.resources import ResourceInfo

from .. import errors
from ..certs import KeyPair
from ..registry import WriteOptions
from .attributes import Attributes
from .authorizer import CURRENT, RequestContext

KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
CLIENT = "kubernetes.io/kube-apiserver-client"
SIGNERS = (KUBELET_CLIENT, CLIENT)
MIN_SECONDS = 600
DEFAULT_SECONDS = 365 * 24 * 3600


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_request(spec: dict[str, Any]) -> x509.CertificateSigningRequest:
    try:
        pem = base64.b64decode(str(spec.get("request") or ""), validate=True)
        return x509.load_pem_x509_csr(pem)
    except (ValueError, TypeError) as e:
        raise errors.ApiError(
            422,
            "Invalid",
            'CertificateSigningRequest.certificates.k8s.io "" is invalid: spec.request: '
            f"Invalid value: []byte{{...}}: {e}",
        ) from e


def refusal(signer: str, csr: x509.CertificateSigningRequest, usages: list[str]) -> str:
    """Why the signer will not sign this request ("" when it will) — pure."""
    cn = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = sorted(
        str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    if "client auth" not in usages:
        return "usages must include client auth"
    bad = set(usages) - {"digital signature", "key encipherment", "client auth"}
    if bad:
        return f"usage {sorted(bad)[0]!r} is not allowed for this signer"
    if signer == KUBELET_CLIENT:
        if orgs != ["system:nodes"]:
            return "subject organization is not system:nodes"
        if len(cn) != 1 or not cn[0].startswith("system:node:") or cn[0] == "system:node:":
            return 'subject common name does not begin with "system:node:"'
    if "system:masters" in orgs:
        return "system:masters certificates are only issued with the cluster admin kubeconfig"
    return ""


def sign(ca: KeyPair, csr: x509.CertificateSigningRequest, seconds: int) -> bytes:
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(seconds=seconds))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def conditions_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


def has(obj: dict[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status", "True") == "True" for c in conditions_of(obj)
    )


class CSRRegistry:
    """The registry for CertificateSigningRequests: requester, approval, signing."""

    def __init__(self, registry: Any, ca: KeyPair) -> None:
        self.registry = registry
        self.ca = ca

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)

    async def create(
        self, info: ResourceInfo, namespace: str, obj: dict[str, Any], opts: WriteOptions
    ) -> dict:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise errors.invalid(info.kind, info.group, "", [])
        parse_request(spec)
        signer = spec.get("signerName")
        if signer and "/" not in str(signer):
            raise _invalid(
                f'spec.signerName: Invalid value: "{signer}": must be a fully qualified '
                "domain and path of the form 'example.com/signer-name'"
            )
        seconds = spec.get("expirationSeconds")
        if seconds is not None and (not isinstance(seconds, int) or seconds < MIN_SECONDS):
            raise _invalid(
                f"spec.expirationSeconds: Invalid value: {seconds}: may not specify a "
                "duration less than 600 seconds (10 minutes)"
            )
        ctx = CURRENT.get()
        if ctx is not None:  # who asked, as authenticated — never what the body claims
            spec["username"] = ctx.user.name
            spec["groups"] = list(ctx.user.groups)
            if ctx.user.uid:
                spec["uid"] = ctx.user.uid
            else:
                spec.pop("uid", None)
        spec.setdefault("usages", ["digital signature", "key encipherment", "client auth"])
        obj.pop("status", None)
        return await self.registry.create(info, namespace, obj, opts)

    async def update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        compute: Callable[[dict[str, Any]], dict[str, Any]],
        opts: WriteOptions,
        **kw: Any,
    ) -> dict:
        if kw.get("subresource") != "approval":
            return await self.registry.update(info, namespace, name, compute, opts, **kw)
        ctx = CURRENT.get()

        def approve(current: dict[str, Any]) -> dict[str, Any]:
            desired = compute(current)
            signer = str((current.get("spec") or {}).get("signerName") or "")
            if ctx is not None:
                _check_approver(ctx, signer, name)
            wanted = [c for c in conditions_of(desired) if c.get("type") in ("Approved", "Denied")]
            if any(c.get("type") == "Approved" for c in wanted) and any(
                c.get("type") == "Denied" for c in wanted
            ):
                raise _invalid(
                    'status.conditions: Invalid value: "Approved": Approved and Denied '
                    "conditions are mutually exclusive",
                    name,
                )
            for c in wanted:
                c.setdefault("status", "True")
                c.setdefault("lastUpdateTime", _now())
                c.setdefault("lastTransitionTime", c["lastUpdateTime"])
            kept = [
                c for c in conditions_of(current) if c.get("type") not in ("Approved", "Denied")
            ]
            status = dict(current.get("status") or {})
            status["conditions"] = kept + wanted
            return {**current, "status": status}

        updated = await self.registry.update(
            info, namespace, name, approve, opts, subresource="status"
        )
        if has(updated, "Approved") and not (updated.get("status") or {}).get("certificate"):
            updated = await self._sign(info, name, updated, opts)
        return dict(updated)

    async def _sign(
        self, info: ResourceInfo, name: str, csr_obj: dict[str, Any], opts: WriteOptions
    ) -> dict:
        spec = csr_obj.get("spec") or {}
        signer = str(spec.get("signerName") or "")
        if signer not in SIGNERS:
            return csr_obj  # another signer's: left for it
        request = parse_request(spec)
        why = refusal(signer, request, list(spec.get("usages") or []))
        seconds = int(spec.get("expirationSeconds") or DEFAULT_SECONDS)

        def issue(current: dict[str, Any]) -> dict[str, Any]:
            status = dict(current.get("status") or {})
            if why:
                status["conditions"] = [
                    *conditions_of(current),
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "SignerValidationFailure",
                        "message": why,
                        "lastUpdateTime": _now(),
                        "lastTransitionTime": _now(),
                    },
                ]
            else:
                pem = sign(self.ca, request, min(seconds, DEFAULT_SECONDS))
                status["certificate"] = base64.b64encode(pem).decode()
            return {**current, "status": status}

        return dict(
            await self.registry.update(
                info,
                "",
                name,
                issue,
                WriteOptions(field_manager="kube-apiserver"),
                subresource="status",
            )
        )


def _invalid(why: str, name: str = "") -> errors.ApiError:
    return errors.ApiError(
        422, "Invalid", f'CertificateSigningRequest.certificates.k8s.io "{name}" is invalid: {why}'
    )


def _check_approver(ctx: RequestContext, signer: str, name: str) -> None:
    """`approve` on signers/<signerName> (or <domain>/*), as Kubernetes requires."""
    domain = signer.split("/", 1)[0] + "/*" if "/" in signer else signer
    for resource_name in (signer, domain):
        attrs = Attributes(
            "approve", api_group="certificates.k8s.io", resource="signers", name=resource_name
        )
        if ctx.authorizer.authorize(ctx.user, attrs)[0]:
            return
    raise errors.forbidden(
        "certificatesigningrequests",
        "certificates.k8s.io",
        name,
        f'user not permitted to approve requests with signerName "{signer}"',
    )
