"""The cluster's PKI: a CA, the apiserver's serving certificate, client certificates
and the admin kubeconfig — made once, on first start, under the state directory.

etcd has a CA of its own, laid out as kubeadm lays it out: `pki/etcd/ca`,
`pki/etcd/server` (etcd's client URL), `pki/etcd/peer` (its peer URL) and
`pki/apiserver-etcd-client` (the apiserver's client certificate for etcd). etcd
requires a certificate from that CA on both URLs, so a local user who can
reach the port but cannot read the keys gets nothing. Directories are 0700 and
private keys 0600; `secure_permissions` also tightens a state directory made by
an older skiff.

Kubernetes identifies a client certificate's user by its Common Name and its
groups by its Organization fields; skiff's admin certificate is therefore
CN=kubernetes-admin, O=system:masters, exactly what kubeadm writes.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

VALIDITY_CA = datetime.timedelta(days=3650)
VALIDITY_LEAF = datetime.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _write_private(path: Path, data: bytes) -> None:
    """Write a root-only file atomically: the admin kubeconfig is rewritten on
    every start, and a client reading it meanwhile must never see it empty."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load(pair: KeyPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def ensure_ca(directory: Path, common_name: str = "skiff-ca") -> KeyPair:
    pair = KeyPair(directory / "ca.crt", directory / "ca.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY_CA)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(pair.key, _key_pem(key))
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return pair


def issue(
    ca: KeyPair,
    out: KeyPair,
    *,
    common_name: str,
    organizations: Iterable[str] = (),
    server_names: Iterable[str] = (),
    client: bool = False,
    usages: list[ObjectIdentifier] | None = None,
) -> KeyPair:
    """Sign a leaf certificate: a serving one (with SANs), a client one (CN/O),
    or, with `usages`, both at once (etcd's server and peer certificates)."""
    ca_cert, ca_key = _load(ca)
    key = _new_key()
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY_LEAF)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                usages
                or (
                    [ExtendedKeyUsageOID.CLIENT_AUTH]
                    if client
                    else [ExtendedKeyUsageOID.SERVER_AUTH]
                )
            ),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = []
    for name in server_names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(out.key, _key_pem(key))
    out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out


def serving_names(advertise: Iterable[str]) -> list[str]:
    """The names kubectl may use to reach the apiserver, as kubeadm puts in its cert."""
    names = [
        "localhost",
        "127.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "10.96.0.1",
    ]
    for a in advertise:
        if a and a not in names and a != "0.0.0.0":
            names.append(a)
    return names


def ensure_serving_cert(directory: Path, ca: KeyPair, names: list[str]) -> KeyPair:
    """Reuse the serving cert while it covers every name; reissue when one is new."""
    pair = KeyPair(directory / "apiserver.crt", directory / "apiserver.key")
    if pair.cert.exists() and pair.key.exists():
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
            have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
        except x509.ExtensionNotFound:
            have = set()
        if set(names) <= have:
            return pair
    return issue(ca, pair, common_name="kube-apiserver", server_names=names)


def ensure_client_cert(
    directory: Path, ca: KeyPair, name: str, user: str, groups: Iterable[str]
) -> KeyPair:
    pair = KeyPair(directory / f"{name}.crt", directory / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    return issue(ca, pair, common_name=user, organizations=groups, client=True)


ETCD_NAMES = ["localhost", "127.0.0.1", "::1"]


@dataclass(frozen=True)
class EtcdPKI:
    """Everything the embedded etcd and its clients need, as kubeadm names it."""

    ca: KeyPair
    server: KeyPair
    peer: KeyPair
    apiserver_client: KeyPair


def _covers(pair: KeyPair, ca: KeyPair, names: Iterable[str]) -> bool:
    """The pair exists, was signed by this CA and names every host asked for."""
    if not (pair.cert.exists() and pair.key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    if cert.issuer != x509.load_pem_x509_certificate(ca.cert.read_bytes()).subject:
        return False
    wanted = set(names)
    if not wanted:
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return wanted <= have


def ensure_etcd_pki(pki_dir: Path, hosts: Iterable[str] = ()) -> EtcdPKI:
    """etcd's CA and certificates: made once, reissued only when a host is new."""
    etcd_dir = pki_dir / "etcd"
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    etcd_dir.mkdir(exist_ok=True, mode=0o700)
    ca = ensure_ca(etcd_dir, common_name="etcd-ca")
    names = list(dict.fromkeys([*ETCD_NAMES, *hosts]))
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    server = KeyPair(etcd_dir / "server.crt", etcd_dir / "server.key")
    if not _covers(server, ca, names):
        issue(ca, server, common_name="skiff-etcd", server_names=names, usages=both)
    peer = KeyPair(etcd_dir / "peer.crt", etcd_dir / "peer.key")
    if not _covers(peer, ca, names):
        issue(ca, peer, common_name="skiff-etcd", server_names=names, usages=both)
    client = KeyPair(pki_dir / "apiserver-etcd-client.crt", pki_dir / "apiserver-etcd-client.key")
    if not _covers(client, ca, ()):
        issue(ca, client, common_name="kube-apiserver-etcd-client", client=True)
    return EtcdPKI(ca, server, peer, client)


def secure_permissions(state_dir: Path) -> None:
    """Root-only state: what a new skiff makes, and what an older one is tightened to.

    Older skiffs left `pki/` at 0755 and etcd's log and port file at 0644.
    """
    for directory in (state_dir / "pki", state_dir / "pki" / "etcd", state_dir / "etcd"):
        if directory.is_dir():
            directory.chmod(0o700)
    private = [
        *(state_dir / "pki").rglob("*.key"),
        state_dir / "pki" / "tokens.csv",
        state_dir / "admin.kubeconfig",
        state_dir / "etcd.log",
        state_dir / "etcd-ports.json",
        state_dir / "etcd.pid",
    ]
    for path in private:
        if path.is_file():
            path.chmod(0o600)


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca: Path,
    user: str,
    token: str | None = None,
    client: KeyPair | None = None,
    cluster: str = "skiff",
) -> Path:
    """A kubeconfig with everything embedded, usable as is by kubectl anywhere."""
    user_entry: dict[str, str] = {}
    if token:
        user_entry["token"] = token
    if client:
        user_entry["client-certificate-data"] = base64.b64encode(client.cert.read_bytes()).decode()
        user_entry["client-key-data"] = base64.b64encode(client.key.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": user_entry}],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    }
    _write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path
