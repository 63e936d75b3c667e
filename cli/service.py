"""`skiff install-service`: a systemd unit that brings this node back after a reboot.

The unit runs `skiff up --foreground`, so systemd supervises the supervisor
and the supervisor its components. As k3s's unit does, it uses
`KillMode=process`: stopping the service signals the supervisor alone, which
stops its components in order; the pods' shims keep running, so a restart of
skiff does not restart the pods (`skiff down` is what stops those).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from .layout import DEFAULT_STATE_DIR

UNIT = "skiff.service"


def unit_text(up_args: list[str]) -> str:
    """Pure: the unit file for `skiff up --foreground <up_args>`."""
    command = shlex.join([sys.executable, "-m", "cli", "up", "--foreground", *up_args])
    return f"""[Unit]
Description=skiff: a small Kubernetes (this node's control plane, runtime and kubelet)
Documentation=https://github.com/skiff/skiff#readme
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={command}
# The supervisor stops the components itself; the pods keep running (skiff down stops them).
KillMode=process
Restart=always
RestartSec=5s
TimeoutStopSec=120
Delegate=yes
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
"""


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="skiff install-service", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    for flag in ("--advertise-address", "--node-ip", "--node-name", "--etcd-servers"):
        p.add_argument(flag, default="", help=f"passed to skiff up ({flag})")
    p.add_argument("--unit-dir", type=Path, default=Path("/etc/systemd/system"))
    p.add_argument("--enable", action="store_true", help="also systemctl enable --now skiff")
    a = p.parse_args(argv)
    up_args = ["--state-dir", str(a.state_dir.resolve())]
    for flag in ("advertise_address", "node_ip", "node_name", "etcd_servers"):
        if getattr(a, flag):
            up_args += ["--" + flag.replace("_", "-"), getattr(a, flag)]
    path = a.unit_dir / UNIT
    try:
        a.unit_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(unit_text(up_args))
    except OSError as e:
        print(f"skiff install-service: cannot write {path}: {e.strerror} (run it as root)",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"skiff: wrote {path}")
    systemd = shutil.which("systemctl") and Path("/run/systemd/system").exists()
    if not systemd or a.unit_dir != Path("/etc/systemd/system"):
        print("then: systemctl daemon-reload && systemctl enable --now skiff")
        return 0
    subprocess.run(["systemctl", "daemon-reload"], check=False)
    if a.enable:
        r = subprocess.run(["systemctl", "enable", "--now", "skiff"], check=False)
        return r.returncode
    print("start it now and at every boot: systemctl enable --now skiff")
    return 0
