"""A small kopf operator, as a user would write one: each Greeting gets a ConfigMap
holding its message, kept up to date, and a status saying it was reconciled.

Run by test_kopf.py as `kopf run --standalone`, with the admin kubeconfig.
"""

from __future__ import annotations

import os
from typing import Any

import kopf
import kubernetes

GROUP = os.environ["GREETING_GROUP"]


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.enabled = True
    kubernetes.config.load_kube_config()


def _upsert(namespace: str, name: str, spec: dict[str, Any]) -> None:
    core = kubernetes.client.CoreV1Api()
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-greeting"},
        "data": {"message": f"{spec.get('greeting', 'Hello')}, {spec['who']}!"},
    }
    kopf.adopt(body)
    try:
        core.create_namespaced_config_map(namespace, body)
    except kubernetes.client.ApiException as e:
        if e.status != 409:
            raise
        core.replace_namespaced_config_map(f"{name}-greeting", namespace, body)


@kopf.on.create(GROUP, "v1", "greetings")
@kopf.on.update(GROUP, "v1", "greetings")
def reconcile(spec: dict[str, Any], name: str, namespace: str, **_: Any) -> dict[str, Any]:
    _upsert(namespace, name, dict(spec))
    return {"configMap": f"{name}-greeting", "message": "reconciled"}
