"""`kubectl auth can-i` (also `--list`, `--as`, `--as-group`) and `kubectl auth whoami`,
with the real kubectl, as admin and as an ordinary user."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from .conftest import Users, bind, eventually, make_namespace


def run(kubectl: str, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_can_i_and_whoami(
    apiserver: Any, api: httpx.Client, users: Users, unique: str, kubectl_binary: str
) -> None:
    ns = make_namespace(api, f"canl-{unique}")
    dana = f"dana-{unique}"
    bind(api, ns, "edit", user=dana)
    mine = users.kubeconfig(dana, ("qa",))
    admin = apiserver.kubeconfig

    def can(kubeconfig: Path, *args: str) -> tuple[int, str]:
        done = run(kubectl_binary, kubeconfig, "auth", "can-i", *args)
        return done.returncode, done.stdout.strip()

    eventually(lambda: can(mine, "create", "deployments", "-n", ns) == (0, "yes"), what="edit")
    assert can(mine, "create", "deployments.apps", "-n", "default") == (1, "no")
    assert can(mine, "get", "secrets", "-n", ns) == (0, "yes")
    assert can(mine, "create", "rolebindings", "-n", ns) == (1, "no")
    assert can(mine, "list", "nodes") == (1, "no")
    assert can(mine, "get", "/healthz") == (0, "yes")
    assert can(admin, "delete", "nodes") == (0, "yes")
    assert can(admin, "*", "*") == (0, "yes")
    # --as: the admin asks on dana's behalf (admin may impersonate anyone).
    assert can(admin, "create", "pods", "-n", ns, "--as", dana) == (0, "yes")
    assert can(admin, "create", "pods", "-n", "default", "--as", dana) == (1, "no")
    # dana may not impersonate.
    done = run(kubectl_binary, mine, "auth", "can-i", "get", "pods", "--as", "someone")
    assert done.returncode != 0
    assert 'cannot impersonate resource "users"' in done.stderr

    listed = run(kubectl_binary, mine, "auth", "can-i", "--list", "-n", ns)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.split()}
    assert "deployments.apps" in rows and "create" in rows["deployments.apps"]
    assert "selfsubjectaccessreviews.authorization.k8s.io" in rows
    assert "rolebindings.rbac.authorization.k8s.io" not in rows
    other = run(kubectl_binary, mine, "auth", "can-i", "--list", "-n", "default")
    assert "deployments.apps" not in other.stdout
    admin_list = run(kubectl_binary, admin, "auth", "can-i", "--list")
    assert "*.*" in admin_list.stdout

    who = run(kubectl_binary, mine, "auth", "whoami", "-o", "json")
    assert who.returncode == 0, who.stderr
    assert '"username": "' + dana + '"' in who.stdout
    assert '"qa"' in who.stdout and '"system:authenticated"' in who.stdout
    who_admin = run(kubectl_binary, admin, "auth", "whoami")
    assert "kubernetes-admin" in who_admin.stdout and "system:masters" in who_admin.stdout
    as_dana = run(kubectl_binary, admin, "auth", "whoami", "--as", dana, "--as-group", "qa")
    assert dana in as_dana.stdout and "qa" in as_dana.stdout


def test_forbidden_as_kubectl_prints_it(
    apiserver: Any, users: Users, unique: str, kubectl_binary: str
) -> None:
    mine = users.kubeconfig(f"erin-{unique}")
    done = run(kubectl_binary, mine, "get", "pods", "-n", "default")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f'Error from server (Forbidden): pods is forbidden: User "erin-{unique}" cannot list '
        'resource "pods" in API group "" in the namespace "default"'
    )
