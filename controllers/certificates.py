"""CertificateSigningRequests: approve joining kubelets, sign approved client certificates.

Two of kube-controller-manager's loops in one controller:

- csrapproving: a CSR for `kubernetes.io/kube-apiserver-client-kubelet`
  whose subject is `system:node:<name>` in `system:nodes`, with client-auth
  usages, is approved when a bootstrap token (`system:bootstrappers`) or that
  very node (a renewal) asked for it. Anything else waits for a person
  (`kubectl certificate approve|deny`).
- csrsigning: an approved CSR for a client signer is signed with the cluster
  CA (`--cluster-signing-cert-file/--cluster-signing-key-file`), valid one
  year or `spec.expirationSeconds`, and the certificate put in its status.

The decisions are pure (`approval`, `issue`).
"""

from __future__ import annotations

import base64
import datetime
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client import errors
from client.controller import Context, Controller, Result

log = logging.getLogger("skiff.controllers.certificates")

KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
CLIENT_SIGNERS = (KUBELET_CLIENT, "kubernetes.io/kube-apiserver-client")
ALLOWED_USAGES = {"digital signature", "key encipherment", "client auth"}
ONE_YEAR = 365 * 24 * 3600
APPROVED_MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."


@dataclass(frozen=True)
class Signing:
    cert_file: Path | None = None
    key_file: Path | None = None


def condition(csr: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (csr.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status", "True") == "True":
            return c
    return None


def request_of(csr: dict[str, Any]) -> x509.CertificateSigningRequest | None:
    try:
        pem = base64.b64decode((csr.get("spec") or {}).get("request", ""))
        return x509.load_pem_x509_csr(pem)
    except ValueError:
        return None


def approval(csr: dict[str, Any]) -> tuple[bool, str]:
    """(auto-approve?, why not). Pure."""
    spec = csr.get("spec") or {}
    if condition(csr, "Approved") or condition(csr, "Denied"):
        return False, "already decided"
    if spec.get("signerName") != KUBELET_CLIENT:
        return False, "not a kubelet client certificate"
    req = request_of(csr)
    if req is None or not req.is_signature_valid:
        return False, "the request does not parse or its signature is wrong"
    cns = [str(a.value) for a in req.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [str(a.value) for a in req.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if len(cns) != 1 or not cns[0].startswith("system:node:") or orgs != ["system:nodes"]:
        return False, "the subject is not system:node:<name> in system:nodes"
    usages = set(spec.get("usages") or [])
    if "client auth" not in usages or not usages <= ALLOWED_USAGES:
        return False, f"usages {sorted(usages)} are not a kubelet client's"
    groups = spec.get("groups") or []
    if "system:bootstrappers" in groups or spec.get("username") == cns[0]:
        return True, ""
    return False, "asked by neither a bootstrap token nor the node itself"


def issue(
    csr: dict[str, Any], ca_cert: x509.Certificate, ca_key: Any, now: datetime.datetime
) -> bytes:
    """The signed client certificate, PEM. Pure but for the serial number's randomness."""
    req = request_of(csr)
    assert req is not None
    seconds = int((csr.get("spec") or {}).get("expirationSeconds") or ONE_YEAR)
    seconds = max(600, min(seconds, ONE_YEAR))
    not_after = min(now + datetime.timedelta(seconds=seconds), ca_cert.not_valid_after_utc)
    usages = set((csr.get("spec") or {}).get("usages") or [])
    cert = (
        x509.CertificateBuilder()
        .subject_name(req.subject)
        .issuer_name(ca_cert.subject)
        .public_key(req.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # small clock skew
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment="key encipherment" in usages,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class CertificateController(Controller):
    name = "csr-controller"
    workers = 1

    def __init__(self, ctx: Context, signing: Signing | None = None) -> None:
        super().__init__(ctx)
        self.csrs = ctx.informers.get("certificates.k8s.io/v1", "CertificateSigningRequest")
        self.csrs.add_handlers(
            on_add=lambda c: self.enqueue(c["metadata"]["name"]),
            on_update=lambda _o, c: self.enqueue(c["metadata"]["name"]),
        )
        self.ca: tuple[x509.Certificate, Any] | None = None
        if signing and signing.cert_file and signing.key_file:
            self.ca = (
                x509.load_pem_x509_certificate(signing.cert_file.read_bytes()),
                serialization.load_pem_private_key(signing.key_file.read_bytes(), None),
            )

    async def reconcile(self, key: str) -> Result:
        csr = self.csrs.store.get(key)
        if csr is None:
            return Result.done()
        api = self.ctx.client
        try:
            ok, _why = approval(csr)
            if ok:
                now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                conditions = [
                    *((csr.get("status") or {}).get("conditions") or []),
                    {
                        "type": "Approved",
                        "status": "True",
                        "reason": "AutoApproved",
                        "message": APPROVED_MESSAGE,
                        "lastUpdateTime": now,
                        "lastTransitionTime": now,
                    },
                ]
                await api.update(
                    {**csr, "status": {**(csr.get("status") or {}), "conditions": conditions}},
                    sub="approval",
                )
                return Result.done()
            spec, status = csr.get("spec") or {}, csr.get("status") or {}
            if (
                self.ca is not None
                and condition(csr, "Approved")
                and not condition(csr, "Denied")
                and not condition(csr, "Failed")
                and not status.get("certificate")
                and spec.get("signerName") in CLIENT_SIGNERS
                and request_of(csr) is not None
            ):
                pem = issue(csr, *self.ca, datetime.datetime.now(datetime.UTC))
                signed = {**status, "certificate": base64.b64encode(pem).decode()}
                await api.update({**csr, "status": signed}, sub="status")
                log.info("signed %s for %s", key, spec.get("username"))
        except errors.Conflict:
            return Result(requeue_after=0.5)
        except errors.NotFound:
            pass
        return Result.done()
