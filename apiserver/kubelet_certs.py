"""Certificates between the apiserver and the kubelets, signed by the cluster CA.

- The apiserver's client certificate for kubelets
  (`pki/apiserver-kubelet-client.crt/.key`, CN `kube-apiserver-kubelet-client`):
  the kubelet refuses callers without a certificate from the cluster CA, and
  asks the apiserver whether they may use its API; this user is bound to
  `system:kubelet-api-admin` (authz/bootstrap.py), so logs, exec, attach,
  port-forward and stats work. It is not `system:masters`: only the admin is.
- A kubelet's serving certificate for its node name and addresses, for
  `skiff up`/`join` and tests, which run this module rather than import it:

      python -m apiserver.kubelet_certs serving --state-dir S --node N --ip IP --out DIR

  writes DIR/kubelet.crt and DIR/kubelet.key and prints the three paths the
  kubelet's flags take (`--tls-cert-file`, `--tls-private-key-file`,
  `--client-ca-file`, the last being S/pki/ca.crt).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from . import certs

KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
KUBELET_CLIENT_GROUPS: tuple[str, ...] = ()


def _organizations(path: Path) -> bytes:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return b",".join(str(o.value).encode() for o in orgs)


def ensure_kubelet_client(pki_dir: Path, ca: certs.KeyPair) -> certs.KeyPair:
    """The apiserver's client certificate for kubelets: made once, reused after
    (and made again if an older skiff issued it in system:masters)."""
    pair = certs.KeyPair(
        pki_dir / "apiserver-kubelet-client.crt", pki_dir / "apiserver-kubelet-client.key"
    )
    if pair.cert.exists() and b"system:masters" in _organizations(pair.cert):
        pair.cert.unlink()
    return certs.ensure_client_cert(
        pki_dir, ca, "apiserver-kubelet-client", KUBELET_CLIENT_USER, KUBELET_CLIENT_GROUPS
    )


def issue_kubelet_serving(
    pki_dir: Path, node: str, addresses: list[str], out_dir: Path
) -> certs.KeyPair:
    """A serving certificate for `node` (CN system:node:<node>, as the kubelet's own)."""
    ca = certs.KeyPair(pki_dir / "ca.crt", pki_dir / "ca.key")
    if not (ca.cert.exists() and ca.key.exists()):
        raise FileNotFoundError(
            f"no cluster CA at {ca.cert}; start the apiserver once first (it makes the CA)"
        )
    names = [node, *[a for a in addresses if a and a != node]]
    out_dir.mkdir(parents=True, exist_ok=True)
    pair = certs.KeyPair(out_dir / "kubelet.crt", out_dir / "kubelet.key")
    return certs.issue(
        ca,
        pair,
        common_name=f"system:node:{node}",
        organizations=("system:nodes",),
        server_names=names,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m apiserver.kubelet_certs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    serving = sub.add_parser("serving", help="issue a kubelet serving certificate")
    serving.add_argument(
        "--state-dir",
        type=Path,
        required=True,
        help="the apiserver's state directory (its pki/ holds the CA)",
    )
    serving.add_argument("--node", required=True, help="the node's name")
    serving.add_argument(
        "--ip", action="append", default=[], help="an address of the node (repeat for several)"
    )
    serving.add_argument("--out", type=Path, required=True, help="where to write the pair")
    a = p.parse_args(argv)
    try:
        pair = issue_kubelet_serving(a.state_dir / "pki", a.node, a.ip, a.out)
    except (OSError, ValueError) as e:
        print(f"kubelet_certs: {e}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "tls-cert-file": str(pair.cert),
                "tls-private-key-file": str(pair.key),
                "client-ca-file": str(a.state_dir / "pki" / "ca.crt"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
