"""An operator written with kopf (a well-known Python operator framework) runs
unchanged against skiff: it watches a custom resource, creates a ConfigMap for
it, writes its status, and follows changes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import ApiServerProcess
from tests.polling import eventually

HERE = Path(__file__).parent
DEADLINE = 60.0


def greeting_crd(group: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"greetings.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "greetings", "singular": "greeting", "kind": "Greeting"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["who"],
                                    "properties": {
                                        "who": {"type": "string"},
                                        "greeting": {"type": "string", "default": "Hello"},
                                    },
                                },
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


def with_log(what: str, log: Path) -> Callable[[], str]:
    """`what` and the tail of the operator's log, for a wait that timed out."""

    def described() -> str:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        return f"{what}; operator log:\n{tail}\n"

    return described


@pytest.fixture
def operator(
    apiserver: ApiServerProcess, api: httpx.Client, namespace: str, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    group = f"k{uuid.uuid4().hex[:8]}.example.com"
    apiserver.kubectl("apply", "-f", "-", input=yaml.safe_dump(greeting_crd(group)))
    apiserver.kubectl("wait", "--for=condition=Established", f"crd/greetings.{group}")
    log = tmp_path / "kopf.log"
    env = {**os.environ, "KUBECONFIG": str(apiserver.kubeconfig), "GREETING_GROUP": group}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", namespace,
             str(HERE / "kopf_operator.py")],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        yield group, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/greetings.{group}")


def test_kopf_operator_reconciles_a_custom_resource(
    apiserver: ApiServerProcess, api: httpx.Client, namespace: str, operator: tuple[str, Path]
) -> None:
    group, log = operator
    greeting = {
        "apiVersion": f"{group}/v1",
        "kind": "Greeting",
        "metadata": {"name": "world"},
        "spec": {"who": "world"},
    }
    apiserver.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(greeting))
    cm_url = f"/api/v1/namespaces/{namespace}/configmaps/world-greeting"

    def configmap() -> dict[str, Any] | None:
        r = api.get(cm_url)
        return r.json() if r.status_code == 200 else None

    cm = eventually(configmap, DEADLINE, with_log("the operator's ConfigMap", log))
    assert cm["data"]["message"] == "Hello, world!"  # the schema's default reached kopf
    owner = cm["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "Greeting" and owner["name"] == "world"
    url = f"/apis/{group}/v1/namespaces/{namespace}/greetings/world"

    def reconciled() -> dict[str, Any] | None:
        status = api.get(url).json().get("status") or {}
        return status.get("reconcile")

    status = eventually(reconciled, DEADLINE, with_log("the handler's status", log))
    assert status["message"] == "reconciled"
    # A change to the spec is reconciled too.
    apiserver.kubectl(
        "patch", "-n", namespace, f"greetings.{group}/world", "--type=merge",
        "-p", '{"spec": {"greeting": "Ahoy"}}',
    )  # fmt: skip
    eventually(
        lambda: (configmap() or {}).get("data", {}).get("message") == "Ahoy, world!",
        DEADLINE,
        with_log("the updated ConfigMap", log),
    )
