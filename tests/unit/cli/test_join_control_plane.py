"""`skiff join --control-plane` refuses a machine without the cluster's own CAs."""

from __future__ import annotations

from pathlib import Path

from apiserver import certs, serviceaccounts
from cli.join import control_plane_refusal


def _pki(root: Path) -> Path:
    pki = root / "pki"
    certs.ensure_ca(pki)
    certs.ensure_etcd_pki(pki)
    serviceaccounts.ensure_signing_key(pki)
    return pki


def test_copied_cas_of_the_cluster_are_accepted(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    ca = (pki / "ca.crt").read_bytes()
    assert control_plane_refusal(pki, ca, "") is None
    assert control_plane_refusal(pki, ca, "https://10.0.0.1:2379") is None


def test_missing_files_are_named(tmp_path: Path) -> None:
    pki = _pki(tmp_path)
    ca = (pki / "ca.crt").read_bytes()
    (pki / "etcd" / "ca.key").unlink()
    (pki / "apiserver-etcd-client.key").unlink()
    assert control_plane_refusal(pki, ca, "") == (
        f"copy etcd/ca.key from the first machine's {pki} first (docs/multi-vm-lab.md, section 5)"
    )
    why = control_plane_refusal(pki, ca, "https://10.0.0.1:2379")
    assert why is not None and "etcd/ca.key, apiserver-etcd-client.key" in why


def test_a_ca_of_its_own_is_refused(tmp_path: Path) -> None:
    pki = _pki(tmp_path / "here")
    other = _pki(tmp_path / "cluster")
    why = control_plane_refusal(pki, (other / "ca.crt").read_bytes(), "")
    assert why is not None and "is not the CA of the cluster joined" in why
