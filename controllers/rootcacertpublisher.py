"""Root CA publisher: the `kube-root-ca.crt` ConfigMap in every namespace.

As Kubernetes' root-ca-cert-publisher does, it keeps a ConfigMap holding the
cluster CA (`ca.crt`) in each namespace, so pods can verify the apiserver: the
ServiceAccount admission plugin projects it next to the token. The CA is the
one the controller-manager itself trusts (its kubeconfig's
certificate-authority), as Kubernetes' `--root-ca-file`. A ConfigMap changed
or deleted by someone is put back.
"""

from __future__ import annotations

from typing import Any

from client import errors
from client.controller import Context, Controller, Result

NAME = "kube-root-ca.crt"
ANNOTATION = "kubernetes.io/description"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using "
    "internal endpoints such as the internal service IP or kubernetes.default.svc. "
    "No other usage is guaranteed across distributions of Kubernetes clusters."
)


def desired(namespace: str, ca: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": NAME,
            "namespace": namespace,
            "annotations": {ANNOTATION: DESCRIPTION},
        },
        "data": {"ca.crt": ca},
    }


def decide(namespace: dict[str, Any], current: dict[str, Any] | None, ca: str) -> str:
    """ "create", "update" or "" (nothing to do)."""
    if namespace["metadata"].get("deletionTimestamp"):
        return ""
    if (namespace.get("status") or {}).get("phase", "Active") != "Active":
        return ""
    if current is None:
        return "create"
    return "" if (current.get("data") or {}).get("ca.crt") == ca else "update"


class RootCACertPublisher(Controller):
    name = "root-ca-cert-publisher"
    workers = 1

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.ca = (ctx.client.config.ca_data or b"").decode()
        self.namespaces = ctx.informers.get("v1", "Namespace")
        self.configmaps = ctx.informers.get("v1", "ConfigMap")
        self.namespaces.add_handlers(
            on_add=lambda ns: self.enqueue(ns["metadata"]["name"]),
            on_update=lambda _old, ns: self.enqueue(ns["metadata"]["name"]),
        )
        self.configmaps.add_handlers(
            on_update=lambda _old, cm: self._mine(cm), on_delete=self._mine
        )

    def _mine(self, cm: dict[str, Any]) -> None:
        if cm["metadata"].get("name") == NAME:
            self.enqueue(cm["metadata"]["namespace"])

    async def reconcile(self, key: str) -> Result:
        ns = self.namespaces.store.get(key)
        if ns is None or not self.ca:
            return Result.done()
        current = self.configmaps.store.get(f"{key}/{NAME}")
        action = decide(ns, current, self.ca)
        try:
            if action == "create":
                await self.ctx.client.create(desired(key, self.ca))
            elif action == "update" and current is not None:
                body = desired(key, self.ca)
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await self.ctx.client.update(body)
        except (errors.AlreadyExists, errors.Conflict):
            return Result(requeue_after=1.0)
        except (errors.Forbidden, errors.NotFound):
            pass  # the namespace is terminating
        return Result.done()
