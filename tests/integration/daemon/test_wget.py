"""busybox `wget` in a pod, as users of a real busybox pod run it: a page from busybox
httpd in the same pod by the pod's address, by loopback and by a name from the pod's
/etc/hosts, and `-T`/`--timeout` bounding a server that never answers when wget is
run as a command (`kubectl exec ... -- wget -T 2 ...`, a container's command). Debian
12's busybox alone dies with SIGSEGV on `-T`: the image's /bin/wget bounds the download,
and in the pod's shell, which runs the applet itself, `-T` no longer crashes."""

from __future__ import annotations

from typing import Any

from proto import runtime_pb2 as pb
from tests.integration.daemon.test_portforward import HTTPD, wait_listening

# httpd on every address of the pod (the port-forward tests' server is on loopback only)
SERVER = HTTPD.replace("127.0.0.1:8080", "8080")


def run_in(node: Any, cid: str, script: str) -> tuple[int, str]:
    """Exit code and output of `script`, run by the pod's shell."""
    return run_cmd(node, cid, ["sh", "-c", script])


def run_cmd(node: Any, cid: str, cmd: list[str]) -> tuple[int, str]:
    """Exit code and output of `cmd`, executed as it is (no shell)."""
    out = node.api.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=30), timeout=60)
    return out.exit_code, out.stdout.decode() + out.stderr.decode()


def test_wget_fetches_a_page_from_the_pod(node: Any) -> None:
    sid = node.sandbox("web")
    ip = node.api.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.ip
    assert ip.startswith("10.244.7.")
    server = node.run(sid, "httpd", ["sh", "-c", SERVER])
    wait_listening(node, server, 8080)
    client = node.run(sid, "client", ["sleep", "3600"])
    for url in (f"http://{ip}:8080/", "http://127.0.0.1:8080/", "http://web:8080/"):
        assert run_in(node, client, f"wget -qO- {url}") == (0, "hello-from-the-pod\n"), url
    # The forms users bound their checks with: no crash, the same page.
    for options in ("-T 2 -qO-", "-qT2 -O -", "--timeout=2 -q -O-", "-q --timeout 2 -O-"):
        code, out = run_cmd(node, client, ["wget", *options.split(), f"http://{ip}:8080/"])
        assert (code, out) == (0, "hello-from-the-pod\n"), options
    # Typed in the pod's shell (busybox's sh runs its own applet): no crash either.
    for options in ("-T 2 -qO-", "-qT2 -O -"):
        code, out = run_in(node, client, f"wget {options} http://{ip}:8080/")
        assert (code, out) == (0, "hello-from-the-pod\n"), options


def test_wget_timeout_ends_a_download_that_never_comes(node: Any) -> None:
    sid = node.sandbox("silent")
    # A listener that accepts and never answers.
    silent = node.run(sid, "silent", ["sh", "-c", "sleep 3600 | nc -l -p 8081"])
    wait_listening(node, silent, 8081)
    client = node.run(sid, "client", ["sleep", "3600"])
    code, out = run_cmd(node, client, "wget -q -T 1 -O- http://127.0.0.1:8081/".split())
    assert code == 1, out  # not 139: no SIGSEGV
    assert "wget: download timed out" in out
    code, out = run_cmd(node, client, "wget -q -T nope -O- http://127.0.0.1:8081/".split())
    assert (code, out.strip()) == (1, "wget: invalid number 'nope'")
