"""The pure pieces behind Attach, PortForward, ListContainerStats and pod resources:
the shim's message format, containerd's wording of a failed port-forward, the working
set as cAdvisor computes it on both cgroup layouts, and pod limits from CRI fields."""

from __future__ import annotations

from pathlib import Path

from proto import runtime_pb2 as pb
from runtime.cgroups import CgroupV1, CgroupV2, Resources
from runtime.daemon.attach import first_frames, input_frames
from runtime.daemon.port_forward import failure_message
from runtime.daemon.server import pod_resources
from runtime.daemon.shim import frame

MiB = 1024 * 1024


def test_attach_messages() -> None:
    assert frame(b"I", b"hi") == b"I\x00\x00\x00\x02hi"
    first = pb.AttachInput(container_id="c", stdin=True, stdout=True, stdin_data=b"x")
    assert first_frames(first) == frame(b"A", bytes([1 | 2])) + frame(b"I", b"x")
    resize = pb.AttachInput(resize_width=120, resize_height=40, stdin_close=True)
    assert input_frames(resize) == frame(b"R", bytes([0, 120, 0, 40])) + frame(b"C")
    assert input_frames(pb.AttachInput(resize_width=120)) == b""  # half a size: nothing


def test_port_forward_failure_is_worded_as_containerd_does() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    assert failure_message(80, "abc", refused) == (
        "failed to connect to localhost:80 inside namespace 'abc': connection refused"
    )
    assert failure_message(80, "abc", TimeoutError("timed out")).endswith(": connection timed out")


def test_working_set_is_usage_less_inactive_file_v1(tmp_path: Path) -> None:
    memory = tmp_path / "memory" / "pod" / "c"
    memory.mkdir(parents=True)
    (memory / "memory.usage_in_bytes").write_text(str(100 * MiB))
    (memory / "memory.stat").write_text(
        f"cache {30 * MiB}\nrss 1\ntotal_rss {60 * MiB}\ntotal_inactive_file {25 * MiB}\n"
    )
    stats = CgroupV1("/pod/c", tmp_path).memory_stats()
    assert stats == {"usage": 100 * MiB, "working_set": 75 * MiB, "rss": 60 * MiB}


def test_working_set_is_usage_less_inactive_file_v2(tmp_path: Path) -> None:
    cg = tmp_path / "pod" / "c"
    cg.mkdir(parents=True)
    (cg / "memory.current").write_text(str(10 * MiB))
    (cg / "memory.stat").write_text(f"anon {4 * MiB}\nfile {6 * MiB}\ninactive_file {12 * MiB}\n")
    stats = CgroupV2("/pod/c", tmp_path).memory_stats()
    assert stats == {"usage": 10 * MiB, "working_set": 0, "rss": 4 * MiB}  # never below 0


def test_pod_resources_from_cri_fields() -> None:
    r = pb.LinuxContainerResources(cpu_quota=50_000, cpu_period=100_000, memory_limit_in_bytes=MiB)
    assert pod_resources(r) == Resources(cpu_quota=50_000, memory_limit=MiB)
    assert pod_resources(pb.LinuxContainerResources()) == Resources()  # nothing limited
