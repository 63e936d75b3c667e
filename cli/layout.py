"""Where a skiff node keeps things, decided once at `skiff up` and read by every other command.

`skiff up` writes the choices (state directory, addresses, node name, where
the runtime's socket and the pods' cgroups and logs go) to
`<state-dir>/cluster.json`; `status`, `down`, `reset` and `etcd` read that
file instead of guessing, so they act on exactly what `up` made.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

# SKIFF_STATE_DIR as scripts/up.sh and down.sh read it (and SKIFF_LAB_DIR for `skiff lab`)
DEFAULT_STATE_DIR = Path(os.environ.get("SKIFF_STATE_DIR") or "/var/lib/skiff")


@dataclass(frozen=True)
class Layout:
    state_dir: Path = DEFAULT_STATE_DIR
    advertise_address: str = ""  # default: the node's address
    secure_port: int = 6443
    node_ip: str = ""
    node_name: str = ""
    etcd_servers: str = ""  # empty: the apiserver runs an embedded etcd
    # The embedded etcd as one member of several (docs/multi-vm-lab.md); empty: alone.
    etcd_name: str = ""
    etcd_initial_cluster: str = ""
    etcd_initial_cluster_state: str = ""
    run_dir: Path = Path("/run/skiff")  # the runtime's socket, shims and pod namespaces
    cgroup_root: str = "/skiff"  # the runtime makes the pods' cgroups under it
    pod_log_dir: Path = Path("/var/log/pods")
    proxy_mode: str = "iptables"  # skiff proxy --proxy-mode: iptables or nftables
    # What preflight changed on the machine (sysctl -> value before), undone by reset.
    changed_sysctls: dict[str, str] = field(default_factory=dict)

    # -- paths ----------------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig the apiserver writes (every component uses it until
        each gets an identity of its own, issue 14)."""
        return self.state_dir / "admin.kubeconfig"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def runtime_socket(self) -> Path:
        return self.run_dir / "runtime.sock"

    @property
    def pid_file(self) -> Path:
        """The supervisor's pid: the one process `skiff down` signals."""
        return self.state_dir / "skiff.pid"

    @property
    def status_file(self) -> Path:
        """What the supervisor runs now (pids, since when, restarts), for `skiff status`."""
        return self.state_dir / "components.json"

    @property
    def server(self) -> str:
        return f"https://{self.advertise_address}:{self.secure_port}"

    # -- saved between commands ------------------------------------------------------------

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        (self.state_dir / "cluster.json").write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, state_dir: Path) -> Layout | None:
        """The layout `skiff up` saved in `state_dir`, or None when it never ran there."""
        try:
            data = json.loads((state_dir / "cluster.json").read_text())
        except (OSError, ValueError):
            return None
        for key in ("state_dir", "run_dir", "pod_log_dir"):
            data[key] = Path(data[key])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})
