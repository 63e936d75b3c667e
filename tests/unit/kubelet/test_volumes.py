"""VolumeManager on a real filesystem: the files a container would see, their modes, updates.

Runs as root (tmpfs mounts for secret, projected and Memory emptyDir volumes). Every mount
a test makes lives under its own temporary directory and is unmounted in the fixture's
finalizer, also when the test fails.
"""

from __future__ import annotations

import base64
import copy
import os
import socket
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelet.volumes import VolumeError, VolumeManager, mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts tmpfs: needs root")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Objects:
    """What the informer caches would hold: configmaps, secrets, service accounts."""

    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.accounts: dict[tuple[str, str], dict[str, Any]] = {}


@pytest.fixture
def objects() -> Objects:
    return Objects()


@pytest.fixture
def manager(tmp_path: Path, objects: Objects) -> Iterator[VolumeManager]:
    root = tmp_path / f"kubelet root-{uuid.uuid4().hex[:8]}"  # a space, as mountinfo escapes it
    vm = VolumeManager(
        root,
        get_configmap=lambda ns, n: objects.configmaps.get((ns, n)),
        get_secret=lambda ns, n: objects.secrets.get((ns, n)),
        get_service_account=lambda ns, n: objects.accounts.get((ns, n)),
        node_allocatable={"cpu": "2", "memory": "64Mi"},
    )
    try:
        yield vm
    finally:
        for point in mounts_under(root):
            subprocess.run(["umount", "-l", str(point)], check=False)  # this test's tmpfs only
        assert mounts_under(root) == []


def make_pod(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]] | None = None) -> dict:
    return {
        "metadata": {
            "name": "web",
            "namespace": "ns",
            "uid": str(uuid.uuid4()),
            "labels": {"app": "web"},
        },
        "spec": {
            "serviceAccountName": "builder",
            "volumes": volumes,
            "containers": [
                {
                    "name": "app",
                    "resources": {"limits": {"memory": "32Mi"}},
                    "volumeMounts": mounts or [],
                }
            ],
        },
    }


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_configmap_files_go_through_data_and_update_all_at_once(
    manager: VolumeManager, objects: Objects
) -> None:
    objects.configmaps["ns", "cfg"] = {"data": {"app.conf": "v1", "level": "3"}}
    pod = make_pod([{"name": "cfg", "configMap": {"name": "cfg"}}])
    paths = manager.mount_all(pod)
    vol = Path(paths["cfg"])
    assert vol.name == "cfg" and "kubernetes.io~configmap" in str(vol)
    assert (vol / "app.conf").read_text() == "v1"
    assert os.readlink(vol / "app.conf") == "..data/app.conf"
    first = os.readlink(vol / "..data")
    assert first.startswith("..") and (vol / first).is_dir()
    assert mode_of(vol / "app.conf") == 0o644
    assert mode_of(vol) == 0o777

    manager.mount_all(pod)  # nothing changed: nothing rewritten
    assert os.readlink(vol / "..data") == first

    (vol / "..2020_01_01_00_00_00.crashed").mkdir()  # left by a kubelet that died mid-write
    objects.configmaps["ns", "cfg"] = {"data": {"app.conf": "v2", "new": "x"}}
    manager.mount_all(pod)
    second = os.readlink(vol / "..data")
    assert second != first and not (vol / first).exists()
    assert (vol / "app.conf").read_text() == "v2"
    assert (vol / "new").read_text() == "x"
    assert not os.path.lexists(vol / "level")
    assert sorted(os.listdir(vol)) == sorted(["..data", second, "app.conf", "new"])


def test_configmap_items_modes_and_optional(manager: VolumeManager, objects: Objects) -> None:
    objects.configmaps["ns", "cfg"] = {
        "data": {"a": "A", "b": "B"},
        "binaryData": {"bin": b64("\x00\x01")},
    }
    pod = make_pod(
        [
            {
                "name": "cfg",
                "configMap": {
                    "name": "cfg",
                    "defaultMode": 0o600,
                    "items": [
                        {"key": "a", "path": "conf/a.txt"},
                        {"key": "bin", "path": "bin", "mode": 0o755},
                    ],
                },
            },
            {"name": "opt", "configMap": {"name": "absent", "optional": True}},
        ]
    )
    paths = manager.mount_all(pod)
    vol = Path(paths["cfg"])
    assert (vol / "conf/a.txt").read_text() == "A"
    assert os.readlink(vol / "conf") == "..data/conf"
    assert mode_of(vol / "conf/a.txt") == 0o600
    assert (vol / "bin").read_bytes() == b"\x00\x01"
    assert mode_of(vol / "bin") == 0o755
    assert not os.path.lexists(vol / "b")
    assert [p for p in os.listdir(paths["opt"]) if not p.startswith("..")] == []


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (
            {"name": "cfg", "configMap": {"name": "missing"}},
            'MountVolume.SetUp failed for volume "cfg" : configmap "missing" not found',
        ),
        (
            {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}},
            'MountVolume.SetUp failed for volume "cfg" : '
            "configmap references non-existent config key: nope",
        ),
        (
            {"name": "sec", "secret": {"secretName": "gone"}},
            'MountVolume.SetUp failed for volume "sec" : secret "gone" not found',
        ),
        (
            {
                "name": "all",
                "projected": {"sources": [{"configMap": {"name": "x"}}, {"secret": {"name": "y"}}]},
            },
            'MountVolume.SetUp failed for volume "all" : '
            '[configmap "x" not found, secret "y" not found]',
        ),
    ],
)
def test_missing_objects_fail_as_failed_mount_says(
    manager: VolumeManager, objects: Objects, volume: dict[str, Any], message: str
) -> None:
    objects.configmaps["ns", "cfg"] = {"data": {"a": "A"}}
    pod = make_pod([volume, {"name": "scratch", "emptyDir": {}}])
    with pytest.raises(VolumeError) as info:
        manager.mount_all(pod)
    assert str(info.value) == message
    assert info.value.failures == [(volume["name"], message)]
    assert Path(
        manager.volume_dir(pod["metadata"]["uid"], {"name": "scratch", "emptyDir": {}})
    ).is_dir()
    manager.unmount_all(pod["metadata"]["uid"])


def test_secret_on_tmpfs_with_mode_0400_and_torn_down(
    manager: VolumeManager, objects: Objects
) -> None:
    objects.secrets["ns", "creds"] = {"data": {"password": b64("s3cret")}}
    pod = make_pod(
        [{"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}}],
        [{"name": "creds", "mountPath": "/etc/creds"}],
    )
    uid = pod["metadata"]["uid"]
    paths = manager.mount_all(pod)
    vol = Path(paths["creds"])
    assert os.path.ismount(vol)  # never on the node's disk
    assert (vol / "password").read_text() == "s3cret"
    assert mode_of(vol / "password") == 0o400
    st = (vol / "password").stat()
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert manager.container_mounts(pod, pod["spec"]["containers"][0], paths) == [
        ("/etc/creds", str(vol), True)
    ]
    manager.mount_all(pod)  # idempotent: still one tmpfs
    assert len(mounts_under(vol)) == 1

    manager.unmount_all(uid)
    assert not os.path.ismount(vol)
    assert not manager.pod_dir(uid).exists()
    manager.unmount_all(uid)  # twice is fine


def test_empty_dir_on_disk_and_in_memory(manager: VolumeManager) -> None:
    pod = make_pod(
        [
            {"name": "disk", "emptyDir": {}},
            {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "8Mi"}},
            {"name": "mem-node", "emptyDir": {"medium": "Memory"}},
        ]
    )
    pod["spec"]["containers"][0]["resources"] = {}  # no pod memory limit: the node's memory
    paths = manager.mount_all(pod)
    disk, mem, mem_node = (Path(paths[n]) for n in ("disk", "mem", "mem-node"))
    assert mode_of(disk) == 0o777 and not os.path.ismount(disk)
    (disk / "kept").write_text("data")
    assert os.path.ismount(mem) and mode_of(mem) == 0o777
    fs = os.statvfs(mem)
    assert fs.f_blocks * fs.f_frsize == 8 * 2**20
    fs = os.statvfs(mem_node)
    assert fs.f_blocks * fs.f_frsize == 64 * 2**20  # the node's allocatable memory
    pod_limited = make_pod([{"name": "mem", "emptyDir": {"medium": "Memory"}}])
    fs = os.statvfs(manager.mount_all(pod_limited)["mem"])
    assert fs.f_blocks * fs.f_frsize == 32 * 2**20  # the pod's memory limit, under the node's
    manager.unmount_all(pod_limited["metadata"]["uid"])
    manager.mount_all(pod)
    assert (disk / "kept").read_text() == "data"  # set-up again keeps what containers wrote
    assert len(mounts_under(mem)) == 1
    manager.unmount_all(pod["metadata"]["uid"])
    assert mounts_under(manager.pod_dir(pod["metadata"]["uid"])) == []


def test_host_path_types(manager: VolumeManager, tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    f = tmp_path / "file"
    f.write_text("x")
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        ok = [
            ("a", {"path": str(d), "type": "Directory"}),
            ("b", {"path": str(tmp_path / "made/deep"), "type": "DirectoryOrCreate"}),
            ("c", {"path": str(f), "type": "File"}),
            ("d", {"path": str(tmp_path / "newfile"), "type": "FileOrCreate"}),
            ("e", {"path": str(sock_path), "type": "Socket"}),
            ("g", {"path": "/dev/null", "type": "CharDevice"}),
            ("h", {"path": str(tmp_path / "untyped"), "type": ""}),
        ]
        pod = make_pod([{"name": n, "hostPath": src} for n, src in ok])
        paths = manager.mount_all(pod)
        assert paths["a"] == str(d)
        assert (tmp_path / "made/deep").is_dir()
        assert (tmp_path / "newfile").is_file()
        assert mode_of(tmp_path / "newfile") == 0o644 & ~_umask()
        bad = [
            (
                "a",
                {"path": str(f), "type": "Directory"},
                f"hostPath type check failed: {f} is not a directory",
            ),
            (
                "b",
                {"path": str(d), "type": "File"},
                f"hostPath type check failed: {d} is not a file",
            ),
            (
                "c",
                {"path": str(tmp_path / "no"), "type": "File"},
                f"hostPath type check failed: {tmp_path}/no is not a file",
            ),
            ("d", {"path": str(f), "type": "Socket"}, f"{f} is not a socket file"),
            ("e", {"path": str(f), "type": "CharDevice"}, f"{f} is not a character device"),
            ("g", {"path": "/dev/null", "type": "BlockDevice"}, "/dev/null is not a block device"),
            (
                "h",
                {"path": str(tmp_path / "no"), "type": "Socket"},
                f'path "{tmp_path}/no" does not exist',
            ),
            ("i", {"path": str(d), "type": "Weird"}, "Weird is an invalid volume type"),
            (
                "j",
                {"path": "/tmp/../etc", "type": ""},
                "invalid HostPath `/tmp/../etc`: must not contain '..'",
            ),
        ]
        pod = make_pod([{"name": n, "hostPath": src} for n, src, _ in bad])
        with pytest.raises(VolumeError) as info:
            manager.mount_all(pod)
        assert info.value.failures == [
            (n, f'MountVolume.SetUp failed for volume "{n}" : {msg}') for n, _, msg in bad
        ]
    finally:
        sock.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_downward_api_follows_label_changes(manager: VolumeManager) -> None:
    pod = make_pod(
        [
            {
                "name": "info",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {
                            "path": "mem",
                            "resourceFieldRef": {
                                "containerName": "app",
                                "resource": "limits.memory",
                                "divisor": "1Mi",
                            },
                        },
                        {
                            "path": "cpu",
                            "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"},
                        },
                    ]
                },
            }
        ]
    )
    vol = Path(manager.mount_all(pod)["info"])
    assert (vol / "labels").read_text() == 'app="web"'
    assert (vol / "name").read_text() == "web"
    assert (vol / "mem").read_text() == "32"
    assert (vol / "cpu").read_text() == "2"  # no limit: node allocatable
    pod = copy.deepcopy(pod)
    pod["metadata"]["labels"]["tier"] = "front"
    manager.mount_all(pod)
    assert (vol / "labels").read_text() == 'app="web"\ntier="front"'


def test_projected_sources_merge_and_token_from_account_secret(
    manager: VolumeManager, objects: Objects
) -> None:
    objects.configmaps["ns", "kube-root-ca.crt"] = {"data": {"ca.crt": "CERT"}}
    objects.secrets["ns", "extra"] = {"data": {"k": b64("v")}}
    volume = {
        "name": "api",
        "projected": {
            "sources": [
                {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}},
                {
                    "configMap": {
                        "name": "kube-root-ca.crt",
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}
                        ]
                    }
                },
                {"secret": {"name": "extra"}},
            ]
        },
    }
    pod = make_pod([volume])
    vol = Path(manager.mount_all(pod)["api"])
    assert os.path.ismount(vol)
    assert (vol / "ca.crt").read_text() == "CERT"
    assert (vol / "namespace").read_text() == "ns"
    assert (vol / "k").read_text() == "v"
    assert not os.path.lexists(vol / "token")  # the account has no token Secret: left out

    objects.accounts["ns", "builder"] = {"secrets": [{"name": "builder-token"}]}
    objects.secrets["ns", "builder-token"] = {
        "type": "kubernetes.io/service-account-token",
        "data": {"token": b64("eyJhbGciOi")},
    }
    manager.mount_all(pod)
    assert (vol / "token").read_text() == "eyJhbGciOi"
    manager.unmount_all(pod["metadata"]["uid"])


def test_container_mounts_sub_paths(
    manager: VolumeManager, objects: Objects, tmp_path: Path
) -> None:
    objects.configmaps["ns", "cfg"] = {"data": {"nginx.conf": "conf"}}
    outside = tmp_path / "outside"
    outside.mkdir()
    mounts = [
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/logs", "subPath": "logs/app", "readOnly": True},
        {"name": "data", "mountPath": "/per-pod", "subPathExpr": "$(POD)"},
        {"name": "cfg", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf"},
    ]
    pod = make_pod(
        [{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}],
        mounts,
    )
    container = pod["spec"]["containers"][0]
    paths = manager.mount_all(pod)
    data = Path(paths["data"])
    got = manager.container_mounts(pod, container, paths, env=[("POD", "web-1")])
    cfg_file = os.path.realpath(Path(paths["cfg"]) / "nginx.conf")
    assert got == [
        ("/data", str(data), False),
        ("/logs", str(data / "logs/app"), True),
        ("/per-pod", str(data / "web-1"), False),
        ("/etc/nginx/nginx.conf", cfg_file, True),
    ]
    assert (data / "logs/app").is_dir() and mode_of(data / "logs/app") == 0o777
    assert Path(cfg_file).read_text() == "conf"

    os.symlink(outside, data / "escape")
    for sub, message in [
        ("../x", "unable to provision SubPath `../x`: must not contain '..'"),
        ("/abs", "error SubPath `/abs` must not be an absolute path"),
        ("escape", 'failed to prepare subPath for volumeMount "data" of container "app"'),
        ("escape/deeper", 'failed to prepare subPath for volumeMount "data" of container "app"'),
    ]:
        container = {
            "name": "app",
            "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": sub}],
        }
        with pytest.raises(VolumeError) as info:
            manager.container_mounts(pod, container, paths)
        assert str(info.value) == message
    assert os.listdir(outside) == []  # nothing created outside the volume

    container = {
        "name": "app",
        "volumeMounts": [{"name": "data", "mountPath": "/x", "subPathExpr": "$(B)/$(A)"}],
    }
    with pytest.raises(VolumeError, match=r"^missing value for A, B$"):
        manager.container_mounts(pod, container, paths, env=[("A", "")])

    container = {"name": "app", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}
    with pytest.raises(
        VolumeError, match='cannot find volume "nope" to mount into container "app"'
    ):
        manager.container_mounts(pod, container, paths)


def test_fs_group_owns_volumes_and_adds_group_read(
    manager: VolumeManager, objects: Objects
) -> None:
    objects.secrets["ns", "creds"] = {"data": {"password": b64("s3cret")}}
    objects.configmaps["ns", "cfg"] = {"data": {"a": "A"}}
    pod = make_pod(
        [
            {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400}},
            {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "d/a"}]}},
            {"name": "scratch", "emptyDir": {}},
        ]
    )
    pod["spec"]["securityContext"] = {"fsGroup": 2000}
    paths = manager.mount_all(pod)
    secret_file = Path(paths["creds"]) / "password"
    assert mode_of(secret_file) == 0o440  # 0400 plus group read, as Kubernetes gives
    assert secret_file.stat().st_gid == 2000 and secret_file.stat().st_uid == 0
    cfg = Path(paths["cfg"])
    assert mode_of(cfg / "d/a") == 0o644 and (cfg / "d/a").stat().st_gid == 2000
    assert mode_of(cfg / "d") == 0o2755 and (cfg / "d").stat().st_gid == 2000
    scratch = Path(paths["scratch"])
    assert mode_of(scratch) == 0o2777 and scratch.stat().st_gid == 2000
    first = os.readlink(cfg / "..data")
    manager.mount_all(pod)
    assert os.readlink(cfg / "..data") == first  # the group bits do not look like a change
    manager.unmount_all(pod["metadata"]["uid"])


def test_concurrent_refreshes_of_one_pod_stay_consistent(
    manager: VolumeManager, objects: Objects
) -> None:
    """The pod worker and the periodic refresh may call mount_all at the same time."""
    pod = make_pod([{"name": "cfg", "configMap": {"name": "cfg"}}])
    objects.configmaps["ns", "cfg"] = {"data": {"v": "0"}}
    errors: list[BaseException] = []

    def refresh(n: int) -> None:
        try:
            for i in range(20):
                objects.configmaps["ns", "cfg"] = {"data": {"v": f"{n}-{i}"}}
                manager.mount_all(pod)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=refresh, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    manager.mount_all(pod)
    vol = Path(manager.volume_dir(pod["metadata"]["uid"], pod["spec"]["volumes"][0]))
    assert (vol / "v").read_text() == objects.configmaps["ns", "cfg"]["data"]["v"]
    versions = [e for e in os.listdir(vol) if e.startswith("..") and e[2:3].isdigit()]
    assert versions == [os.readlink(vol / "..data")]
