"""The Secrets and ConfigMaps a kubelet reads one by one, as a node may.

A kubelet running as `system:node:<name>` may not list Secrets or ConfigMaps:
the Node authorizer lets it get only those the pods bound to it use. Like the
kubelet's caching object managers, `ReferencedObjects` fetches exactly those,
by name, when a pod arrives and again every `period` seconds (so updates reach
volumes), and forgets those no pod uses any more. It offers the informer
interface the pod workers read (`store.get("ns/name")`, start, wait_for_sync,
stop), so the kubelet uses it in place of a cluster-wide informer when its
credentials cannot list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from client import errors
from client.informer import Informer, Store
from client.rest import Client

log = logging.getLogger("skiff.kubelet.objects")


def referenced(pod: dict[str, Any], kind: str) -> Iterator[str]:
    """Names of the Secrets (kind "Secret") or ConfigMaps a pod uses (pure)."""
    spec = pod.get("spec") or {}
    secret = kind == "Secret"
    if secret:
        for ref in spec.get("imagePullSecrets") or []:
            if ref.get("name"):
                yield ref["name"]
    for vol in spec.get("volumes") or []:
        if secret and (vol.get("secret") or {}).get("secretName"):
            yield vol["secret"]["secretName"]
        if not secret and (vol.get("configMap") or {}).get("name"):
            yield vol["configMap"]["name"]
        for source in (vol.get("projected") or {}).get("sources") or []:
            entry = source.get("secret" if secret else "configMap") or {}
            if entry.get("name"):
                yield entry["name"]
    key_ref, env_ref = (
        ("secretKeyRef", "secretRef") if secret else ("configMapKeyRef", "configMapRef")
    )
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get(key_ref) or {}
            if ref.get("name"):
                yield ref["name"]
        for env_from in c.get("envFrom") or []:
            ref = env_from.get(env_ref) or {}
            if ref.get("name"):
                yield ref["name"]


class ReferencedObjects:
    def __init__(self, client: Client, kind: str, pods: Informer, period: float = 10.0) -> None:
        self.client = client
        self.kind = kind
        self.pods = pods
        self.period = period
        self.store = Store()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._synced = asyncio.Event()
        pods.add_handlers(
            on_add=lambda _: self._wake.set(), on_update=lambda _o, _n: self._wake.set()
        )

    def wanted(self) -> set[tuple[str, str]]:
        found = set()
        for pod in self.pods.store.list():
            ns = pod["metadata"].get("namespace", "")
            found |= {(ns, name) for name in referenced(pod, self.kind)}
        return found

    async def fetch_for(self, pod: dict[str, Any]) -> None:
        """Fetch what one pod uses now (a pod worker calls this before starting it)."""
        ns = pod["metadata"].get("namespace", "")
        await asyncio.gather(*(self._fetch(ns, n) for n in set(referenced(pod, self.kind))))

    async def _fetch(self, namespace: str, name: str) -> None:
        try:
            obj = await self.client.get("v1", self.kind, namespace, name)
        except errors.NotFound:
            gone = self.store.get(f"{namespace}/{name}")
            if gone is not None:
                self.store.remove(gone)
            return
        except errors.ApiError as e:
            log.warning("%s %s/%s: %s", self.kind, namespace, name, e)
            return
        self.store.put(obj)

    async def _run(self) -> None:
        while True:
            wanted = self.wanted()
            await asyncio.gather(*(self._fetch(ns, n) for ns, n in wanted), return_exceptions=True)
            for obj in self.store.list():
                meta = obj["metadata"]
                if (meta.get("namespace", ""), meta.get("name", "")) not in wanted:
                    self.store.remove(obj)
            self._synced.set()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.period)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"kubelet-{self.kind}-objects")

    async def wait_for_sync(self) -> None:
        await self._synced.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def may_list(client: Client, kind: str) -> bool:
    """Whether these credentials may list `kind` in every namespace (SelfSubjectAccessReview)."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": kind.lower() + "s"}},
    }
    try:
        answer = await client.create(review)
    except errors.ApiError:
        return True  # a server without reviews authorizes nothing: list as before
    return bool((answer.get("status") or {}).get("allowed"))
