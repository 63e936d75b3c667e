"""The flags of a member of a multi-member embedded etcd, read and turned into etcd's."""

from __future__ import annotations

from pathlib import Path

import pytest

from apiserver.etcd_process import EtcdError, EtcdProcess, parse_initial_cluster, split_url


@pytest.mark.parametrize(
    ("text", "members"),
    [
        ("a=https://10.0.0.1:2380", {"a": "https://10.0.0.1:2380"}),
        (
            "a=https://10.0.0.1:2380, b=https://10.0.0.2:2380,",
            {"a": "https://10.0.0.1:2380", "b": "https://10.0.0.2:2380"},
        ),
    ],
)
def test_parse_initial_cluster(text: str, members: dict[str, str]) -> None:
    assert parse_initial_cluster(text) == members


@pytest.mark.parametrize("text", ["a", "=https://x:1", "a=10.0.0.1:2380"])
def test_parse_initial_cluster_refuses(text: str) -> None:
    with pytest.raises(EtcdError, match="name=https://host:port"):
        parse_initial_cluster(text)


def test_split_url() -> None:
    assert split_url("https://10.0.0.1:2380") == ("10.0.0.1", 2380)
    assert split_url("https://[::1]:2380/") == ("::1", 2380)
    with pytest.raises(EtcdError):
        split_url("https://10.0.0.1")


def test_member_args_name_the_cluster_and_listen_on_loopback_too(tmp_path: Path) -> None:
    member = EtcdProcess(
        data_dir=tmp_path, client_port=2379, peer_port=2380, name="b", host="10.0.0.2",
        initial_cluster="a=http://10.0.0.1:2380,b=http://10.0.0.2:2380",
        initial_cluster_state="existing",
    )  # fmt: skip
    args = member.args()

    def flag(name: str) -> str:
        return args[args.index(name) + 1]

    assert flag("--initial-cluster") == "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380"
    assert flag("--initial-cluster-state") == "existing"
    assert flag("--initial-advertise-peer-urls") == "http://10.0.0.2:2380"
    assert flag("--advertise-client-urls") == "http://10.0.0.2:2379"
    assert flag("--listen-client-urls") == "http://10.0.0.2:2379,http://127.0.0.1:2379"


def test_single_member_is_its_own_cluster(tmp_path: Path) -> None:
    args = EtcdProcess(data_dir=tmp_path, client_port=1, peer_port=2, name="skiff").args()
    assert args[args.index("--initial-cluster") + 1] == "skiff=http://127.0.0.1:2"
    assert args[args.index("--initial-cluster-state") + 1] == "new"
