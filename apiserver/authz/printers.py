"""`kubectl get` columns for the RBAC kinds and CertificateSigningRequests, as
Kubernetes prints them (registered into tables.PRINTERS)."""

from __future__ import annotations

import datetime
from typing import Any

from .. import tables
from ..tables import AGE, NAME, Row, age, human_duration

NONE = "<none>"


def _created(obj: dict[str, Any], now: datetime.datetime) -> Row:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), meta.get("creationTimestamp") or ""]


def _binding(obj: dict[str, Any], now: datetime.datetime) -> Row:
    meta = obj.get("metadata") or {}
    ref = obj.get("roleRef") or {}
    subjects = obj.get("subjects") or []

    def names(kind: str) -> str:
        found = [
            (
                f"{s.get('namespace', meta.get('namespace', ''))}/{s['name']}"
                if kind == "ServiceAccount"
                else s.get("name", "")
            )
            for s in subjects
            if s.get("kind") == kind
        ]
        return ", ".join(found)

    return [
        meta.get("name", ""),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        age(meta.get("creationTimestamp"), now),
        names("User"),
        names("Group"),
        names("ServiceAccount"),
    ]


def _csr(obj: dict[str, Any], now: datetime.datetime) -> Row:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    conditions = [c.get("type", "") for c in status.get("conditions") or []]
    if status.get("certificate"):
        conditions.append("Issued")
    seconds = spec.get("expirationSeconds")
    return [
        meta.get("name", ""),
        age(meta.get("creationTimestamp"), now),
        spec.get("signerName", ""),
        spec.get("username", ""),
        human_duration(datetime.timedelta(seconds=seconds)) if seconds else NONE,
        ",".join(conditions) or "Pending",
    ]


CREATED = [NAME, ("Created At", "date", 0, "When the role was created.")]
BINDING = [
    NAME,
    ("Role", "string", 0, "The role granted."),
    AGE,
    ("Users", "string", 1, "Users granted the role."),
    ("Groups", "string", 1, "Groups granted the role."),
    ("ServiceAccounts", "string", 1, "Service accounts granted the role."),
]
CSR = [
    NAME,
    AGE,
    ("SignerName", "string", 0, "Who signs."),
    ("Requestor", "string", 0, "Who asked."),
    ("RequestedDuration", "string", 0, "Requested validity."),
    ("Condition", "string", 0, "Approved, Denied, Issued or Pending."),
]


def register() -> None:
    group = "rbac.authorization.k8s.io"
    tables.PRINTERS[(group, "Role")] = (CREATED, _created)
    tables.PRINTERS[(group, "ClusterRole")] = (CREATED, _created)
    tables.PRINTERS[(group, "RoleBinding")] = (BINDING, _binding)
    tables.PRINTERS[(group, "ClusterRoleBinding")] = (BINDING, _binding)
    tables.PRINTERS[("certificates.k8s.io", "CertificateSigningRequest")] = (CSR, _csr)


register()
