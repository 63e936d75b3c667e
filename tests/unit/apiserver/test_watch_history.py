"""The watch history: sized by time between a floor and a cap, kept as bytes.

A watcher resuming from inside the history gets every change after its
revision, decoded as a live watcher would; one from before the history gets
None (the caller then asks etcd, which answers 410 when it is compacted too).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from aetcd import rpc

from apiserver import jsoncodec, watch

KEY = "/registry/configmaps/default/c"


def _kv(revision: int, created: int, data: str) -> SimpleNamespace:
    obj = {
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"},
        "data": {"v": data},
    }
    return SimpleNamespace(
        key=KEY.encode(),
        value=json.dumps(obj).encode(),
        mod_revision=revision,
        create_revision=created,
    )


def _event(revision: int, prev: int | None, kind: Any = rpc.Event.PUT) -> SimpleNamespace:
    empty = SimpleNamespace(key=b"", value=b"", mod_revision=0, create_revision=0)
    return SimpleNamespace(
        type=kind,
        kv=_kv(revision, 1 if prev else revision, str(revision)),
        prev_kv=_kv(prev, 1, str(prev)) if prev else empty,
    )


def _publish(hub: watch.Hub, revision: int, at: float) -> None:
    record = watch.record_of(_event(revision, revision - 1 if revision > 1 else None))
    record.at = at
    change = record.change()
    assert change is not None
    hub._publish(change, record)


def test_history_keeps_the_window_and_at_least_the_floor() -> None:
    hub = watch.Hub(store=None, prefix="/registry/configmaps/")  # type: ignore[arg-type]
    old = watch.HISTORY_MIN + 50
    for rev in range(1, old + 1):
        _publish(hub, rev, at=0.0)  # long ago
    for rev in range(old + 1, old + 11):
        _publish(hub, rev, at=watch.HISTORY_WINDOW + 10)  # now
    assert len(hub.history) == watch.HISTORY_MIN  # older ones dropped down to the floor count
    assert hub.floor == hub.history[0].revision - 1
    assert hub.subscribe(hub.floor - 1) is None  # before the history: not served from it
    sub = hub.subscribe(old)
    assert sub is not None
    got = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert [c.revision for c in got] == list(range(old + 1, old + 11))
    assert got[0].type == "MODIFIED" and got[0].obj["data"] == {"v": str(old + 1)}
    assert got[0].prev is not None and got[0].prev["metadata"]["resourceVersion"] == str(old)


def test_history_is_capped_however_fast_events_come() -> None:
    hub = watch.Hub(store=None, prefix="/registry/configmaps/")  # type: ignore[arg-type]
    for rev in range(1, watch.HISTORY_MAX + 6):
        _publish(hub, rev, at=1.0)
    assert len(hub.history) == watch.HISTORY_MAX
    assert hub.floor == 5 and hub.history[0].revision == 6


def test_previous_object_is_the_known_element_not_a_second_decoded_copy() -> None:
    first = watch.change_from_event(_event(1, None))
    assert first is not None and first.type == "ADDED" and not first.had_before()
    known = watch.Cached.of(KEY, first.obj, 1)
    second = watch.change_from_event(_event(2, 1), known)
    assert second is not None and second.before is known and second.prev is None
    stale = watch.change_from_event(_event(3, 2), known)  # known is revision 1, not 2
    assert stale is not None and stale.before is None
    assert stale.prev is not None and stale.prev["data"] == {"v": "2"}
    gone = watch.change_from_event(
        _event(4, 3, rpc.Event.DELETE), watch.Cached.of(KEY, stale.obj, 3)
    )
    assert gone is not None and gone.type == "DELETED"
    assert gone.obj["metadata"]["resourceVersion"] == "4" and gone.obj["data"] == {"v": "3"}
    assert stale.obj["metadata"]["resourceVersion"] == "3"  # the change's object is not changed


def test_a_cached_element_is_the_list_item_bytes_and_decodes_to_the_object() -> None:
    """What a hub keeps per object: the list item's JSON, its labels and fields;
    a GET decodes the object back exactly, kind and apiVersion where they were."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"},
                     "resourceVersion": "7"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running"},
    }  # fmt: skip
    key = "/registry/pods/default/p"
    cached = watch.Cached.of(key, pod, 7)
    item = {k: v for k, v in pod.items() if k not in ("apiVersion", "kind")}
    assert json.loads(cached.item) == item
    assert list(json.loads(cached.item)) == ["metadata", "spec", "status"]
    assert cached.labels == {"app": "web"}
    assert cached.fields["spec.nodeName"] == "n1" and cached.fields["status.phase"] == "Running"
    assert cached.fields["metadata.namespace"] == "default"
    got = cached.obj
    assert got == pod and list(got) == list(pod)
    assert cached.json() == jsoncodec.dumps(pod)  # a GET's answer, spliced from the item
    got["metadata"]["labels"]["app"] = "changed"  # a fresh copy: the cache is untouched
    assert cached.obj["metadata"]["labels"] == {"app": "web"}
    # kind and apiVersion anywhere in the object come back where they were.
    odd = {"metadata": {"name": "c", "resourceVersion": "3"}, "kind": "ConfigMap", "data": {}}
    odd_cached = watch.Cached.of("/registry/configmaps/default/c", odd, 3)
    assert odd_cached.obj == odd and list(odd_cached.obj) == list(odd)
    assert odd_cached.json() == jsoncodec.dumps(odd)
    bare = {"metadata": {"name": "c", "resourceVersion": "3"}}
    assert watch.Cached.of("/registry/configmaps/default/c", bare, 3).obj == bare
    assert watch.Cached.of("/registry/configmaps/default/c", bare, 3).json() == jsoncodec.dumps(
        bare
    )
    empty = {"apiVersion": "v1", "kind": "ConfigMap"}
    assert watch.Cached.of("/registry/configmaps/default/c", empty, 3).json() == jsoncodec.dumps(
        empty
    )


def test_history_keeps_a_previous_value_once() -> None:
    """A change's previous value is its predecessor's record, read from there on
    replay, also after that record has left the history."""
    hub = watch.Hub(store=None, prefix="/registry/configmaps/")  # type: ignore[arg-type]
    for rev in range(1, watch.HISTORY_MIN + 21):
        _publish(hub, rev, at=0.0)
    _publish(hub, watch.HISTORY_MIN + 21, at=watch.HISTORY_WINDOW + 1)  # the old ones go
    assert all(r.prev_value is None and r.prev_of is not None for r in hub.history)
    sub = hub.subscribe(hub.floor)
    assert sub is not None
    first = sub.queue.get_nowait()
    assert isinstance(first, watch.Change) and first.revision == hub.floor + 1
    assert first.prev is not None and first.prev["data"] == {"v": str(hub.floor)}


def _pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-{i}",
            "namespace": "default",
            "labels": {"app": "web"},
            "resourceVersion": str(10 + i),
        },
        "spec": {
            "nodeName": f"n{i % 3}",
            "containers": [
                {
                    "name": "web",
                    "image": "registry.local/library/busybox:1.36",
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
        },
        "status": {"phase": "Pending"},
    }


def test_a_packed_element_reads_back_the_same_bytes_and_object() -> None:
    """Packed (zlib, the packer's first item as its dictionary): smaller, and read
    back exactly as the unpacked element would be; a tiny item is kept as it is."""
    packer = watch.Packer()
    for i in range(3):
        key = f"/registry/pods/default/web-{i}"
        plain = watch.Cached.of(key, _pod(i), 10 + i)
        packed = watch.Cached.of(key, _pod(i), 10 + i, packer)
        assert packed.zdict is packer.zdict is not None
        assert len(packed._item) < len(plain.item) // 2
        assert packed.item == plain.item
        assert packed.obj == plain.obj == _pod(i) and packed.json() == plain.json()
        assert packed.fields == plain.fields and packed.labels == plain.labels
    small = {"metadata": {"name": "c", "resourceVersion": "3"}}
    tiny = watch.Cached.of("/registry/configmaps/default/c", small, 3, packer)
    assert tiny.zdict is None and tiny.obj == small
    big = {"metadata": {"name": "t", "resourceVersion": "4"}, "data": {"x": "y" * watch.PACK_MAX}}
    huge = watch.Cached.of("/registry/configmaps/default/t", big, 4, packer)
    assert huge.zdict is None and huge.obj == big  # rewritten often, kept as it is


def test_a_hub_packs_its_objects_once_it_holds_many(monkeypatch: Any) -> None:
    monkeypatch.setattr(watch, "PACK_FROM", 5)
    monkeypatch.setattr(watch, "PACK_MIN", 10)
    hub = watch.Hub(store=None, prefix="/registry/configmaps/")  # type: ignore[arg-type]
    for rev in range(1, 11):
        record = watch.record_of(_event(rev, None))
        record.key = f"/registry/configmaps/default/c{rev}"
        change = record.change()
        assert change is not None
        change.key = record.key
        hub._publish(change, record)
        assert hub.packing == (rev >= 5)
    assert hub.packing  # from the PACK_FROM-th object on: all of them
    assert all(c.zdict is not None for c in hub.objects.values())
    for rev in range(1, 11):
        got = hub.objects[f"/registry/configmaps/default/c{rev}"].obj
        assert got["data"] == {"v": str(rev)}
    # The history's records too, from then on; a resumed watcher reads them back.
    assert all(r.zdict is not None for r in hub.history)
    sub = hub.subscribe(0)
    assert sub is not None
    replayed = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert [c.obj["data"] for c in replayed] == [{"v": str(rev)} for rev in range(1, 11)]
    # A change whose previous value is a packed record's: read from there on replay.
    record = watch.record_of(_event(11, 10))
    record.key = "/registry/configmaps/default/c10"
    change = record.change()
    assert change is not None
    change.key = record.key
    hub._publish(change, record)
    assert record.prev_of is not None and record.prev_of.zdict is not None
    replay = record.change()
    assert replay is not None and replay.prev is not None and replay.prev["data"] == {"v": "10"}


def test_equal_label_sets_are_kept_once() -> None:
    a = watch.Cached.of("/registry/pods/default/web-1", _pod(1), 11)
    b = watch.Cached.of("/registry/pods/default/web-2", _pod(2), 12)
    assert a.labels == b.labels == {"app": "web"} and a.labels is b.labels
    other = _pod(3)
    other["metadata"]["labels"] = {"app": "db"}
    assert watch.Cached.of("/registry/pods/default/web-3", other, 13).labels == {"app": "db"}
    assert a.labels == {"app": "web"}


def test_selectable_fields_read_as_a_mapping() -> None:
    key = "/registry/pods/default/web-1"
    cached = watch.Cached.of(key, _pod(1), 11)
    assert dict(cached.fields) == watch.selectable_fields(key, _pod(1))
    assert cached.fields.get("spec.nodeName", "") == "n1" and "status.phase" in cached.fields
    assert cached.fields.get("spec.nope", "") == "" and "spec.nope" not in cached.fields
    other = watch.Cached.of("/registry/pods/default/web-2", _pod(2), 12)
    assert other.fields["metadata.name"] == "web-2" and len(other.fields) == len(cached.fields)
