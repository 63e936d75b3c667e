"""Informers cache objects without managedFields (as kube-scheduler's and
kube-controller-manager's do), from the list and from the watch alike."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from client.informer import Informer, SharedValues, drop_fields, keep_fields


def pod(name: str, rv: str) -> dict[str, Any]:
    """Decoded from JSON, as from the server: its own copy of every string."""
    return json.loads(json.dumps(_pod(name, rv)))


def _pod(name: str, rv: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": rv,
            "labels": {"app": "web"},
            "managedFields": [{"manager": "kubectl", "operation": "Update", "fieldsV1": {}}],
        },
        "spec": {"nodeName": "n1"},
    }


class FakeClient:
    async def list(self, *args: Any, **kw: Any) -> tuple[list[dict[str, Any]], str]:
        return [pod("listed", "1")], "1"

    async def watch(self, *args: Any, **kw: Any) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        yield "ADDED", pod("watched", "2")
        yield "MODIFIED", pod("listed", "3")
        await asyncio.sleep(3600)


def run(informer: Informer) -> dict[str, dict[str, Any]]:
    async def scenario() -> dict[str, dict[str, Any]]:
        seen: list[str] = []
        informer.add_handlers(on_add=lambda o: seen.append(o["metadata"]["name"]))
        informer.start()
        await informer.wait_for_sync()
        for _ in range(100):
            if "ns/watched" in informer.store.items and informer.resource_version == "3":
                break
            await asyncio.sleep(0.01)
        await informer.stop()
        assert seen == ["listed", "watched"]
        return dict(informer.store.items)

    return asyncio.run(scenario())


def test_cached_objects_have_no_managed_fields() -> None:
    items = run(Informer(FakeClient(), "v1", "Pod"))  # type: ignore[arg-type]
    assert set(items) == {"ns/listed", "ns/watched"}
    for obj in items.values():
        assert "managedFields" not in obj["metadata"]
        assert obj["metadata"]["labels"] == {"app": "web"}  # the rest is kept
    assert items["ns/listed"]["metadata"]["resourceVersion"] == "3"


def test_without_a_transform_objects_are_kept_as_sent() -> None:
    items = run(Informer(FakeClient(), "v1", "Pod", transform=None))  # type: ignore[arg-type]
    assert all("managedFields" in o["metadata"] for o in items.values())


def test_cached_objects_share_their_keys_and_short_strings() -> None:
    items = run(Informer(FakeClient(), "v1", "Pod"))  # type: ignore[arg-type]
    a, b = items["ns/listed"], items["ns/watched"]
    assert a["spec"]["nodeName"] is b["spec"]["nodeName"]  # one "n1" for both
    key_a = next(k for k in a["metadata"] if k == "labels")
    key_b = next(k for k in b["metadata"] if k == "labels")
    assert key_a is key_b


def test_a_shape_keeps_or_drops_fields_through_dicts_and_lists() -> None:
    obj = {
        "metadata": {"name": "p", "labels": {"a": "1"}, "managedFields": [{}]},
        "spec": {
            "containers": [{"name": "c", "image": "x", "env": [{"name": "E"}]}, "odd"],
            "nodeName": None,
        },
    }
    shape = {"metadata": {"name": True}, "spec": {"containers": [{"name": True}], "nodeName": {}}}
    assert keep_fields(obj, shape) == {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c"}, "odd"], "nodeName": None},
    }
    dropped = drop_fields(
        obj, {"metadata": {"managedFields": True}, "spec": {"containers": [{"env": True}]}}
    )
    assert dropped == {
        "metadata": {"name": "p", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "c", "image": "x"}, "odd"], "nodeName": None},
    }
    assert "env" in obj["spec"]["containers"][0]  # the object given is not changed


def test_an_informers_transform_applies_to_listed_and_watched_objects() -> None:
    def names_only(obj: dict[str, Any]) -> dict[str, Any]:
        return keep_fields(
            obj, {"metadata": {"name": True, "namespace": True, "resourceVersion": True}}
        )

    items = run(Informer(FakeClient(), "v1", "Pod", transform=names_only))  # type: ignore[arg-type]
    assert items["ns/listed"] == {
        "metadata": {"name": "listed", "namespace": "ns", "resourceVersion": "3"}
    }
    assert items["ns/watched"] == {
        "metadata": {"name": "watched", "namespace": "ns", "resourceVersion": "2"}
    }


def test_shared_values_are_kept_once_and_bounded() -> None:
    shared = SharedValues(limit=2)
    a, b = {"k": [1, 2]}, {"k": [1, 2]}
    assert shared(a) is a and shared(b) is a
    assert shared({"k": [3]}) == {"k": [3]} and len(shared.kept) == 2
    assert shared({"k": [4]}) == {"k": [4]} and len(shared.kept) == 1  # started afresh
    assert shared("text") == "text" and shared([]) == []
    obj = {"spec": {"tolerations": [{"key": "a"}]}, "status": None}
    other = {"spec": {"tolerations": [{"key": "a"}]}}
    shared.share(obj, {"spec": ("tolerations",), "status": ("conditions",)})
    shared.share(other, {"spec": ("tolerations",)})
    assert obj["spec"]["tolerations"] is other["spec"]["tolerations"]
