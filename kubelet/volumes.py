"""Pod volumes on the node: emptyDir, hostPath, configMap, secret, downwardAPI, projected,
persistentVolumeClaim (the bound volume's hostPath/local directory, used in place).

Each volume of a pod becomes a directory on the node that the runtime
bind-mounts into containers. The layout is the kubelet's own:
`<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<volume name>` (hostPath
volumes are the host path itself).

Volumes whose contents come from API objects (configMap, secret, downwardAPI,
projected) are written the way Kubernetes' AtomicWriter writes them, so that
a container never sees half an update:

    <volume>/..2026_12_02_10_04_05.123456789/   the files of one version
    <volume>/..data -> ..2026_12_02_10_04_05.123456789
    <volume>/app.conf -> ..data/app.conf       what the user opens

A new version is written into a fresh timestamped directory, then a
`..data_tmp` symlink to it is renamed over `..data` (rename is atomic), then
the old directory is removed. `mount_all` is called again and again by the
pod worker: it compares what an object says now with what is on disk and
swaps only when they differ, so updates reach running pods, as in
Kubernetes. (A subPath mount of such a file is resolved once, when the
container starts, and so does not see updates; that is Kubernetes' behaviour
too.)

Secret and projected volumes live on a tmpfs, as in Kubernetes, so secret
bytes never touch the node's disk; `emptyDir` with `medium: Memory` is a tmpfs
whose size is the sizeLimit, else the node's allocatable memory.

A projected `serviceAccountToken` source is filled with the token of the
ServiceAccount's legacy token Secret (`kubernetes.io/service-account-token`)
when there is one; otherwise that source is left out and the rest of the
volume is still written. (Bound tokens from the TokenRequest API are the
apiserver's part, not written here.)

Errors read as the kubelet's FailedMount events do:
`MountVolume.SetUp failed for volume "cfg" : configmap "missing" not found`.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import datetime
import errno
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api import quantity

from .env import EnvError, container_resource_value, expand, host_allocatable, pod_field_value
from .tokens import TokenManager

GetObject = Callable[[str, str], "dict[str, Any] | None"]
Payload = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)

PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
# Volumes of API data are always mounted read-only into containers (Kubernetes 1.10+).
READ_ONLY_KINDS = ("configMap", "secret", "downwardAPI", "projected")
# Kinds whose directory is a tmpfs the manager mounts and unmounts itself.
TMPFS_KINDS = ("secret", "projected")
DEFAULT_MODE = 0o644
DATA_DIR = "..data"


class VolumeError(Exception):
    """One or more volumes could not be set up; `failures` is (volume, message) per volume.

    str() of the error is the messages, one a line, each worded as a FailedMount event.
    """

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        super().__init__("\n".join(message for _, message in failures))
        self.failures = failures


class _SetupError(Exception):
    """Inner error: the part of the message after `MountVolume.SetUp failed for volume "x" : `."""


class _ClaimError(Exception):
    """A claim that cannot be resolved to a volume yet (the volume manager's
    `error processing PVC ...`), worded into `Unable to attach or mount volumes: ...`."""


def volume_kind(volume: dict[str, Any]) -> str:
    """Which source a pod volume uses: emptyDir, hostPath, configMap, ... ('' if none known)."""
    for kind in (
        "emptyDir",
        "hostPath",
        "configMap",
        "secret",
        "downwardAPI",
        "projected",
        "persistentVolumeClaim",
    ):
        if volume.get(kind) is not None:
            return kind
    return ""


# ---------------------------------------------------------------- payloads (pure)


def _aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate's message: one error as is, several in brackets."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def _items_payload(
    data: dict[str, bytes],
    items: list[dict[str, Any]] | None,
    default_mode: int,
    *,
    optional: bool,
    missing_key: str,
) -> Payload:
    """configmap.MakePayload / secret.MakePayload: every key, or only the listed items."""
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    payload: Payload = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise _SetupError(f"{missing_key}: {key}")
        mode = item.get("mode")
        payload[item.get("path") or key] = (data[key], default_mode if mode is None else int(mode))
    return payload


def configmap_data(configmap: dict[str, Any]) -> dict[str, bytes]:
    data = {k: str(v).encode() for k, v in (configmap.get("data") or {}).items()}
    for k, v in (configmap.get("binaryData") or {}).items():
        data[k] = _b64(v)
    return data


def secret_data(secret: dict[str, Any]) -> dict[str, bytes]:
    return {k: _b64(v) for k, v in (secret.get("data") or {}).items()}


def _b64(text: str) -> bytes:
    return base64.b64decode(text)


def downward_payload(
    items: list[dict[str, Any]],
    pod: dict[str, Any],
    default_mode: int,
    *,
    node_allocatable: dict[str, Any] | None,
) -> Payload:
    """downwardapi.CollectData: each item's fieldRef or resourceFieldRef value as a file."""
    payload: Payload = {}
    errors: list[str] = []
    for item in items:
        path = os.path.normpath(item.get("path", ""))
        mode = item.get("mode")
        value = ""
        try:
            if item.get("fieldRef"):
                ref = item["fieldRef"]
                value = pod_field_value(
                    pod, ref.get("fieldPath", ""), api_version=ref.get("apiVersion") or "v1"
                )
            elif item.get("resourceFieldRef"):
                value = container_resource_value(
                    item["resourceFieldRef"], pod, None, node_allocatable=node_allocatable
                )
        except EnvError as e:
            errors.append(str(e))
        payload[path] = (value.encode(), default_mode if mode is None else int(mode))
    if errors:
        raise _SetupError(_aggregate(errors))
    return payload


# ---------------------------------------------------------------- the atomic writer


def _validate_payload_path(path: str) -> None:
    """AtomicWriter.validatePath: relative, no '..' element, not starting with '..'."""
    if not path:
        raise _SetupError("invalid path: must not be empty")
    if os.path.isabs(path):
        raise _SetupError(f"invalid path: must not be absolute path: {path}")
    if ".." in path.split("/"):
        raise _SetupError(f"invalid path: must not contain '..': {path}")
    if path.startswith(".."):
        raise _SetupError(f"invalid path: must not start with '..': {path}")


def _read_tree(directory: Path) -> Payload:
    """The files under one timestamped directory, as a payload to compare with."""
    found: Payload = {}
    for dirpath, _dirs, files in os.walk(directory):
        for name in files:
            full = Path(dirpath, name)
            rel = str(full.relative_to(directory))
            found[rel] = (full.read_bytes(), stat.S_IMODE(full.lstat().st_mode))
    return found


def atomic_write(target: Path, payload: Payload, *, fs_group: int | None = None) -> bool:
    """Make `target` show exactly `payload`, switching versions atomically; True if it changed.

    With an fsGroup, files and directories belong to that group, files gain group
    read (0440, as SetVolumeOwnership does for read-only volumes) and directories
    the setgid bit.
    """
    for path in payload:
        _validate_payload_path(path)
    if fs_group is not None:
        payload = {path: (content, mode | 0o440) for path, (content, mode) in payload.items()}
    data_link = target / DATA_DIR
    old_dir: Path | None = None
    if data_link.is_symlink():
        old_dir = target / os.readlink(data_link)
    visible = {path.split("/", 1)[0] for path in payload}
    current = _read_tree(old_dir) if old_dir is not None and old_dir.is_dir() else None
    links_ok = all((target / name).is_symlink() for name in visible)
    if current == payload and links_ok:
        return False

    if current != payload:
        stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.")
        new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
        dir_mode = 0o755 if fs_group is None else 0o2755
        _setup_dir(new_dir, dir_mode, fs_group)
        for path, (content, mode) in payload.items():
            full = new_dir / path
            for parent in reversed(full.relative_to(new_dir).parents[:-1]):
                _setup_dir(new_dir / parent, dir_mode, fs_group)
            fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            try:
                os.write(fd, content)
                os.fchmod(fd, mode)  # the umask must not narrow the mode the pod asked for
                if fs_group is not None:
                    os.fchown(fd, -1, fs_group)
            finally:
                os.close(fd)
        tmp_link = target / "..data_tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_link)
        os.symlink(new_dir.name, tmp_link)
        os.rename(tmp_link, data_link)  # the atomic moment: readers see old or new, never a mix
    for name in visible:
        link = target / name
        if not link.is_symlink():
            os.symlink(f"{DATA_DIR}/{name}", link)
    for entry in os.listdir(target):
        if entry.startswith(".."):
            continue
        if entry not in visible:
            stale = target / entry
            if stale.is_symlink() or stale.is_file():
                stale.unlink()
            else:
                shutil.rmtree(stale)
    # The version replaced, and any left by a kubelet that died mid-write.
    live = os.readlink(data_link)
    for entry in os.listdir(target):
        if entry.startswith("..") and entry[2:3].isdigit() and entry != live:
            shutil.rmtree(target / entry, ignore_errors=True)
    return True


# ---------------------------------------------------------------- mounts


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount_tmpfs(target: Path, size_bytes: int | None, mode: int) -> None:
    options = f"mode={mode:o}" + (f",size={size_bytes}" if size_bytes else "")
    if _libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise _SetupError(f"mount failed: {os.strerror(err)} (tmpfs on {target})")


def _umount(target: Path) -> None:
    if _libc.umount2(os.fsencode(target), 0) != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):  # not a mount point (any more)
            return
        raise OSError(err, f"unmount {target}: {os.strerror(err)}")


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below `directory`, deepest first (from /proc/self/mountinfo)."""
    prefix = os.fsencode(str(directory).rstrip("/"))
    found = set()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            # mountinfo writes space, tab, newline and backslash as \ooo (octal)
            point = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8)]), line.split()[4])
            if point == prefix or point.startswith(prefix + b"/"):
                found.add(Path(os.fsdecode(point)))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


_OCTAL = re.compile(rb"\\([0-7]{3})")


def _setup_dir(directory: Path, mode: int = 0o777, gid: int | None = None) -> None:
    """emptyDir's setupDir: the directory exists with exactly `mode` (and group `gid`)."""
    directory.mkdir(parents=True, exist_ok=True)
    st = directory.stat()
    chowned = gid is not None and st.st_gid != gid
    if chowned:
        os.chown(directory, -1, gid)
    if chowned or stat.S_IMODE(st.st_mode) != mode:
        os.chmod(directory, mode)  # after chown, which clears setgid; whatever the umask


# ---------------------------------------------------------------- hostPath


def _host_path_type_check(path: str, path_type: str) -> None:
    """hostpath.checkType: the checks, creations and messages of each hostPath type."""

    def file_type() -> str:
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            raise _SetupError(f'path "{path}" does not exist') from None
        if stat.S_ISDIR(mode):
            return "Directory"
        if stat.S_ISREG(mode):
            return "File"
        if stat.S_ISSOCK(mode):
            return "Socket"
        if stat.S_ISCHR(mode):
            return "CharDevice"
        if stat.S_ISBLK(mode):
            return "BlockDevice"
        return ""

    exists = os.path.exists(path)
    if path_type in ("DirectoryOrCreate", "Directory"):
        if not exists and path_type == "DirectoryOrCreate":
            os.makedirs(path, mode=0o755, exist_ok=True)
            return
        if not exists or file_type() != "Directory":
            raise _SetupError(f"hostPath type check failed: {path} is not a directory")
    elif path_type in ("FileOrCreate", "File"):
        if not exists and path_type == "FileOrCreate":
            try:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
            except OSError as e:
                raise _SetupError(f"open {path}: {e.strerror.lower()}") from None
            return
        if not exists or file_type() != "File":
            raise _SetupError(f"hostPath type check failed: {path} is not a file")
    elif path_type == "Socket":
        if file_type() != "Socket":
            raise _SetupError(f"{path} is not a socket file")
    elif path_type == "CharDevice":
        if file_type() != "CharDevice":
            raise _SetupError(f"{path} is not a character device")
    elif path_type == "BlockDevice":
        if file_type() != "BlockDevice":
            raise _SetupError(f"{path} is not a block device")
    elif path_type == "":
        # No check. containerd creates a missing bind source as a directory; doing it
        # here gives every runtime the same behaviour.
        if not os.path.lexists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
    else:
        raise _SetupError(f"{path_type} is an invalid volume type")


# ---------------------------------------------------------------- the manager


class VolumeManager:
    """Sets up and tears down the volumes of the pods on this node (root-only: it mounts)."""

    def __init__(
        self,
        root: Path,
        *,
        get_configmap: GetObject,
        get_secret: GetObject,
        get_service_account: GetObject | None = None,
        node_allocatable: dict[str, Any] | None = None,
        tokens: TokenManager | None = None,
        get_claim: GetObject | None = None,
        get_volume: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.get_configmap = get_configmap
        self.get_secret = get_secret
        self.get_service_account = get_service_account
        self.node_allocatable = node_allocatable
        # Bound tokens by TokenRequest (kubelet/tokens.py); None: legacy token Secrets only.
        self.tokens = tokens
        self.get_claim = get_claim
        self.get_volume = get_volume
        # One pod's volumes are set up or torn down by one thread at a time: the
        # pod worker and the periodic refresh may both call mount_all.
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def _lock(self, pod_uid: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(pod_uid, threading.Lock())

    # -- paths

    def pod_dir(self, pod_uid: str) -> Path:
        return self.root / "pods" / pod_uid

    def volume_dir(self, pod_uid: str, volume: dict[str, Any]) -> Path:
        kind = volume_kind(volume)
        return self.pod_dir(pod_uid) / "volumes" / PLUGIN_DIRS[kind] / volume["name"]

    def pod_uids(self) -> list[str]:
        """Pods that have a directory here (to clean up those the node no longer runs)."""
        pods = self.root / "pods"
        return sorted(p.name for p in pods.iterdir()) if pods.is_dir() else []

    # -- set up

    def mount_all(self, pod: dict[str, Any]) -> dict[str, str]:
        """Set up (or refresh) every volume of the pod; volume name -> host path.

        Volumes that work are set up even when others fail; then VolumeError lists
        the failures, one FailedMount message each.
        """
        uid = pod["metadata"]["uid"]
        with self._lock(uid):
            return self._mount_all(pod, uid)

    def _mount_all(self, pod: dict[str, Any], uid: str) -> dict[str, str]:
        paths: dict[str, str] = {}
        failures: list[tuple[str, str]] = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = volume.get("name", "")
            try:
                paths[name] = self._set_up(pod, uid, volume)
            except _ClaimError as e:
                failures.append(
                    (
                        name,
                        f"Unable to attach or mount volumes: unmounted volumes=[{name}], "
                        f"unattached volumes=[], failed to process volumes=[{name}]: {e}",
                    )
                )
            except _SetupError as e:
                failures.append((name, f'MountVolume.SetUp failed for volume "{name}" : {e}'))
            except OSError as e:
                failures.append((name, f'MountVolume.SetUp failed for volume "{name}" : {e}'))
        if failures:
            raise VolumeError(failures)
        return paths

    def _set_up(self, pod: dict[str, Any], uid: str, volume: dict[str, Any]) -> str:
        kind = volume_kind(volume)
        if kind == "persistentVolumeClaim":
            return self._claim_path(pod, volume["persistentVolumeClaim"])
        if kind == "hostPath":
            source = volume["hostPath"]
            path = source.get("path", "")
            if ".." in path.split("/"):
                raise _SetupError(f"invalid HostPath `{path}`: must not contain '..'")
            _host_path_type_check(path, source.get("type") or "")
            return path
        if not kind:
            raise _SetupError("no volume plugin matched")
        target = self.volume_dir(uid, volume)
        # fsGroup (SetVolumeOwnership): the volume belongs to the pod's group, setgid.
        fs_group = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        fs_group = None if fs_group is None else int(fs_group)
        mode = 0o777 if fs_group is None else 0o2777
        memory = kind == "emptyDir" and volume["emptyDir"].get("medium") == "Memory"
        on_tmpfs = memory or kind in TMPFS_KINDS
        # Set up once; later calls only refresh contents (a container may chmod its dir).
        if not target.is_dir() or (on_tmpfs and not os.path.ismount(target)):
            _setup_dir(target)
            if on_tmpfs:
                size = self._memory_size(pod, volume["emptyDir"]) if memory else None
                _mount_tmpfs(target, size, 0o777)
            _setup_dir(target, mode, fs_group)
        if kind != "emptyDir":
            atomic_write(target, self._payload(pod, kind, volume[kind]), fs_group=fs_group)
        return str(target)

    def _claim_path(self, pod: dict[str, Any], source: dict[str, Any]) -> str:
        """claim -> bound PersistentVolume -> its directory on this node (hostPath or local),
        used in place as a hostPath volume is."""
        namespace = pod["metadata"].get("namespace", "default")
        name = source.get("claimName", "")
        where = f"error processing PVC {namespace}/{name}"
        claim = self.get_claim(namespace, name) if self.get_claim else None
        if claim is None:
            raise _ClaimError(
                f"{where}: failed to fetch PVC from API server: "
                f'persistentvolumeclaims "{name}" not found'
            )
        if claim["metadata"].get("deletionTimestamp"):
            raise _ClaimError(
                f"{where}: can't start pod because PVC {namespace}/{name} is being deleted"
            )
        volume_name = (claim.get("spec") or {}).get("volumeName", "")
        if not volume_name or (claim.get("status") or {}).get("phase") != "Bound":
            raise _ClaimError(f"{where}: PVC is not bound")
        pv = self.get_volume(volume_name) if self.get_volume else None
        if pv is None:
            raise _ClaimError(
                f"{where}: failed to fetch PV {volume_name} from API server: "
                f'persistentvolumes "{volume_name}" not found'
            )
        spec = pv.get("spec") or {}
        if spec.get("hostPath"):
            path = spec["hostPath"].get("path", "")
            if ".." in path.split("/"):
                raise _SetupError(f"invalid HostPath `{path}`: must not contain '..'")
            _host_path_type_check(path, spec["hostPath"].get("type") or "")
            return path
        if spec.get("local"):
            path = spec["local"].get("path", "")
            if not os.path.isdir(path):
                raise _SetupError(f'path "{path}" does not exist')
            return path
        raise _SetupError(f"no volume plugin matched for persistent volume {volume_name}")

    def _memory_size(self, pod: dict[str, Any], source: dict[str, Any]) -> int | None:
        """calculateEmptyDirMemorySize: a Memory emptyDir's tmpfs size.

        The node's allocatable memory, lowered to the pod's memory limit when it has
        one, lowered again to the volume's sizeLimit when that is smaller.
        """
        node_memory = (self.node_allocatable or host_allocatable()).get("memory")
        size = quantity.value(node_memory) if node_memory is not None else None
        for candidate in (pod_memory_limit(pod), source.get("sizeLimit")):
            if candidate is None:
                continue
            value = quantity.value(candidate)
            if value > 0 and (size is None or value <= size):
                size = value
        return size

    def _payload(self, pod: dict[str, Any], kind: str, source: dict[str, Any]) -> Payload:
        namespace = pod["metadata"].get("namespace") or "default"
        mode = source.get("defaultMode")
        default_mode = DEFAULT_MODE if mode is None else int(mode)
        if kind == "configMap":
            return self._configmap_payload(namespace, source, default_mode)
        if kind == "secret":
            return self._secret_payload(namespace, source, default_mode)
        if kind == "downwardAPI":
            return downward_payload(
                source.get("items") or [], pod, default_mode, node_allocatable=self.node_allocatable
            )
        return self._projected_payload(pod, namespace, source, default_mode)

    def _configmap_payload(self, namespace: str, source: dict[str, Any], mode: int) -> Payload:
        name = source.get("name", "")
        optional = bool(source.get("optional"))
        configmap = self.get_configmap(namespace, name)
        if configmap is None:
            if not optional:
                raise _SetupError(f'configmap "{name}" not found')
            configmap = {}
        return _items_payload(
            configmap_data(configmap),
            source.get("items"),
            mode,
            optional=optional,
            missing_key="configmap references non-existent config key",
        )

    def _secret_payload(self, namespace: str, source: dict[str, Any], mode: int) -> Payload:
        # A secret volume names its Secret `secretName`; a projected secret source `name`.
        name = source.get("secretName") or source.get("name") or ""
        optional = bool(source.get("optional"))
        secret = self.get_secret(namespace, name)
        if secret is None:
            if not optional:
                raise _SetupError(f'secret "{name}" not found')
            secret = {}
        return _items_payload(
            secret_data(secret),
            source.get("items"),
            mode,
            optional=optional,
            missing_key="secret references non-existent secret key",
        )

    def _projected_payload(
        self, pod: dict[str, Any], namespace: str, source: dict[str, Any], mode: int
    ) -> Payload:
        """projected.collectData: the sources merged into one tree, errors aggregated."""
        payload: Payload = {}
        errors: list[str] = []
        for projection in source.get("sources") or []:
            try:
                if projection.get("configMap") is not None:
                    part = self._configmap_payload(namespace, projection["configMap"], mode)
                elif projection.get("secret") is not None:
                    part = self._secret_payload(namespace, projection["secret"], mode)
                elif projection.get("downwardAPI") is not None:
                    items = projection["downwardAPI"].get("items") or []
                    part = downward_payload(
                        items, pod, mode, node_allocatable=self.node_allocatable
                    )
                elif projection.get("serviceAccountToken") is not None:
                    part = self._token_payload(
                        pod, namespace, projection["serviceAccountToken"], mode
                    )
                else:
                    part = {}
            except _SetupError as e:
                errors.append(str(e))
                continue
            payload.update(part)
        if errors:
            raise _SetupError(_aggregate(errors))
        return payload

    def _token_payload(
        self, pod: dict[str, Any], namespace: str, source: dict[str, Any], mode: int
    ) -> Payload:
        """A bound token from the TokenRequest API (refreshed before it expires), or
        the ServiceAccount's legacy token Secret if it has one; else nothing."""
        sa_name = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        if self.tokens is not None:
            try:
                token = self.tokens.token(
                    pod,
                    sa_name,
                    str(source.get("audience") or ""),
                    int(source.get("expirationSeconds") or 3600),
                )
            except Exception as e:
                raise _SetupError(
                    f'failed to fetch token: serviceaccounts "{sa_name}" token: {e}'
                ) from e
            return {source.get("path") or "token": (token.encode(), mode)}
        if self.get_service_account is None:
            return {}
        account = self.get_service_account(namespace, sa_name)
        for ref in (account or {}).get("secrets") or []:
            secret = self.get_secret(namespace, ref.get("name", ""))
            if not secret or secret.get("type") != "kubernetes.io/service-account-token":
                continue
            token = secret_data(secret).get("token")
            if token:
                return {source.get("path") or "token": (token, mode)}
        return {}

    # -- tear down

    def unmount_all(self, pod_uid: str) -> None:
        """Unmount the pod's tmpfs volumes and remove its directory (the pod is gone)."""
        with self._lock(pod_uid):
            self._unmount_all(pod_uid)
        with self._locks_lock:
            self._locks.pop(pod_uid, None)
        if self.tokens is not None:
            self.tokens.forget(pod_uid)

    def _unmount_all(self, pod_uid: str) -> None:
        pod_dir = self.pod_dir(pod_uid)
        if not pod_dir.exists():
            return
        for point in mounts_under(pod_dir):
            _umount(point)
        left = mounts_under(pod_dir)
        if left:
            # Never delete through a mount: that would erase what it shows.
            raise VolumeError([("", f"pod {pod_uid}: still mounted: {', '.join(map(str, left))}")])
        shutil.rmtree(pod_dir)

    # -- containers

    def container_mounts(
        self,
        pod: dict[str, Any],
        container: dict[str, Any],
        paths: dict[str, str],
        *,
        env: list[tuple[str, str]] | None = None,
    ) -> list[tuple[str, str, bool]]:
        """(container path, host path, read-only) per volumeMount (kubelet makeMounts).

        subPath (or subPathExpr, expanded with the container's `env`) selects a path
        inside the volume, created as a directory when missing; a subPath that leaves
        the volume, by '..' or by a symlink, is refused. Volumes of API data are always
        read-only. Errors are VolumeError; the container waits in CreateContainerConfigError.
        """
        volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
        cname = container.get("name", "")
        env_map = dict(env or [])
        result: list[tuple[str, str, bool]] = []
        for mount in container.get("volumeMounts") or []:
            name = mount.get("name", "")
            if name not in paths or name not in volumes:
                raise VolumeError(
                    [(name, f'cannot find volume "{name}" to mount into container "{cname}"')]
                )
            host_path = paths[name]
            read_only = (
                bool(mount.get("readOnly"))
                or volume_kind(volumes[name]) in READ_ONLY_KINDS
                or bool((volumes[name].get("persistentVolumeClaim") or {}).get("readOnly"))
            )
            sub_path = mount.get("subPath") or ""
            if mount.get("subPathExpr"):
                sub_path = _expand_sub_path(mount["subPathExpr"], env_map, name)
            if sub_path:
                host_path = self._sub_path(host_path, sub_path, name, cname)
            result.append((mount.get("mountPath", ""), host_path, read_only))
        return result

    @staticmethod
    def _sub_path(volume_path: str, sub_path: str, name: str, cname: str) -> str:
        if os.path.isabs(sub_path):
            raise VolumeError([(name, f"error SubPath `{sub_path}` must not be an absolute path")])
        if ".." in sub_path.split("/"):
            raise VolumeError(
                [(name, f"unable to provision SubPath `{sub_path}`: must not contain '..'")]
            )
        base = os.path.realpath(volume_path)
        failed = VolumeError(
            [(name, f'failed to prepare subPath for volumeMount "{name}" of container "{cname}"')]
        )

        def within(path: str) -> bool:
            return path == base or path.startswith(base.rstrip("/") + "/")

        full = os.path.join(volume_path, sub_path)
        if not os.path.lexists(full):
            # Create it now, each component checked to stay inside the volume, with the
            # volume's own mode (so a group-writable volume gives a group-writable subPath).
            mode = stat.S_IMODE(os.stat(volume_path).st_mode)
            current = base
            for part in sub_path.strip("/").split("/"):
                current = os.path.join(current, part)
                if os.path.lexists(current):
                    current = os.path.realpath(current)
                    if not within(current):
                        raise failed
                    continue
                os.mkdir(current, mode)
                os.chmod(current, mode)
        resolved = os.path.realpath(full)
        if not within(resolved):
            raise failed
        return resolved


def _expand_sub_path(expr: str, env: dict[str, str], volume: str) -> str:
    """ExpandContainerVolumeMounts: every $(VAR) must have a non-empty value."""
    missing: set[str] = set()

    def value(var: str) -> str:
        if not env.get(var):
            missing.add(var)
        return env.get(var, "")

    expanded = expand(expr, value)
    if missing:
        raise VolumeError([(volume, f"missing value for {', '.join(sorted(missing))}")])
    return expanded


def pod_memory_limit(pod: dict[str, Any]) -> int | None:
    """The pod cgroup's memory limit (ResourceConfigForPod): None unless every container
    has one; else the larger of the app containers' sum and the largest init container's."""
    spec = pod.get("spec") or {}

    def limit(container: dict[str, Any]) -> int | None:
        value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        return None if value is None else quantity.value(value)

    apps = [limit(c) for c in spec.get("containers") or []]
    inits = [limit(c) for c in spec.get("initContainers") or []]
    if not apps or any(v is None for v in apps + inits):
        return None
    return max([sum(v for v in apps if v is not None)] + [v for v in inits if v is not None])
