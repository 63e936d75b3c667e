"""The shim holds a container on its own: logs in CRI format, exit code and OOM recorded,
and it keeps going when whoever started it is gone."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.cgroups import remove_tree
from runtime.daemon import shim
from runtime.images.busybox import build_busybox
from runtime.images.rootfs import mount_rootfs, unmount_rootfs
from runtime.images.store import ImageStore
from runtime.runc import command as runc_command
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").exists(), reason="needs root and busybox-static"
)
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) (.*)$")


def shim_command(cdir: Path, state: Path) -> list[str]:
    """The shim as the daemon starts it, for the container recorded in `cdir`."""
    c = json.loads((cdir / "container.json").read_text())
    runc = [*runc_command(), "--root", str(state)]
    return shim.command(str(cdir), c["id"], c["log_path"], c["cgroup"], runc)


@pytest.fixture
def container(tmp_path: Path) -> Iterator[Any]:
    store = ImageStore(tmp_path / "images")
    image = build_busybox(store)
    parent = f"skiff-test-{uuid.uuid4().hex[:8]}"
    made: list[tuple[Path, str]] = []
    shims: list[subprocess.Popen[bytes]] = []
    state = tmp_path / "runc-state"

    def make(args: list[str], **resources: Any) -> Path:
        cid = f"c{uuid.uuid4().hex[:8]}"
        cdir = tmp_path / cid
        bundle = cdir / "bundle"
        bundle.mkdir(parents=True)
        made.append((cdir, cid))  # before the mount: the finalizer undoes it if what follows fails
        rootfs = mount_rootfs(image, bundle)
        subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
        config = json.loads((bundle / "config.json").read_text())
        config["root"] = {"path": str(rootfs), "readonly": False}
        config["process"].update(terminal=False, args=args, env=image.config["Env"])
        config["linux"]["cgroupsPath"] = f"/{parent}/{cid}"
        config["linux"]["resources"] = resources
        (bundle / "config.json").write_text(json.dumps(config))
        (cdir / "container.json").write_text(
            json.dumps(
                {"id": cid, "log_path": str(cdir / "log" / "0.log"), "cgroup": f"/{parent}/{cid}"}
            )
        )
        return cdir

    def shim(cdir: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            shim_command(cdir, state),
            cwd=ROOT,
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shims.append(proc)
        return proc

    def start(cdir: Path) -> None:
        cid = json.loads((cdir / "container.json").read_text())["id"]
        eventually(
            (cdir / "shim.pid").exists, 20, "the shim to create the container", interval=0.05
        )
        subprocess.run(
            [sys.executable, "-m", "runtime.runc.main", "--root", str(state), "start", cid],
            check=True,
            cwd=ROOT,
        )

    try:
        yield type(
            "Helpers",
            (),
            {"make": staticmethod(make), "shim": staticmethod(shim), "start": staticmethod(start)},
        )
    finally:
        # Each step for each container, whatever failed before it.
        with contextlib.ExitStack() as cleanup:
            cleanup.callback(shutil.rmtree, tmp_path / "images", ignore_errors=True)
            cleanup.callback(remove_tree, parent)
            for cdir, cid in made:
                cleanup.callback(unmount_rootfs, cdir / "bundle")
                cleanup.callback(kill_recorded_shim, cdir)
                cleanup.callback(
                    subprocess.run,
                    [*runc_command(), "--root", str(state), "delete", "--force", cid],
                    cwd=ROOT,
                    capture_output=True,
                    timeout=30,
                )
            for proc in shims:  # the shims this test started, by PID (reaped, too)
                cleanup.callback(stop_process, proc)


def kill_recorded_shim(cdir: Path) -> None:
    """A shim started by another process (the launcher test) is known by its pid file."""
    pid_file = cdir / "shim.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def wait_exit(cdir: Path, timeout: float = 30) -> dict[str, Any]:
    eventually((cdir / "exit.json").exists, timeout, "the exit recorded", interval=0.05)
    return json.loads((cdir / "exit.json").read_text())


def test_logs_in_cri_format_and_exit_code(container: Any) -> None:
    cdir = container.make(["sh", "-c", "echo out-line; echo err-line >&2; printf partial; exit 3"])
    container.shim(cdir)
    container.start(cdir)
    record = wait_exit(cdir)
    assert record["exit_code"] == 3 and record["oom_killed"] is False
    lines = (cdir / "log" / "0.log").read_text().splitlines()
    parsed = [CRI_LINE.match(line).groups() for line in lines]  # type: ignore[union-attr]
    assert ("stdout", "F", "out-line") in parsed
    assert ("stderr", "F", "err-line") in parsed
    assert ("stdout", "P", "partial") in parsed


def test_oom_kill_is_recorded(container: Any) -> None:
    cdir = container.make(
        ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a)"],
        memory={"limit": 32 * 1024 * 1024},
    )
    container.shim(cdir)
    container.start(cdir)
    record = wait_exit(cdir)
    assert record["oom_killed"] is True
    assert record["exit_code"] != 0


def test_container_outlives_the_process_that_started_its_shim(container: Any) -> None:
    cdir = container.make(["sh", "-c", "sleep 1; echo still-here; exit 5"])
    launcher = subprocess.run(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; subprocess.Popen(sys.argv[1:], start_new_session=True,"
            " stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)",
            *shim_command(cdir, cdir.parent / "runc-state"),
        ],
        cwd=ROOT,
        timeout=30,
    )
    assert launcher.returncode == 0  # the "daemon" is gone now
    container.start(cdir)
    record = wait_exit(cdir)
    assert record["exit_code"] == 5
    assert "still-here" in (cdir / "log" / "0.log").read_text()
