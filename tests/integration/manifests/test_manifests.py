"""Every manifest in manifests/ is accepted by skiff as kubectl sends it.

Each file is applied for real with kubectl into a namespace of its own, then
read back: every object it names exists with the kind and name the file says.
The demo is applied as the README tells users to (`-f manifests/demo`). That
the demo then runs, is spread and answers is tests/e2e/test_lab.py's job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("*.yaml"))
DEMO = ROOT / "manifests" / "demo"


def objects(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_feature_has_an_example() -> None:
    names = {p.name for p in EXAMPLES}
    for wanted in (
        "deployment-rolling.yaml",
        "service-nodeport.yaml",
        "pod-probes.yaml",
        "pod-limits.yaml",
        "configmap-volume.yaml",
    ):
        assert wanted in names
    for path in [*EXAMPLES, *DEMO.glob("*.yaml")]:
        first = path.read_text().lstrip()
        assert first.startswith("#"), f"{path.name} should open with a comment saying what it shows"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_applies(apiserver: Any, namespace: str, path: Path) -> None:
    out = apiserver.kubectl("apply", "-n", namespace, "-f", str(path))
    try:
        for obj in objects(path):
            kind, name = obj["kind"].lower(), obj["metadata"]["name"]
            assert f"{kind}/{name} created" in out or f"{kind}.apps/{name} created" in out, out
            got = json.loads(apiserver.kubectl("get", "-n", namespace, kind, name, "-o", "json"))
            assert got["kind"] == obj["kind"]
            assert got["metadata"]["name"] == name
    finally:
        # cluster-scoped objects (the Namespace) and fixed node ports outlive the namespace
        apiserver.kubectl("delete", "-n", namespace, "-f", str(path), "--wait=false", check=False)


def test_demo_applies_as_a_directory(apiserver: Any, namespace: str) -> None:
    out = apiserver.kubectl("apply", "-n", namespace, "-f", str(DEMO))
    for line in (
        "configmap/web-content created",
        "deployment.apps/web created",
        "service/web created",
        "pod/client created",
    ):
        assert line in out
    deploy = json.loads(apiserver.kubectl("get", "-n", namespace, "deploy", "web", "-o", "json"))
    spec = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 3
    httpd = spec["containers"][0]
    assert httpd["readinessProbe"]["httpGet"]["port"] == "http"
    assert httpd["livenessProbe"]["httpGet"]["path"] == "/"
    assert httpd["resources"]["requests"] == {"cpu": "50m", "memory": "16Mi"}
    assert spec["volumes"][0]["configMap"]["name"] == "web-content"
    svc = json.loads(apiserver.kubectl("get", "-n", namespace, "svc", "web", "-o", "json"))
    assert svc["spec"]["clusterIP"].startswith("10.")
