"""The same OCI bundles run by skiff-runc and by runc: what a user would check inside.

Each test builds a busybox rootfs in a temporary directory (from Debian's
busybox-static), writes a config.json (from `runc spec`, adapted), and removes
the containers, their state and their cgroups afterwards, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.cgroups import open_cgroup, remove_tree
from runtime.runc import command as runc_command
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[3]
SKIFF_RUNC = runc_command()  # the launcher users get as .venv/bin/skiff-runc
APPLETS = ("sh", "echo", "hostname", "ps", "cat", "ls", "ip", "sleep", "head", "tr", "wc", "true")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="needs busybox-static"),
]


# What crun 1.8 (Debian 12) answers on a machine with hybrid cgroups (v1 controllers
# beside a v2 mount) while a controller is still bound to the v2 mount. The
# `v1_cgroups_for_crun` fixture (tests/conftest.py) moves such controllers to v1
# hierarchies of their own for the test, so crun runs; this stays as the reason a test
# gives should a controller be in use on the v2 mount and impossible to move.
CRUN_HYBRID = "cgroups in hybrid mode not supported"


@pytest.fixture(params=["skiff-runc", "runc", "crun"])
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    if request.param != "skiff-runc" and not shutil.which(request.param):
        pytest.skip(f"{request.param} is not installed")
    if request.param == "crun":
        request.getfixturevalue("v1_cgroups_for_crun")
    state = tmp_path / "state"
    base = SKIFF_RUNC if request.param == "skiff-runc" else [request.param]
    yield [*base, "--root", str(state)]


def skip_where_unsupported(runtime: list[str], stderr: str) -> None:
    if runtime[0] == "crun" and CRUN_HYBRID in stderr:
        pytest.skip(f"crun on this machine: {CRUN_HYBRID}")


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[Path]:
    b = tmp_path / "bundle"
    (b / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", b / "rootfs" / "bin" / "busybox")
    for applet in APPLETS:
        (b / "rootfs" / "bin" / applet).symlink_to("busybox")
    for d in ("proc", "dev", "sys", "tmp"):
        (b / "rootfs" / d).mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(b)], check=True)
    cgroup_parent = f"skiff-test-{uuid.uuid4().hex[:8]}"
    config = json.loads((b / "config.json").read_text())
    config["process"]["terminal"] = False
    config["hostname"] = "boxy"
    config["linux"]["cgroupsPath"] = f"/{cgroup_parent}/ctr"
    (b / "config.json").write_text(json.dumps(config))
    try:
        yield b
    finally:
        # A container a failed test left running dies with its cgroup tree.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = {
                int(pid)
                for procs in Path("/sys/fs/cgroup").glob(f"*/{cgroup_parent}/**/cgroup.procs")
                for pid in procs.read_text().split()
            }
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        remove_tree(cgroup_parent)  # in every hierarchy: runc also uses the v2 one here


def configure(bundle: Path, args: list[str], **linux: Any) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = args
    config["linux"].setdefault("resources", {}).update(linux)
    (bundle / "config.json").write_text(json.dumps(config))


def run(
    runtime: list[str], bundle: Path, cid: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*runtime, "run", "--bundle", str(bundle), cid],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    skip_where_unsupported(runtime, result.stderr)
    return result


def test_pid1_hostname_isolation_and_exit_code(runtime: list[str], bundle: Path) -> None:
    configure(
        bundle,
        [
            "sh",
            "-c",
            "echo pid=$$; hostname; ps | wc -l; ls /; "
            "ip link add x type dummy 2>/dev/null && echo NET_ADMIN; exit 7",
        ],
    )
    result = run(runtime, bundle, f"t-{uuid.uuid4().hex[:6]}")
    lines = result.stdout.split()
    assert result.returncode == 7, result.stderr
    assert lines[0] == "pid=1"
    assert lines[1] == "boxy"
    assert int(lines[2]) <= 5  # ps header, sh, ps, wc: no host processes
    assert "work" not in lines and "bin" in lines  # its own root, not the host's
    assert "NET_ADMIN" not in result.stdout  # capabilities dropped


def test_memory_hog_is_oom_killed(runtime: list[str], bundle: Path, tmp_path: Path) -> None:
    """The memory limit holds: the kernel's OOM killer kills the hog inside the
    container's cgroup (its OOM count says so), and the hog's work never finishes."""
    configure(
        bundle,
        ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
        memory={"limit": 32 * 1024 * 1024},
    )
    cid = f"m-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "out.log"
    try:
        # create + start, not run: the container's cgroup lives until `delete`, so its
        # OOM count can be read after the container has stopped.
        with open(out, "w") as log:
            created = subprocess.run(
                [*runtime, "create", "--bundle", str(bundle), cid],
                stdout=log,
                stderr=log,
                timeout=60,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
            )
        skip_where_unsupported(runtime, out.read_text())
        assert created.returncode == 0, out.read_text()
        subprocess.run([*runtime, "start", cid], check=True, cwd=ROOT, timeout=30)
        eventually(
            lambda: state(runtime, cid)["status"] == "stopped", 60, "the hog to stop", interval=0.05
        )
        cgroup = json.loads((bundle / "config.json").read_text())["linux"]["cgroupsPath"]
        assert open_cgroup(cgroup).oom_killed() >= 1  # the kernel's own count
        assert "survived" not in out.read_text()
    finally:
        subprocess.run(
            [*runtime, "delete", "--force", cid], cwd=ROOT, timeout=30, capture_output=True
        )


def state(runtime: list[str], cid: str) -> dict[str, Any]:
    out = subprocess.run(
        [*runtime, "state", cid], capture_output=True, text=True, cwd=ROOT, timeout=30
    )
    return json.loads(out.stdout)


def test_create_start_kill_delete(runtime: list[str], bundle: Path, tmp_path: Path) -> None:
    configure(bundle, ["sleep", "100"])
    cid = f"k-{uuid.uuid4().hex[:6]}"
    pid_file = tmp_path / "pid"
    log = tmp_path / "create.log"
    try:
        # The container inherits create's stdout and stderr: give it a file, not a pipe
        # (a pipe would stay open, and `run` wait, for as long as the container lives).
        with open(log, "w") as out:
            created = subprocess.run(
                [*runtime, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid],
                stdout=out,
                stderr=out,
                timeout=30,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
            )
        skip_where_unsupported(runtime, log.read_text())
        assert created.returncode == 0, log.read_text()

        assert state(runtime, cid)["status"] == "created"
        assert state(runtime, cid)["pid"] == int(pid_file.read_text())
        subprocess.run([*runtime, "start", cid], check=True, cwd=ROOT, timeout=30)
        assert state(runtime, cid)["status"] == "running"
        # exec joins the running container: its hostname, its pid namespace, its exit code.
        inside = subprocess.run(
            [*runtime, "exec", cid, "sh", "-c", "hostname; ps"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert inside.returncode == 0, inside.stderr
        assert inside.stdout.splitlines()[0] == "boxy"
        assert any(
            line.split()[:1] == ["1"] and "sleep" in line for line in inside.stdout.splitlines()
        )
        failing = subprocess.run(
            [*runtime, "exec", cid, "sh", "-c", "exit 3"],
            cwd=ROOT,
            timeout=30,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )
        assert failing.returncode == 3
        subprocess.run([*runtime, "kill", cid, "KILL"], check=True, cwd=ROOT, timeout=30)
        eventually(
            lambda: state(runtime, cid)["status"] == "stopped",
            10,
            lambda: f"the container stopped: {state(runtime, cid)}",
            interval=0.05,
        )
    finally:
        subprocess.run(
            [*runtime, "delete", "--force", cid], cwd=ROOT, timeout=30, capture_output=True
        )
    gone = subprocess.run([*runtime, "state", cid], capture_output=True, text=True, cwd=ROOT)
    assert gone.returncode != 0


def test_process_settings(runtime: list[str], bundle: Path) -> None:
    """User and groups, working directory, environment, rlimits and OOM score."""
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(
        args=[
            "sh",
            "-c",
            "id -u; id -g; id -G; pwd; echo $GREETING; ulimit -n; ulimit -Hn; "
            "cat /proc/self/oom_score_adj",
        ],
        user={"uid": 1000, "gid": 1000, "additionalGids": [50, 60]},
        cwd="/tmp",
        env=["PATH=/bin", "GREETING=hello"],
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}],
        oomScoreAdj=500,
    )
    (bundle / "config.json").write_text(json.dumps(config))
    for applet in ("id", "pwd"):
        (bundle / "rootfs" / "bin" / applet).symlink_to("busybox")
    result = run(runtime, bundle, f"p-{uuid.uuid4().hex[:6]}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [
        "1000",
        "1000",
        "1000 50 60",
        "/tmp",
        "hello",
        "256",
        "512",
        "500",
    ]


ESCAPE_C = r"""
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
/* The classic chroot escape: chroot into a subdirectory while the working
   directory stays outside it, climb with "..", chroot again. In a plain chroot
   this reaches the real root; after pivot_root with the old root detached, the
   top it reaches is the container's own. */
int main(int argc, char **argv) {
    if (mount("tmpfs", "/mnt", "tmpfs", 0, "") == 0) puts("MOUNTED");
    mkdir("/tmp/jail", 0755);
    if (chroot("/tmp/jail") != 0) { perror("chroot"); return 2; }
    for (int i = 0; i < 64; i++) chdir("..");
    if (chroot(".") != 0) { perror("chroot ."); return 2; }
    puts(access(argv[1], F_OK) == 0 ? "ESCAPED" : "contained");
    return 0;
}
"""


def test_mount_and_chroot_escape_fail(runtime: list[str], bundle: Path, tmp_path: Path) -> None:
    """With Docker's default capabilities (CAP_SYS_CHROOT kept, CAP_SYS_ADMIN not)."""
    libc = (
        subprocess.run(
            ["gcc", "-print-file-name=libc.a"], capture_output=True, text=True, check=False
        )
        if shutil.which("gcc")
        else None
    )
    if libc is None or not Path(libc.stdout.strip()).is_absolute():
        # scripts/install.sh installs both (Debian's gcc and libc6-dev).
        pytest.skip("needs gcc and a static libc (libc6-dev): run scripts/install.sh")
    (tmp_path / "escape.c").write_text(ESCAPE_C)
    subprocess.run(
        [
            "gcc",
            "-static",
            "-O",
            "-o",
            str(bundle / "rootfs" / "escape"),
            str(tmp_path / "escape.c"),
        ],
        check=True,
    )
    marker = tmp_path / f"host-only-{uuid.uuid4().hex}"  # exists on the host, not inside
    marker.write_text("host")
    (bundle / "rootfs" / "mnt").mkdir()
    config = json.loads((bundle / "config.json").read_text())
    config["root"]["readonly"] = False
    config["process"]["args"] = ["/escape", str(marker)]
    caps = ["CAP_SYS_CHROOT", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL"]
    config["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    (bundle / "config.json").write_text(json.dumps(config))
    result = run(runtime, bundle, f"e-{uuid.uuid4().hex[:6]}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["contained"]  # no mount, no way out
    # The same program on the host, chrooted the plain way, does escape: the test can fail.
    jail = tmp_path / "jail-root"
    (jail / "tmp").mkdir(parents=True)
    shutil.copy(bundle / "rootfs" / "escape", jail / "escape")
    (jail / "mnt").mkdir()
    plain = subprocess.run(
        ["unshare", "--mount", "chroot", str(jail), "/escape", str(marker)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "ESCAPED" in plain.stdout, plain.stderr


def test_terminal_through_a_console_socket(
    runtime: list[str], bundle: Path, tmp_path: Path
) -> None:
    """`process.terminal`: the process gets a terminal of the container's own devpts, and
    its master side is sent over --console-socket (how containerd and CRI-O get it)."""
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(terminal=True, args=["sh", "-c", "tty; echo hello; exit 3"])
    (bundle / "config.json").write_text(json.dumps(config))
    (bundle / "rootfs" / "bin" / "tty").symlink_to("busybox")
    cid = f"t-{uuid.uuid4().hex[:6]}"
    path = str(tmp_path / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        server.settimeout(30)
        with open(tmp_path / "create.log", "w") as log:
            created = subprocess.Popen(
                [*runtime, "create", "--console-socket", path, "--bundle", str(bundle), cid],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
        try:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                created.wait(timeout=30)
                skip_where_unsupported(runtime, (tmp_path / "create.log").read_text())
                raise
            with conn:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            if created.wait(timeout=30) != 0:
                skip_where_unsupported(runtime, (tmp_path / "create.log").read_text())
            assert created.returncode == 0, (tmp_path / "create.log").read_text()
            master = fds[0]
            subprocess.run([*runtime, "start", cid], check=True, cwd=ROOT, timeout=30)
            output = b""
            while True:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the container's side is closed
                    break
                if not data:
                    break
                output += data
            os.close(master)
            text = output.decode().replace("\r", "")
            assert text.splitlines()[:2] == ["/dev/pts/0", "hello"]
        finally:
            subprocess.run([*runtime, "delete", "--force", cid], cwd=ROOT, capture_output=True)
    # `run` without a console socket relays the terminal to its own, as runc does (runc
    # insists on a terminal of its own to relay to: `script` gives it one).
    command = shlex.join([*runtime, "run", "--bundle", str(bundle), f"r-{uuid.uuid4().hex[:6]}"])
    result = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "/dev/pts/0" in result.stdout and "hello" in result.stdout
