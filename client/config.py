"""Where the apiserver is and who we are: kubeconfig files, read as kubectl reads them.

Precedence, as kubectl: an explicit path, else `KUBECONFIG` (several files
joined with ':'; for each map entry the first file that sets it wins), else
`~/.kube/config`. The current context (or the one asked for) names a cluster
(server, CA) and a user (token, or client certificate and key).
"""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(Exception):
    """The kubeconfig is missing or does not say enough to connect."""


@dataclass(frozen=True)
class ClientConfig:
    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    namespace: str = "default"

    def ssl_context(self) -> ssl.SSLContext | bool:
        if self.insecure:
            return False
        context = ssl.create_default_context(cadata=self.ca_data.decode() if self.ca_data else None)
        if self.cert_data and self.key_data:
            # ssl can only load a certificate chain from files.
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = Path(tmp, "c.pem"), Path(tmp, "k.pem")
                cert.write_bytes(self.cert_data)
                key.write_bytes(self.key_data)
                key.chmod(0o600)
                context.load_cert_chain(str(cert), str(key))
        return context

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def _files(path: str | Path | None) -> list[Path]:
    if path:
        return [Path(path)]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _merge(files: list[Path]) -> dict[str, Any]:
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}}
    current = ""
    found = False
    for f in files:
        if not f.exists():
            continue
        found = True
        data = yaml.safe_load(f.read_text()) or {}
        for section in ("clusters", "users", "contexts"):
            for entry in data.get(section) or []:
                merged[section].setdefault(entry["name"], (entry.get(section[:-1]) or {}, f))
        current = current or data.get("current-context", "")
    if not found:
        raise ConfigError("no kubeconfig found (tried " + ", ".join(map(str, files)) + ")")
    merged["current-context"] = current
    return merged


def _data(entry: dict[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(entry[key])
        return (path if path.is_absolute() else base.parent / path).read_bytes()
    return None


def load_config(path: str | Path | None = None, context: str | None = None) -> ClientConfig:
    merged = _merge(_files(path))
    name = context or merged["current-context"]
    if name not in merged["contexts"]:
        raise ConfigError(f"context {name!r} not found in kubeconfig")
    ctx, _ = merged["contexts"][name]
    cluster, cluster_file = merged["clusters"].get(ctx.get("cluster"), ({}, None))
    user, user_file = merged["users"].get(ctx.get("user"), ({}, None))
    if not cluster.get("server"):
        raise ConfigError(f"context {name!r} names no cluster with a server")
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = Path(user["tokenFile"]).read_text().strip()
    return ClientConfig(
        server=cluster["server"].rstrip("/"),
        ca_data=_data(cluster, "certificate-authority", cluster_file),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=token,
        cert_data=_data(user, "client-certificate", user_file) if user_file else None,
        key_data=_data(user, "client-key", user_file) if user_file else None,
        namespace=ctx.get("namespace") or "default",
    )
