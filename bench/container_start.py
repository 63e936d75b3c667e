"""Container start latency: skiff-runc beside runc and crun, on one busybox bundle,
and the same through the runtime daemon, with pod sandbox set-up and tear-down.

    .venv/bin/python bench/container_start.py [--runs 100]

CLI path: each run is `<runtime> run` of `/bin/true` (create, start, wait,
delete), timed from the command's start to its exit, the runtimes taking turns
so that they see the same machine. crun is left out where it refuses the
cgroup layout (crun 1.8 on a hybrid v1/v2 machine) and the reason is printed.

Daemon path: `skiff runtime` in a throwaway network namespace (no route out),
driven over its socket as the kubelet will: CreateContainer, StartContainer,
ContainerStatus until exited, RemoveContainer, for `/bin/true` in the busybox
image, inside one pod sandbox; and RunPodSandbox / StopPodSandbox +
RemovePodSandbox (network namespace, veth, address) on their own. Everything
started is removed at the end, also on failure or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.cgroups import remove_tree  # noqa: E402
from runtime.runc import command as runc_command  # noqa: E402


def make_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", bundle / "rootfs" / "bin" / "busybox")
    (bundle / "rootfs" / "bin" / "true").symlink_to("busybox")
    for d in ("proc", "dev", "sys", "tmp"):
        (bundle / "rootfs" / d).mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    config["linux"]["cgroupsPath"] = f"/skiff-bench-{uuid.uuid4().hex[:8]}/ctr"
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def cleanup_cgroups(bundle: Path) -> None:
    parent = json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"].split("/")[1]
    remove_tree(parent)


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(values) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms"


def daemon_path(runs: int) -> None:
    import grpc

    from proto import runtime_pb2 as pb
    from proto import runtime_pb2_grpc as pb_grpc
    from runtime.images.busybox import build_busybox
    from runtime.images.store import ImageStore

    node = f"skiff-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", node], check=True)
    base = Path(tempfile.mkdtemp(prefix="skiff-bench-daemon-"))
    build_busybox(ImageStore(base / "images"))
    socket = base / "runtime.sock"
    daemon = subprocess.Popen(
        [
            # nsenter rather than `ip netns exec`, which would hide /sys/fs/cgroup
            *["nsenter", f"--net=/run/netns/{node}", sys.executable, "-m", "runtime.daemon"],
            *["--socket", str(socket), "--state-dir", str(base / "state")],
            *["--run-dir", str(base / "run"), "--image-root", str(base / "images")],
            *["--pod-cidr", "10.244.7.0/24", "--cgroup-root", f"/{node}"],
        ],
        cwd=ROOT,
        stdout=open(base / "daemon.log", "ab"),
        stderr=subprocess.STDOUT,
    )
    api = pb_grpc.RuntimeServiceStub(grpc.insecure_channel(f"unix://{socket}"))
    try:
        while not socket.exists():
            if daemon.poll() is not None:
                raise SystemExit((base / "daemon.log").read_text())
            time.sleep(0.05)

        def sandbox_config(i: int) -> Any:
            return pb.PodSandboxConfig(
                metadata=pb.PodSandboxMetadata(name=f"b{i}", uid=uuid.uuid4().hex, namespace="b"),
                hostname=f"b{i}",
            )

        up: list[float] = []
        down: list[float] = []
        for i in range(runs):
            t0 = time.perf_counter()
            sid = api.RunPodSandbox(
                pb.RunPodSandboxRequest(config=sandbox_config(i))
            ).pod_sandbox_id
            t1 = time.perf_counter()
            api.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
            api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
            up.append(t1 - t0)
            down.append(time.perf_counter() - t1)
        sid = api.RunPodSandbox(pb.RunPodSandboxRequest(config=sandbox_config(-1))).pod_sandbox_id
        starts: list[float] = []
        for i in range(runs):
            config = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name=f"c{i}"),
                image=pb.ImageSpec(image="busybox"),
                command=["/bin/true"],
            )
            t0 = time.perf_counter()
            cid = api.CreateContainer(
                pb.CreateContainerRequest(pod_sandbox_id=sid, config=config)
            ).container_id
            api.StartContainer(pb.StartContainerRequest(container_id=cid))
            while (
                api.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status.state
                != pb.CONTAINER_EXITED
            ):
                time.sleep(0.001)
            api.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
            starts.append(time.perf_counter() - t0)
        print(f"\nthrough `skiff runtime` (gRPC), {runs} runs each\n")
        print(f"  container create+start+exit+remove  {percentiles(starts)}")
        print(f"  pod sandbox set-up (netns, veth, IP) {percentiles(up)}")
        print(f"  pod sandbox stop + remove            {percentiles(down)}")
    finally:
        try:
            for s in api.ListPodSandbox(pb.ListPodSandboxRequest()).items:
                api.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=s.id))
        except grpc.RpcError:
            pass
        daemon.terminate()
        daemon.wait(timeout=20)
        subprocess.run(["ip", "netns", "del", node], check=False)
        remove_tree(node)  # the benchmark's own cgroup root
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=100)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        base = Path(tmp)
        bundle = make_bundle(base)
        runtimes = {
            "skiff-runc": [*runc_command(), "--root", str(base / "s")],
            "runc": ["runc", "--root", str(base / "r")],
        }
        if shutil.which("crun"):
            runtimes["crun"] = ["crun", "--root", str(base / "c")]
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        skipped: dict[str, str] = {}
        try:
            for i in range(args.runs):
                for name, cmd in runtimes.items():
                    if name in skipped:
                        continue
                    t0 = time.perf_counter()
                    r = subprocess.run(
                        [*cmd, "run", "--bundle", str(bundle), f"b{i}"],
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                        stdin=subprocess.DEVNULL,
                    )
                    if r.returncode != 0:
                        skipped[name] = (r.stderr.strip().splitlines() or ["failed"])[-1]
                        continue
                    times[name].append(time.perf_counter() - t0)
        finally:
            cleanup_cgroups(bundle)
        print(f"machine: {os.cpu_count()} cpus; {args.runs} runs of /bin/true each\n")
        for name, values in times.items():
            if name in skipped or not values:
                print(f"  {name:<11} skipped: {skipped.get(name, 'no runs')}")
                continue
            print(f"  {name:<11} {percentiles(values)}")
    daemon_path(args.runs)


if __name__ == "__main__":
    main()
