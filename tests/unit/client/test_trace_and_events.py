"""The trace's coalesced, sharded writes and the Event recorder's bounded caches."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from apiserver.authz.attributes import Attributes
from apiserver.authz.node import loop_configmap
from client import errors, trace
from client.events import MAX_LRU_CACHE_ENTRIES, EventRecorder
from client.trace import MAX_BYTES, SHARDS, Tracer, TraceReader, merge, records_of, shard_name

OWNER = {"kind": "Thing", "metadata": {"name": "t", "namespace": "ns", "uid": "u1"}}


class FakeApi:
    """ConfigMaps and Events kept in a dict, with every write logged in order."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, str]] = []

    async def patch(self, v: str, kind: str, ns: str, name: str, body: Any, **_: Any) -> dict:
        self.writes.append(("patch", name))
        if name not in self.objects:
            raise errors.NotFound(404, "NotFound", name)
        if "metadata" in body:
            self.objects[name] = body
        else:
            self.objects[name].update(body)
        return self.objects[name]

    async def create(self, obj: dict[str, Any], **_: Any) -> dict:
        self.writes.append(("create", obj["metadata"]["name"]))
        self.objects[obj["metadata"]["name"]] = obj
        return obj

    async def list(self, v: str, kind: str, ns: str = "", **_: Any) -> tuple[list[dict], str]:
        return [o for o in self.objects.values() if o.get("kind") == kind], "1"


def act(tracer: Tracer, i: int, observed: str = "") -> None:
    record = tracer.begin("thing", OWNER, observed=observed)
    record.actions.append({"action": f"A{i}", "calls": []})
    tracer.finish(record)


def seqs(records: list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for r in records]


async def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_a_burst_is_coalesced_into_one_flush_and_stop_flushes_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trace, "FLUSH_SECONDS", 0.2)
    api = FakeApi()
    tracer = Tracer(api, "test", capacity=200, enabled=True)  # type: ignore[arg-type]

    async def go() -> None:
        tracer.start()
        act(tracer, 1)
        await until(lambda: api.writes, "the first record's write")
        assert api.writes == [("patch", "skiff-trace-test"), ("create", "skiff-trace-test")]
        for i in range(2, 52):  # a burst while the writer waits out FLUSH_SECONDS
            act(tracer, i)
        await until(lambda: seqs(merge(list(api.objects.values())))[-1:] == [51], "the burst")
        # One flush for the whole burst: the full shard sealed once, then the head.
        assert [name for _, name in api.writes[2:]] == [
            "skiff-trace-0-test",
            "skiff-trace-0-test",
            "skiff-trace-test",
        ]
        act(tracer, 52)  # the writer is sleeping: only stop() can write this one
        await tracer.stop()

    asyncio.run(go())
    assert seqs(merge(list(api.objects.values()))) == list(range(1, 53))
    assert seqs(records_of(api.objects["skiff-trace-test"])) == [51, 52]


def test_shards_stay_bounded_and_readers_see_every_record_once() -> None:
    api = FakeApi()
    tracer = Tracer(api, "test", capacity=40, enabled=True)  # type: ignore[arg-type]
    reader = TraceReader(api)  # type: ignore[arg-type]
    got: list[dict[str, Any]] = []

    async def go() -> None:
        for i in range(1, 400):
            act(tracer, i, observed="x" * 3_000)
            if i % 7 == 0:  # flush now and then, reading as a watcher would
                before = len(api.writes)
                await tracer.flush()
                for _, name in api.writes[before:]:
                    got.extend(reader._new(api.objects[name]))
                assert records_of(api.objects["skiff-trace-test"])  # the head: never empty
        await tracer.flush()
        fresh, _ = await reader.snapshot()
        got.extend(fresh)

    asyncio.run(go())
    names = set(api.objects)
    assert names == {"skiff-trace-test"} | {f"skiff-trace-{k}-test" for k in range(SHARDS - 1)}
    for cm in api.objects.values():
        assert len(cm["data"]["records"]) <= MAX_BYTES // SHARDS
        assert cm["metadata"]["labels"]["skiff.io/trace"] == "true"
    assert seqs(got) == list(range(1, 400))  # each once, in order, none skipped
    kept = seqs(merge(list(api.objects.values())))
    assert kept[-1] == 399 and kept == sorted(set(kept)) and len(kept) <= 40


def test_a_fresh_reader_merges_the_shards_of_a_running_component() -> None:
    api = FakeApi()
    tracer = Tracer(api, "test", capacity=20, enabled=True)  # type: ignore[arg-type]

    async def go() -> list[dict[str, Any]]:
        for i in range(1, 18):
            act(tracer, i)
            await tracer.flush()
        return (await TraceReader(api).snapshot())[0]  # type: ignore[arg-type]

    assert seqs(asyncio.run(go())) == list(range(1, 18))


def test_the_event_caches_are_lrus_of_4096_entries() -> None:
    api = FakeApi()
    recorder = EventRecorder(api, "test")  # type: ignore[arg-type]

    def pod(i: int) -> dict[str, Any]:
        return {"kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "ns", "uid": f"u{i}"}}

    async def go() -> None:
        for i in range(MAX_LRU_CACHE_ENTRIES + 100):
            await recorder.event(pod(i), "Normal", "Scheduled", "bound")
            if i % 1000 == 0:  # pod 0 stays recently used
                await recorder.event(pod(0), "Normal", "Scheduled", "bound")
        assert len(recorder._seen) == MAX_LRU_CACHE_ENTRIES
        assert len(recorder._tokens) == MAX_LRU_CACHE_ENTRIES
        api.writes.clear()
        await recorder.event(pod(0), "Normal", "Scheduled", "bound")  # remembered: a bump
        await recorder.event(pod(1), "Normal", "Scheduled", "bound")  # forgotten: a new Event
        assert [w[0] for w in api.writes] == ["patch", "create"]

    asyncio.run(go())
    (event,) = [o for o in api.objects.values() if o["involvedObject"]["name"] == "p0"]
    assert event["count"] == 7  # made at i=0, bumped at i=0, 1000, ..., 4000 and last


@pytest.mark.parametrize(
    ("node", "configmap", "allowed"),
    [
        ("w1", "skiff-trace-kubelet-w1", True),
        ("w1", shard_name("kubelet-w1", 0), True),
        ("w1", shard_name("kube-proxy-w1", SHARDS - 2), True),
        ("w1", shard_name("kubelet-w2", 0), False),
        ("w1", "skiff-trace-kubelet-w1-0", False),  # node w1-0's head, not w1's shard
        ("w1-0", "skiff-trace-kubelet-w1-0", True),
        ("w1", "skiff-trace-controller-manager", False),
    ],
)
def test_a_node_writes_its_own_trace_shards_only(node: str, configmap: str, allowed: bool) -> None:
    attrs = Attributes(
        verb="patch",
        api_version="v1",
        resource="configmaps",
        namespace="kube-system",
        name=configmap,
    )
    assert loop_configmap(node, attrs) is allowed
