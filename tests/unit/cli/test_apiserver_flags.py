"""What `skiff up` passes the apiserver for each kind of etcd."""

from __future__ import annotations

from pathlib import Path

from cli.components import apiserver_args
from cli.layout import Layout


def _layout(tmp_path: Path, **kw: str) -> Layout:
    return Layout(state_dir=tmp_path, advertise_address="10.0.0.1", node_name="vm1", **kw)


def _flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def test_alone_the_embedded_etcd_needs_no_flags(tmp_path: Path) -> None:
    args = apiserver_args(_layout(tmp_path))
    assert not [a for a in args if a.startswith("--etcd")]


def test_member_of_several(tmp_path: Path) -> None:
    cluster = "vm1=https://10.0.0.1:2380,vm2=https://10.0.0.2:2380,vm3=https://10.0.0.3:2380"
    args = apiserver_args(_layout(tmp_path, etcd_initial_cluster=cluster))
    assert _flag(args, "--etcd-name") == "vm1"  # the node name unless --etcd-name
    assert _flag(args, "--etcd-initial-cluster") == cluster
    assert _flag(args, "--etcd-initial-cluster-state") == "new"
    assert "--etcd-servers" not in args


def test_external_https_etcd_gets_the_client_certificate_when_copied(tmp_path: Path) -> None:
    urls = "https://10.0.0.1:2379,https://10.0.0.2:2379"
    assert _flag(apiserver_args(_layout(tmp_path, etcd_servers=urls)), "--etcd-certfile") is None
    (tmp_path / "pki" / "etcd").mkdir(parents=True)
    for name in ("apiserver-etcd-client.crt", "apiserver-etcd-client.key", "etcd/ca.crt"):
        (tmp_path / "pki" / name).write_text("x")
    args = apiserver_args(_layout(tmp_path, etcd_servers=urls))
    assert _flag(args, "--etcd-servers") == urls
    assert _flag(args, "--etcd-certfile") == str(tmp_path / "pki" / "apiserver-etcd-client.crt")
    assert _flag(args, "--etcd-keyfile") == str(tmp_path / "pki" / "apiserver-etcd-client.key")
    assert _flag(args, "--etcd-cafile") == str(tmp_path / "pki" / "etcd" / "ca.crt")
