"""`skiff join --control-plane` against a real apiserver: discovery with the token
first, then a machine without the cluster's own CAs is refused before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from apiserver import certs, serviceaccounts
from tests.integration.cli.test_token import ROOT, skiff_token


def _join(words: list[str], state: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    server, token, pin = words[2], words[words.index("--token") + 1], words[-1]
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "join", server, "--token", token,
         "--discovery-token-ca-cert-hash", pin, "--state-dir", str(state),
         "--control-plane", *extra],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip


def test_control_plane_join_checks_the_copied_cas(apiserver: Any, tmp_path: Path) -> None:
    r = skiff_token(apiserver, "create", "--ttl", "1h", "--print-join-command")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    etcd = ["--etcd-servers", "https://127.0.0.1:1"]

    nothing = _join(words, tmp_path / "empty", *etcd)
    assert nothing.returncode == 1
    assert nothing.stderr.strip().startswith("skiff join: copy ca.crt, ca.key, sa.key")
    assert "apiserver-etcd-client.crt" in nothing.stderr

    own = tmp_path / "own" / "pki"
    certs.ensure_ca(own)
    certs.ensure_etcd_pki(own)
    serviceaccounts.ensure_signing_key(own)
    wrong = _join(words, tmp_path / "own", *etcd)
    assert wrong.returncode == 1
    assert "is not the CA of the cluster joined" in wrong.stderr

    no_etcd = _join(words, tmp_path / "own")
    assert no_etcd.returncode == 1 and "needs --etcd-initial-cluster" in no_etcd.stderr

    bad_token = _join(
        [*words[:3], "--token", "abcdef.0123456789abcdef", words[-1]], tmp_path, *etcd
    )
    assert bad_token.returncode == 1 and bad_token.stderr.startswith("skiff join: ")
