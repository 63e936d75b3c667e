"""`skiff token` against a real apiserver: what it stores and what a joining node reads."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cli import bootstrap

ROOT = Path(__file__).resolve().parents[3]


def skiff_token(apiserver: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "token",
            "--kubeconfig",
            str(apiserver.kubeconfig),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_token_create_stores_secret_and_signs_cluster_info(apiserver: Any) -> None:
    r = skiff_token(apiserver, "create", "--ttl", "1h", "--print-join-command")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    assert words[:2] == ["skiff", "join"] and words[2].startswith("https://")
    token, pin = words[words.index("--token") + 1], words[-1]
    token_id = token.split(".")[0]

    secret = json.loads(
        apiserver.kubectl(
            "get", "secret", "-n", "kube-system", f"bootstrap-token-{token_id}", "-o", "json"
        )
    )
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    fields = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert f"{fields['token-id']}.{fields['token-secret']}" == token
    assert fields["usage-bootstrap-authentication"] == "true"

    # what `skiff join` checks: the signature with the token, the CA with the pin
    info = json.loads(
        apiserver.kubectl("get", "cm", "-n", "kube-public", "cluster-info", "-o", "json")
    )
    server, ca = bootstrap.verify_cluster_info(info, token, pin)
    assert server == words[2]
    assert ca == (apiserver.state_dir / "pki" / "ca.crt").read_bytes()

    listed = skiff_token(apiserver, "list").stdout
    assert token in listed and "authentication,signing" in listed

    assert skiff_token(apiserver, "delete", token_id).returncode == 0
    info = json.loads(
        apiserver.kubectl("get", "cm", "-n", "kube-public", "cluster-info", "-o", "json")
    )
    assert f"jws-kubeconfig-{token_id}" not in info["data"]  # a deleted token signs nothing
    assert token not in skiff_token(apiserver, "list").stdout


def test_bad_ttl_is_one_line(apiserver: Any) -> None:
    r = skiff_token(apiserver, "create", "--ttl", "1d")
    assert r.returncode == 1
    assert r.stderr.strip().startswith("skiff token: --ttl '1d'")
    assert len(r.stderr.strip().splitlines()) == 1
