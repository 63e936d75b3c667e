"""client/ against a real apiserver: typed errors, informer relisting, event counting."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client import errors
from client.config import load_config
from client.events import EventRecorder
from client.informer import Informer
from client.lease import renew_lease
from client.rest import Client


async def until(check: Any, seconds: float = 20.0) -> None:
    """Poll `check` until true; fails the test after `seconds`."""

    async def loop() -> None:
        while True:
            if check():
                return
            await asyncio.sleep(0.1)

    await asyncio.wait_for(loop(), seconds)


async def test_typed_errors(apiserver: Any, namespace: str) -> None:
    api = Client(load_config(apiserver.kubeconfig))
    try:
        with pytest.raises(errors.NotFound):
            await api.get("v1", "ConfigMap", namespace, "missing")
        cm = await api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": namespace},
            }
        )
        with pytest.raises(errors.AlreadyExists):
            await api.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": namespace},
                }
            )
        await api.update({**cm, "data": {"a": "1"}})
        with pytest.raises(errors.Conflict):
            await api.update({**cm, "data": {"a": "2"}})  # stale resourceVersion
        with pytest.raises(errors.Invalid):
            await api.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "Bad_Name", "namespace": namespace},
                }
            )
    finally:
        await api.close()


async def test_event_repeats_are_counted(apiserver: Any, namespace: str) -> None:
    api = Client(load_config(apiserver.kubeconfig))
    try:
        cm = await api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "ev", "namespace": namespace},
            }
        )
        recorder = EventRecorder(api, "test-component")
        for _ in range(3):
            await recorder.event(cm, "Warning", "Flapping", "it happened again")
        events, _ = await api.list(
            "v1", "Event", namespace, field_selector="involvedObject.name=ev"
        )
        assert len(events) == 1
        assert events[0]["count"] == 3
        assert events[0]["source"]["component"] == "test-component"
    finally:
        await api.close()


async def test_informer_relists_after_apiserver_restart(start_apiserver: Any) -> None:
    server = start_apiserver()
    api = Client(load_config(server.kubeconfig))
    informer = Informer(api, "v1", "ConfigMap", namespace="default")
    added: list[str] = []
    deleted: list[str] = []
    informer.add_handlers(
        on_add=lambda o: added.append(o["metadata"]["name"]),
        on_delete=lambda o: deleted.append(o["metadata"]["name"]),
    )
    informer.start()
    try:
        await informer.wait_for_sync()
        await api.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "before", "namespace": "default"},
            }
        )
        await until(lambda: "before" in added)
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        # While the informer was cut off, one object came and one went.
        api2 = Client(load_config(server.kubeconfig))
        try:
            await api2.create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "during", "namespace": "default"},
                }
            )
            await api2.delete("v1", "ConfigMap", "default", "before")
        finally:
            await api2.close()
        await until(lambda: "during" in added and "before" in deleted, seconds=60)
        assert informer.store.get("default/during") is not None
        assert informer.store.get("default/before") is None
    finally:
        await informer.stop()
        await api.close()


async def test_node_lease_is_created_then_renewed(apiserver: Any, namespace: str) -> None:
    """The kubelet's heartbeat: the first renewal creates the Lease, later ones move
    renewTime forward (MicroTime), and a Lease that lost its owner gets it back."""
    api = Client(load_config(apiserver.kubeconfig))
    owner = [{"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "uid-node-a"}]
    try:
        first = await renew_lease(
            api,
            namespace=namespace,
            name="node-a",
            holder="node-a",
            duration_seconds=40,
            owner_references=owner,
        )
        assert first["spec"]["holderIdentity"] == "node-a"
        assert first["spec"]["leaseDurationSeconds"] == 40
        assert first["metadata"]["ownerReferences"][0]["uid"] == "uid-node-a"
        await asyncio.sleep(0.01)  # renewTime has microseconds: the next one is later
        second = await renew_lease(
            api, namespace=namespace, name="node-a", holder="node-a", duration_seconds=40
        )
        assert second["spec"]["renewTime"] > first["spec"]["renewTime"]
        assert second["spec"]["acquireTime"] == first["spec"]["acquireTime"]
        assert second["metadata"]["ownerReferences"] == first["metadata"]["ownerReferences"]
        stored = await api.get("coordination.k8s.io/v1", "Lease", namespace, "node-a")
        assert stored["spec"]["renewTime"] == second["spec"]["renewTime"]

        bare = {**stored, "metadata": {**stored["metadata"], "ownerReferences": None}}
        await api.update(bare)
        third = await renew_lease(
            api,
            namespace=namespace,
            name="node-a",
            holder="node-a",
            duration_seconds=40,
            owner_references=owner,
        )
        assert third["metadata"]["ownerReferences"][0]["uid"] == "uid-node-a"
    finally:
        await api.close()
