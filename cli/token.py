"""`skiff token create|list|delete`: bootstrap tokens for `skiff join`, as `kubeadm token`.

`create` stores the token as Kubernetes does (Secret `bootstrap-token-<id>`
in kube-system, cli/bootstrap.py) and publishes the signed discovery
document: the ConfigMap `cluster-info` in kube-public with the server and CA,
and the token's JWS beside it (kube-controller-manager's bootstrap signer
does that in Kubernetes; here the command that makes the token does, with
the same result). Anyone may read cluster-info, as in Kubernetes; it holds
no secret, and only a holder of the token can check its signature.
`delete` removes the token and its signature.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
from pathlib import Path
from typing import Any

from client import errors
from client.config import ConfigError, load_config
from client.rest import Client

from . import bootstrap

DEFAULT_KUBECONFIG = "/var/lib/skiff/admin.kubeconfig"


async def publish_cluster_info(client: Client, ca_pem: bytes, signatures: dict[str, str]) -> None:
    """cluster-info with the kubeconfig and every signing token's JWS (others removed)."""
    kubeconfig = bootstrap.cluster_info_kubeconfig(client.config.server, ca_pem)
    data = {"kubeconfig": kubeconfig}
    for token in signatures.values():
        token_id, _ = bootstrap.parse_token(token)
        data[f"jws-kubeconfig-{token_id}"] = bootstrap.sign_kubeconfig(kubeconfig, token)
    try:
        current = await client.get("v1", "ConfigMap", "kube-public", "cluster-info")
    except errors.NotFound:
        await client.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "cluster-info", "namespace": "kube-public"},
                "data": data,
            }
        )
        return
    await client.update({**current, "data": data})


async def signing_tokens(client: Client) -> dict[str, str]:
    """token id -> token, for every unexpired bootstrap token allowed to sign."""
    now = datetime.datetime.now(datetime.UTC)
    secrets, _ = await client.list("v1", "Secret", "kube-system")
    out = {}
    for s in secrets:
        if s.get("type") != bootstrap.SECRET_TYPE:
            continue
        f = bootstrap.secret_fields(s)
        if f.get("usage-bootstrap-signing") == "true" and not bootstrap.expired(f, now):
            out[f["token-id"]] = f"{f['token-id']}.{f['token-secret']}"
    return out


async def allow_anonymous_discovery(client: Client) -> None:
    """RBAC, where served: anonymous may get cluster-info (kubeadm's Role and binding)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["cluster-info"],
                "verbs": ["get"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "kubeadm:bootstrap-signer-clusterinfo",
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}
        ],
    }
    for obj in (role, binding):
        try:
            await client.create(obj)
        except (errors.Conflict, errors.NotFound, ValueError):
            pass  # there already, or RBAC not served by this build


async def create(client: Client, ttl: str, description: str) -> dict[str, Any]:
    token = bootstrap.generate_token()
    now = datetime.datetime.now(datetime.UTC)
    secret = bootstrap.token_secret(
        token, ttl=bootstrap.parse_ttl(ttl), now=now, description=description
    )
    await client.create(secret)
    ca = client.config.ca_data
    if not ca:
        raise bootstrap.TokenError("the kubeconfig has no certificate-authority: cannot publish it")
    await publish_cluster_info(client, ca, await signing_tokens(client))
    await allow_anonymous_discovery(client)
    return {"token": token, "server": client.config.server, "hash": bootstrap.ca_cert_hash(ca)}


async def listing(client: Client) -> list[list[str]]:
    now = datetime.datetime.now(datetime.UTC)
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
    secrets, _ = await client.list("v1", "Secret", "kube-system")
    for s in secrets:
        if s.get("type") != bootstrap.SECRET_TYPE:
            continue
        f = bootstrap.secret_fields(s)
        exp = f.get("expiration", "")
        ttl = "<forever>"
        if exp:
            left = (
                datetime.datetime.strptime(exp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
                - now
            )
            ttl = "<invalid>" if left.total_seconds() <= 0 else f"{int(left.total_seconds())}s"
        usages = ",".join(
            k.removeprefix("usage-bootstrap-")
            for k, v in f.items()
            if k.startswith("usage-bootstrap-") and v == "true"
        )
        rows.append(
            [
                f"{f.get('token-id')}.{f.get('token-secret')}",
                ttl,
                exp or "<never>",
                usages,
                f.get("description", "<none>"),
                f.get("auth-extra-groups", ""),
            ]
        )
    return rows


async def delete(client: Client, token_or_id: str) -> str:
    token_id = token_or_id.split(".")[0]
    await client.delete("v1", "Secret", "kube-system", f"bootstrap-token-{token_id}")
    ca = client.config.ca_data or b""
    await publish_cluster_info(client, ca, await signing_tokens(client))
    return token_id


def join_command(made: dict[str, Any]) -> str:
    return (
        f"skiff join {made['server']} --token {made['token']} "
        f"--discovery-token-ca-cert-hash {made['hash']}"
    )


def main(argv: list[str], kubeconfig_default: str = DEFAULT_KUBECONFIG) -> int:
    p = argparse.ArgumentParser(prog="skiff token", description=__doc__.split("\n")[0])
    p.add_argument("--kubeconfig", default=kubeconfig_default)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="a new bootstrap token")
    c.add_argument("--ttl", default="24h", help="e.g. 24h, 30m; 0 never expires")
    c.add_argument("--description", default="")
    c.add_argument("--print-join-command", action="store_true")
    sub.add_parser("list", help="the bootstrap tokens")
    d = sub.add_parser("delete", help="remove a token (TOKEN or its ID)")
    d.add_argument("token")
    a = p.parse_args(argv)
    try:
        client = Client(load_config(Path(a.kubeconfig)), user_agent="skiff-token")
    except ConfigError as e:
        print(f"skiff token: {e}", file=sys.stderr)
        return 1

    async def go() -> int:
        try:
            if a.command == "create":
                made = await create(client, a.ttl, a.description)
                print(join_command(made) if a.print_join_command else made["token"])
            elif a.command == "list":
                rows = await listing(client)
                widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
                for r in rows:
                    print("   ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip())
            else:
                print(f"bootstrap token {await delete(client, a.token)!r} deleted")
            return 0
        finally:
            await client.close()

    try:
        return asyncio.run(go())
    except (bootstrap.TokenError, errors.ApiError) as e:
        print(f"skiff token: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"skiff token: cannot reach the apiserver: {e}", file=sys.stderr)
        return 1
