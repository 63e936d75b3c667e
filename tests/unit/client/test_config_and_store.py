"""kubeconfig precedence and the informer's indexed store."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from client.config import ConfigError, load_config
from client.informer import Store, by_node_name


def kubeconfig(path: Path, server: str, token: str, context: str = "c") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "clusters": [
                    {
                        "name": "k",
                        "cluster": {
                            "server": server,
                            "certificate-authority-data": base64.b64encode(b"CA").decode(),
                        },
                    }
                ],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [
                    {"name": context, "context": {"cluster": "k", "user": "u", "namespace": "team"}}
                ],
            }
        )
    )
    return path


def test_explicit_path_and_kubeconfig_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = kubeconfig(tmp_path / "a", "https://a:6443", "ta", context="ca")
    b = kubeconfig(tmp_path / "b", "https://b:6443", "tb", context="cb")
    config = load_config(a)
    assert (config.server, config.token, config.namespace) == ("https://a:6443", "ta", "team")
    assert config.ca_data == b"CA"
    monkeypatch.setenv("KUBECONFIG", f"{b}:{a}")
    assert load_config().server == "https://b:6443"  # first file's current-context wins
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing")
    with pytest.raises(ConfigError):
        load_config(a, context="nope")


def test_store_indexes_follow_updates() -> None:
    store = Store({"node": by_node_name})
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}}
    store.put(pod)
    assert store.by_index("node", "n1") == [pod]
    moved = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n2"}}
    store.put(moved)
    assert store.by_index("node", "n1") == []
    assert store.by_index("node", "n2") == [moved]
    assert store.by_index("namespace", "ns") == [moved]
    store.remove(moved)
    assert store.list() == []
