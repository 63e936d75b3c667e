"""`skiff up`: this machine becomes a one-node cluster (or its first node).

In order: choose and check the node's name and address, run the preflight
checks (fixing what is safe to fix), save the layout, then hand over to the
supervisor (supervisor.py), which starts the components of the table in
components.py one after the other and keeps them running. Without
`--foreground` the supervisor is a detached process of its own (pid in
`<state-dir>/skiff.pid`) and `up` returns once the node is Ready; with it, `up`
is the supervisor (what the systemd unit of `skiff install-service` runs).
Running `up` again while the supervisor runs only says what is up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import node_identity, preflight
from .components import COMPONENTS
from .layout import DEFAULT_STATE_DIR, Layout
from .status import print_status, supervisor_pid
from .supervisor import Refused, Supervisor, read_status

KUBELET_PORT = 10250
UP_TIMEOUT = 180.0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="skiff up", description=__doc__.split("\n\n")[0])
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    p.add_argument("--advertise-address", default=None,
                   help="the address clients and other nodes use for the API (default: the "
                   "node's address)")  # fmt: skip
    p.add_argument("--secure-port", type=int, default=None, help="default: 6443")
    p.add_argument("--node-ip", default=None, help="default: the default route's source address")
    p.add_argument("--node-name", default=None, help="default: the host name")
    p.add_argument("--etcd-servers", default=None,
                   help="comma-separated URLs of an existing etcd cluster (default: an "
                   "embedded etcd with its data in the state dir)")  # fmt: skip
    p.add_argument("--etcd-name", default=None,
                   help="this machine's member of a multi-member embedded etcd (default: the "
                   "node name)")  # fmt: skip
    p.add_argument("--etcd-initial-cluster", default=None,
                   help="every embedded etcd member, name=https://ip:2380,...; the machines "
                   "share pki/ (see docs/multi-vm-lab.md)")  # fmt: skip
    p.add_argument(
        "--etcd-initial-cluster-state",
        default=None,
        choices=["new", "existing"],
        help="new: the members start together; existing: join a running cluster",
    )
    p.add_argument("--proxy-mode", default=None, choices=["iptables", "nftables"],
                   help="how the proxy programs Services (default: iptables, or as at the "
                   "last skiff up)")  # fmt: skip
    p.add_argument("--foreground", action="store_true",
                   help="supervise from this process (systemd) instead of detaching")  # fmt: skip
    # Where the node's runtime files go; other values let several skiffs share a machine
    # (the tests run one inside a network namespace of their own).
    p.add_argument("--run-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--cgroup-root", default=None, help=argparse.SUPPRESS)
    p.add_argument("--pod-log-dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--supervisor", action="store_true", help=argparse.SUPPRESS)  # the detached one
    return p


def choose_layout(a: argparse.Namespace) -> tuple[Layout, list[str]]:
    """The layout: each flag given, else what the last `up` in this state dir used, else
    the default; and a line saying how the node's name and address were chosen.
    Raises Refused when they cannot be used on this machine."""
    state_dir = a.state_dir.resolve()
    saved = Layout.load(state_dir)
    flags = {
        "advertise_address": a.advertise_address,
        "secure_port": a.secure_port,
        "node_name": a.node_name,
        "node_ip": a.node_ip,
        "etcd_servers": a.etcd_servers,
        "etcd_name": a.etcd_name,
        "etcd_initial_cluster": a.etcd_initial_cluster,
        "etcd_initial_cluster_state": a.etcd_initial_cluster_state,
        "run_dir": a.run_dir and a.run_dir.resolve(),
        "cgroup_root": a.cgroup_root,
        "pod_log_dir": a.pod_log_dir and a.pod_log_dir.resolve(),
        "proxy_mode": a.proxy_mode,
    }
    given = {name: value for name, value in flags.items() if value is not None}
    layout = dataclasses.replace(saved or Layout(), state_dir=state_dir, **given)
    if a.node_ip:
        how = "from --node-ip"
    elif layout.node_ip:
        how = f"as at the last skiff up, in {state_dir}/cluster.json"
    else:
        node_ip, how = node_identity.default_node_ip()
        layout = dataclasses.replace(layout, node_ip=node_ip)
    if not layout.node_name:
        layout = dataclasses.replace(layout, node_name=node_identity.default_node_name())
    if not layout.advertise_address:
        layout = dataclasses.replace(layout, advertise_address=layout.node_ip)
    why = node_identity.check_flags(
        layout.node_name, layout.node_ip, node_identity.local_addresses()
    )
    if why:
        raise Refused(why)
    return layout, [f"node {layout.node_name}, address {layout.node_ip} ({how})"]


def run_preflight(layout: Layout) -> Layout | None:
    """Print every check; the layout with what was fixed recorded, or None to stop."""
    ports = (layout.secure_port, KUBELET_PORT)
    findings = preflight.decide(preflight.gather(ports), ports)
    if os.geteuid() == 0:
        findings, changed = preflight.fix(findings)
    else:
        changed = {}
    print("skiff: preflight")
    for f in findings:
        print("  " + f.line())
    if preflight.failed(findings):
        print("skiff: fix the failures above, then run skiff up again", file=sys.stderr)
        return None
    # Keep the value from before the first change, so reset restores the machine's own.
    kept = {**changed, **layout.changed_sysctls}
    return dataclasses.replace(layout, changed_sysctls=kept)


def kubectl_command() -> str:
    """The kubectl to suggest: the one on PATH when it is 1.30 or later (skiff reports
    v1.32; Debian's kubernetes-client is 1.20, far outside kubectl's version skew), else
    the current one scripts/install.sh put beside this Python."""
    beside = Path(sys.executable).parent / "kubectl"
    found = shutil.which("kubectl")
    if found:
        r = subprocess.run([found, "version", "--client", "-o", "json"], capture_output=True,
                           text=True, check=False)  # fmt: skip
        try:
            minor = int(json.loads(r.stdout)["clientVersion"]["minor"].rstrip("+"))
        except (ValueError, KeyError, TypeError):
            minor = 0
        if minor >= 30:
            return "kubectl"
    return str(beside) if beside.exists() else "kubectl"


def closing_message(layout: Layout) -> str:
    kubectl = kubectl_command()
    return f"""
skiff is up: node {layout.node_name} is Ready, the Kubernetes API is at {layout.server}
(logs in {layout.logs}/, one file per component; skiff status shows them all)

  export KUBECONFIG={layout.kubeconfig}
  {kubectl} get nodes -o wide
  {kubectl} run hello --image=busybox --image-pull-policy=IfNotPresent -- \\
      sh -c 'while true; do date; sleep 5; done'
  {kubectl} get pods -o wide -w
  {kubectl} logs -f hello

busybox is the image skiff built here from busybox-static: it needs no registry.
Stop it with: skiff down   (the cluster's state stays in {layout.state_dir}; skiff reset
removes it and everything skiff made on this machine)
"""


def supervise(layout: Layout, *, announce: bool) -> int:
    """Be the supervisor: start everything, keep it running until a signal says stop."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if announce:  # --foreground: to stderr (systemd's journal) and to the usual log file
        layout.logs.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(layout.logs / "supervisor.log")
        to_file.setFormatter(logging.getLogger().handlers[0].formatter)
        logging.getLogger().addHandler(to_file)
    sup = Supervisor(layout, COMPONENTS)
    sup.handle_signals()
    sup.write_status()  # replaces what an earlier supervisor left
    layout.pid_file.write_text(f"{os.getpid()}\n")
    code = 0
    try:
        sup.start_all(timeout=UP_TIMEOUT)
        if announce and not sup.stop_requested:
            print(closing_message(layout), flush=True)
        sup.run_until(lambda: False, None, "")
    except (Refused, TimeoutError, OSError) as e:
        print(f"skiff up: {e}", file=sys.stderr, flush=True)
        code = 1
    finally:
        sup.stop_all(remove_pods=sup.stop_requested == signal.SIGUSR1)
        if layout.pid_file.read_text().strip() == str(os.getpid()):
            layout.pid_file.unlink()
    return code


def detach(layout: Layout, argv: list[str]) -> int:
    """Start the supervisor as a process of its own and wait until the node is Ready."""
    layout.logs.mkdir(parents=True, exist_ok=True)
    log_path = layout.logs / "supervisor.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--supervisor", *argv],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    print(f"skiff: supervisor started (pid {proc.pid}, log {log_path})")
    deadline = time.monotonic() + UP_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = log_path.read_text(errors="replace").splitlines()
            refusals = [line for line in lines[-30:] if line.startswith("skiff up: ")]
            if refusals:  # something the user must fix: the one line that says what
                print(refusals[-1], file=sys.stderr)
            else:
                print("skiff up: the supervisor stopped; the end of its log:", file=sys.stderr)
                print("\n".join(lines[-15:]), file=sys.stderr)
            return 1
        supervisor = read_status(layout).get("supervisor") or {}
        if supervisor.get("pid") == proc.pid and supervisor.get("ready"):  # all were ready
            print(closing_message(layout))
            return 0
        ours = supervisor.get("pid") == proc.pid
        why = (supervisor.get("waiting") or "starting") if ours else ""
        if why and why != last:
            print(f"skiff: waiting: {why}")
            last = why
        time.sleep(0.1)  # `up` returns the moment the supervisor says all are ready
    print(f"skiff up: the node was not Ready within {UP_TIMEOUT:.0f}s: {last} "
          f"(see {layout.logs}/)", file=sys.stderr)  # fmt: skip
    return 1


def main(argv: list[str]) -> int:
    a = parser().parse_args(argv)
    saved = Layout.load(a.state_dir.resolve())
    if a.supervisor and saved is not None:  # detached: `up` checked and saved everything
        return supervise(saved, announce=False)
    try:
        layout, notes = choose_layout(a)
    except Refused as e:
        print(f"skiff up: {e}", file=sys.stderr)
        return 1
    pid = supervisor_pid(layout)
    if pid:
        print(f"skiff is already up (supervisor pid {pid}):")
        print_status(layout)
        return 0
    for note in notes:
        print(f"skiff: {note}")
    checked = run_preflight(layout)
    if checked is None:
        return 1
    checked.save()
    if a.foreground:
        return supervise(checked, announce=True)
    return detach(checked, ["--state-dir", str(checked.state_dir)])
