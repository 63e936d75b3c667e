"""`skiff join https://ADDR:6443 --token T --discovery-token-ca-cert-hash sha256:H`.

What kubeadm's join does for a worker, in order:

1. Discovery: read the public ConfigMap `cluster-info` (kube-public) without
   trusting the server yet, check its JWS against the token (the server knows
   the token) and the CA against the pinned hash (it is the right cluster).
   From here on every request verifies the server with that CA.
2. TLS bootstrap: with the token as bearer credential, create a
   CertificateSigningRequest for `system:node:<name>` (group `system:nodes`,
   signer `kubernetes.io/kube-apiserver-client-kubelet`) and wait until the
   cluster approves and signs it.
3. Write the node's kubeconfig (`<state-dir>/kubelet.kubeconfig`, its own key,
   never sent anywhere) and the CA (`<state-dir>/pki/ca.crt`).

The node's agents (runtime, kubelet, proxy) then run with that kubeconfig;
`skiff lab join` does all of it for a new lab node.

With `--control-plane` the machine serves the control plane too: after
discovery, the CAs copied from the first machine (kubeadm copies the same
files with `--upload-certs`) are checked to be the cluster's, then `skiff up`
starts apiserver, controller-manager and scheduler with the etcd flags given.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import bootstrap

SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"


class JoinError(Exception):
    """Why the join stopped, in one line."""


def discover(server: str, token: str, ca_hash: str) -> tuple[str, bytes]:
    url = f"{server.rstrip('/')}/api/v1/namespaces/kube-public/configmaps/cluster-info"
    try:
        # Not verified yet on purpose: what comes back is checked by signature and CA pin.
        r = httpx.get(url, verify=False, timeout=10)
    except httpx.HTTPError as e:
        raise JoinError(f"cannot reach {server}: {e}") from e
    if r.status_code in (401, 403):
        raise JoinError(
            f"{server} does not let anyone read kube-public/cluster-info "
            f"({r.status_code}); is the token made with `skiff token create`?"
        )
    if r.status_code == 404:
        raise JoinError(
            f"{server} has no kube-public/cluster-info: make a token first "
            "(`skiff token create` on the first machine)"
        )
    if r.status_code != 200:
        raise JoinError(f"reading cluster-info from {server}: HTTP {r.status_code}")
    try:
        found, ca = bootstrap.verify_cluster_info(r.json(), token, ca_hash)
    except bootstrap.TokenError as e:
        raise JoinError(str(e)) from e
    return found, ca


def csr_object(node: str) -> tuple[dict[str, Any], bytes]:
    """(the CertificateSigningRequest, the private key PEM that stays here)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    obj = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": f"node-csr-{uuid.uuid4().hex[:12]}"},
        "spec": {
            "request": base64.b64encode(pem).decode(),
            "signerName": SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    }
    return obj, key_pem


def tls_bootstrap(
    server: str, ca: bytes, token: str, node: str, timeout: float
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for system:node:<node>, through a CSR the cluster approves."""
    ca_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"skiff-join-ca-{uuid.uuid4().hex}.crt"
    ca_file.write_bytes(ca)
    try:
        http = httpx.Client(
            base_url=server,
            verify=str(ca_file),
            timeout=10,
            headers={"Authorization": f"Bearer {token}"},
        )
        with http:
            obj, key = csr_object(node)
            r = http.post(CSR_PATH, json=obj)
            if r.status_code == 401:
                raise JoinError(
                    "the apiserver refused the token: unknown or expired "
                    "(`skiff token create` makes a new one)"
                )
            if r.status_code == 404:
                raise JoinError(
                    "this apiserver does not serve certificates.k8s.io/v1 "
                    "CertificateSigningRequests, which join needs"
                )
            if r.status_code == 403:
                raise JoinError(
                    f"the token may not request a node certificate: {r.json().get('message')}"
                )
            if r.status_code >= 400:
                raise JoinError(
                    f"creating the CertificateSigningRequest: HTTP {r.status_code} {r.text[:200]}"
                )
            name = obj["metadata"]["name"]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                got = http.get(f"{CSR_PATH}/{name}").json()
                status = got.get("status") or {}
                for c in status.get("conditions") or []:
                    if c.get("type") in ("Denied", "Failed") and c.get("status", "True") == "True":
                        raise JoinError(
                            f"CertificateSigningRequest {name} {c['type'].lower()}: "
                            f"{c.get('message') or c.get('reason')}"
                        )
                if status.get("certificate"):
                    return base64.b64decode(status["certificate"]), key
                time.sleep(0.5)
            raise JoinError(
                f"CertificateSigningRequest {name} was not signed within "
                f"{timeout:.0f} s (kubectl get csr shows it)"
            )
    finally:
        ca_file.unlink(missing_ok=True)


def write_kubeconfig(
    state_dir: Path, server: str, ca: bytes, node: str, cert: bytes, key: bytes
) -> Path:
    (state_dir / "pki").mkdir(parents=True, exist_ok=True)
    (state_dir / "pki" / "ca.crt").write_bytes(ca)
    user = f"system:node:{node}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "skiff",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": base64.b64encode(cert).decode(),
                    "client-key-data": base64.b64encode(key).decode(),
                },
            }
        ],
        "contexts": [{"name": f"{user}@skiff", "context": {"cluster": "skiff", "user": user}}],
        "current-context": f"{user}@skiff",
    }
    path = state_dir / "kubelet.kubeconfig"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f)
    return path


def join(
    server: str, token: str, ca_hash: str, node: str, state_dir: Path, timeout: float = 60
) -> Path:
    bootstrap.parse_token(token)
    _advertised, ca = discover(server, token, ca_hash)
    cert, key = tls_bootstrap(server, ca, token, node, timeout)
    issued = x509.load_pem_x509_certificate(cert)
    if issued.not_valid_after_utc <= datetime.datetime.now(datetime.UTC):
        raise JoinError("the signed certificate has already expired: check the clocks")
    return write_kubeconfig(state_dir, server, ca, node, cert, key)


# What a control-plane machine must share with the first one, copied by hand (kubeadm
# copies the same set with --upload-certs); docs/multi-vm-lab.md section 5.
SHARED_PKI = ("ca.crt", "ca.key", "sa.key", "sa.pub", "etcd/ca.crt", "etcd/ca.key")
ETCD_CLIENT = ("apiserver-etcd-client.crt", "apiserver-etcd-client.key")


def control_plane_refusal(pki: Path, cluster_ca: bytes, etcd_servers: str) -> str | None:
    """Why this machine cannot serve the cluster's control plane yet, or None.

    Its CAs must be the cluster's own (the copied ca.crt is the one discovery
    verified), or its apiserver would issue certificates no one else trusts."""
    missing = [n for n in SHARED_PKI if not (pki / n).exists()]
    if etcd_servers.startswith("https://"):
        missing += [n for n in ETCD_CLIENT if not (pki / n).exists()]
    if missing:
        return (
            f"copy {', '.join(missing)} from the first machine's {pki} first "
            "(docs/multi-vm-lab.md, section 5)"
        )
    theirs = x509.load_pem_x509_certificate(cluster_ca)
    ours = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    if ours.fingerprint(hashes.SHA256()) != theirs.fingerprint(hashes.SHA256()):
        return f"{pki / 'ca.crt'} is not the CA of the cluster joined; copy the first machine's"
    return None


def join_control_plane(a: argparse.Namespace) -> int:
    """Discovery as for a node, the shared CAs checked, then `skiff up` with the etcd
    flags: apiserver, controller-manager and scheduler (leader-elected) on this machine."""
    if not (a.etcd_servers or a.etcd_initial_cluster):
        print("skiff join: --control-plane needs --etcd-initial-cluster (a member of its own) "
              "or --etcd-servers (the cluster's etcd)", file=sys.stderr)  # fmt: skip
        return 1
    try:
        bootstrap.parse_token(a.token)
        _advertised, ca = discover(a.server, a.token, a.ca_hash)
    except (JoinError, bootstrap.TokenError) as e:
        print(f"skiff join: {e}", file=sys.stderr)
        return 1
    why = control_plane_refusal(a.state_dir / "pki", ca, a.etcd_servers or "")
    if why:
        print(f"skiff join: {why}", file=sys.stderr)
        return 1
    from . import up

    argv = ["--state-dir", str(a.state_dir), "--node-name", a.node_name]
    if a.node_ip:
        argv += ["--node-ip", a.node_ip]
    if a.etcd_servers:
        argv += ["--etcd-servers", a.etcd_servers]
    else:
        argv += ["--etcd-name", a.etcd_name or a.node_name,
                 "--etcd-initial-cluster", a.etcd_initial_cluster,
                 "--etcd-initial-cluster-state", a.etcd_initial_cluster_state]  # fmt: skip
    for flag in ("run_dir", "cgroup_root", "pod_log_dir"):  # several skiffs on one machine
        if getattr(a, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(a, flag))]
    print(f"skiff join: the CAs are the cluster's; starting the control plane: skiff up "
          f"{' '.join(argv)}")  # fmt: skip
    return up.main(argv)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="skiff join", description=__doc__.split("\n")[0])
    p.add_argument("server", help="https://ADDR:6443 of the first machine")
    p.add_argument("--token", required=True)
    p.add_argument("--discovery-token-ca-cert-hash", required=True, dest="ca_hash")
    p.add_argument("--node-name", default=socket.gethostname().lower())
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/skiff"))
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--control-plane", action="store_true",
                   help="run apiserver, controller-manager and scheduler here too (needs the "
                   "first machine's CAs copied; docs/multi-vm-lab.md section 5)")  # fmt: skip
    p.add_argument("--node-ip", default=None, help="with --control-plane: as for skiff up")
    p.add_argument("--etcd-servers", default=None, help="with --control-plane: the etcd URLs")
    p.add_argument("--etcd-name", default=None, help="with --control-plane: this etcd member")
    p.add_argument(
        "--etcd-initial-cluster",
        default=None,
        help="with --control-plane: every member, name=https://ip:2380,...",
    )
    p.add_argument("--etcd-initial-cluster-state", default="existing",
                   choices=["new", "existing"])  # fmt: skip
    # With --control-plane, passed on to `skiff up` (the lab runs one in a namespace).
    p.add_argument("--run-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--cgroup-root", default=None, help=argparse.SUPPRESS)
    p.add_argument("--pod-log-dir", type=Path, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.control_plane:
        return join_control_plane(a)
    try:
        path = join(a.server, a.token, a.ca_hash, a.node_name, a.state_dir, a.timeout)
    except (JoinError, bootstrap.TokenError) as e:
        print(f"skiff join: {e}", file=sys.stderr)
        return 1
    print(
        f"skiff join: {a.node_name} has its certificate (system:node:{a.node_name}); "
        f"kubeconfig {path}"
    )
    return 0
