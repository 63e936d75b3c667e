"""docs/study-guide.md stays true: every `file.py:function` it cites exists, the
Korean edition carries the same commands, and every command block marked
`{study}` runs, in order, on a node of `skiff up` (as the guide tells a user to
make one) in a private network namespace (contract F:
tests/integration/cli/conftest.py's node); its components are supervised, so the
`{study needs=up}` block kills one and sees it come back. The `{study
needs=lab}` blocks run in tests/e2e/test_lab.py, on the lab of three nodes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.cli.conftest import Node, up_node, wait_for

GUIDE = ROOT / "docs" / "study-guide.md"
GUIDE_KO = ROOT / "docs" / "study-guide.ko.md"
BLOCK = re.compile(r"^```sh \{study(?: needs=(\w+))?\}\n(.*?)^```$", re.M | re.S)
CITED = re.compile(r"`((?:\w+/)+\w+\.py):(\w+)(?:\.(\w+))?`")


def blocks(path: Path) -> list[tuple[str, str, str]]:
    """(id, needs, commands) for each marked block, in order."""
    text = path.read_text()
    out = []
    for i, m in enumerate(BLOCK.finditer(text), 1):
        section = text.rfind("\n## ", 0, m.start())
        title = text[section + 4 : text.index("\n", section + 4)] if section >= 0 else "intro"
        slug = re.sub(r"\W+", "-", title.lower()).strip("-")[:40]
        out.append((f"{i:02d}-{slug}", m.group(1) or "", m.group(2)))
    return out


def test_the_guide_has_blocks_to_run() -> None:
    found = blocks(GUIDE)
    assert len([b for b in found if not b[1]]) >= 8


@pytest.mark.parametrize("path", [GUIDE, GUIDE_KO], ids=["en", "ko"])
def test_every_cited_function_exists(path: Path) -> None:
    cited = CITED.findall(path.read_text())
    assert cited
    for file, name, method in cited:
        source = (ROOT / file).read_text()
        assert re.search(rf"^(async def|def|class) {name}\b", source, re.M), f"{file}:{name}"
        if method:
            assert re.search(rf"^    (async def|def) {method}\b", source, re.M), (
                f"{file}:{name}.{method}"
            )


def test_the_korean_edition_runs_the_same_commands() -> None:
    assert [b[1:] for b in blocks(GUIDE_KO)] == [b[1:] for b in blocks(GUIDE)]


def _has_loop_command() -> bool:
    usage = subprocess.run(
        [sys.executable, "-m", "cli", "--help"], capture_output=True, text=True, cwd=ROOT
    ).stdout
    return bool(re.search(r"^\s+loop\s", usage, re.M))


SKIP = {
    "lab": "needs the lab (several nodes): run by tests/e2e/test_lab.py on its lab",
    "loop": "needs `skiff loop` (the loop control of issue 16), not in this tree",
}
RUN_HERE = ("", "up")  # this module's node is one of `skiff up`: supervised components


@pytest.fixture(scope="module")
def study_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, str]]]:
    if os.geteuid() != 0 or not Path("/bin/busybox").exists():
        pytest.skip("needs root (namespaces, cgroups, iptables) and busybox-static")
    base = tmp_path_factory.mktemp("study")
    with up_node(base) as node:  # this thread is in the node's namespace
        # A real node has a default route, so a ClusterIP is routed (and the nat OUTPUT
        # hook then rewrites it); this namespace has no route out and must not: the
        # service range is routed into a veth pair that leads nowhere, standing in for
        # it (as tests/e2e/services/conftest.py does). Gone with the namespace.
        for argv in (
            ["ip", "link", "add", "svc0", "type", "veth", "peer", "name", "svc1"],
            ["ip", "link", "set", "svc0", "up"],
            ["ip", "link", "set", "svc1", "up"],
            ["ip", "route", "add", "10.96.0.0/12", "dev", "svc0"],
        ):
            subprocess.run(argv, check=True)
        try:
            env = {
                **os.environ,
                "KUBECONFIG": str(node.state / "admin.kubeconfig"),
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
                # `skiff status` finds this node as a user's finds /var/lib/skiff
                "SKIFF_STATE_DIR": str(node.state),
            }
            # The proxy has written its chains once it is up.
            wait_for(
                lambda: (
                    subprocess.run(
                        ["iptables", "-t", "nat", "-S", "SKIFF-SERVICES"], capture_output=True
                    ).returncode
                    == 0
                ),
                "the proxy's SKIFF-SERVICES chain",
            )
            yield node, env
        finally:
            last = Path("/tmp/study-bundle.last")
            if last.exists():  # a block failed before its own clean-up
                subprocess.run(["rm", "-rf", last.read_text().strip(), str(last)], check=False)


@pytest.mark.root
@pytest.mark.parametrize(
    ("block_id", "needs", "commands"), [pytest.param(*b, id=b[0]) for b in blocks(GUIDE)]
)
def test_guide_block(
    study_node: tuple[Node, dict[str, str]], block_id: str, needs: str, commands: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    if needs == "loop" and _has_loop_command():
        needs = ""
    if needs not in RUN_HERE:
        pytest.skip(f"{block_id}: {SKIP.get(needs, 'needs ' + needs)}")
    node, env = study_node
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    print(f"--- {block_id}\n{result.stdout}")
    assert result.returncode == 0, (
        f"block {block_id} failed ({result.returncode}):\n{commands}\n--- stdout\n"
        f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}\n--- node\n"
        f"{node.output()[-4000:]}"
    )
