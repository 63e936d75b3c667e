"""Objects in etcd, with etcd's revisions as resourceVersions.

The whole of Kubernetes' optimistic concurrency rests on three etcd facts, used
here exactly as kube-apiserver's etcd3 store uses them:

- an object's `resourceVersion` is its key's `mod_revision`, and a list's is
  the store revision it was read at;
- create is a transaction guarded by `version(key) == 0`, so two creates of
  one name cannot both win;
- update and delete are transactions guarded by `mod_revision(key) == rv`,
  so a writer holding a stale copy gets a conflict instead of silently
  overwriting someone else's change.

Values are the object's JSON without `metadata.resourceVersion` (it is derived
from the revision on every read, so it can never disagree with etcd).
aetcd manages the gRPC channel and the watch stream; ranges and transactions
go to the raw KV stub because aetcd does not expose `limit` and `revision`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aetcd
from aetcd import rpc

from .metrics import ETCD_LATENCY


class StorageError(Exception):
    """etcd could not be reached or answered with an error."""


class CompactedError(StorageError):
    """The revision asked for was compacted away."""

    def __init__(self, revision: int, compacted: int) -> None:
        super().__init__(f"revision {revision} is compacted (compact revision {compacted})")
        self.revision = revision
        self.compacted = compacted


@dataclass(frozen=True)
class Conflict:
    """A guarded write lost: `current` is what etcd holds now (None if gone)."""

    current: Stored | None


@dataclass(frozen=True)
class Stored:
    obj: dict[str, Any]
    revision: int  # mod_revision: the object's resourceVersion


def encode(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata")
    if meta and "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return json.dumps(obj, separators=(",", ":")).encode()


def decode(value: bytes, revision: int) -> dict[str, Any]:
    obj = json.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def _stored(kv: Any) -> Stored:
    return Stored(decode(kv.value, kv.mod_revision), kv.mod_revision)


def _resource_of(request: Any) -> str:
    """`pods` for `/registry/pods/default/x`: the label etcd latency is kept by."""
    key = getattr(request, "key", b"")
    if not key and getattr(request, "compare", None):
        key = request.compare[0].key
    parts = key.split(b"/", 3)
    return parts[2].decode(errors="replace") if len(parts) > 2 and parts[1] == b"registry" else ""


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


@dataclass(frozen=True)
class Page:
    items: list[Stored]
    revision: int  # the store revision the page was read at
    more: bool  # keys remain after the last one returned
    remaining: int  # how many keys remain after this page (before filtering)


class Store:
    """A connection to etcd speaking in objects and revisions."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 10.0) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.client: aetcd.Client | None = None

    async def connect(self) -> None:
        """Connect to the first endpoint that answers (a cluster answers on any member)."""
        errors = []
        for url in self.endpoints:
            parts = urlsplit(url if "//" in url else f"http://{url}")
            client = aetcd.Client(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 2379,
                timeout=self.timeout,
                options={
                    "grpc.max_receive_message_length": 64 * 1024 * 1024,
                    "grpc.max_send_message_length": 16 * 1024 * 1024,
                },
            )
            try:
                await client.connect()
                await client.kvstub.Range(rpc.RangeRequest(key=b"/", count_only=True), timeout=5)
            except Exception as e:  # any failure means: try the next member
                errors.append(f"{url}: {e}")
                await client.close()
                continue
            self.client = client
            return
        raise StorageError("cannot reach etcd: " + "; ".join(errors))

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    @property
    def _kv(self) -> Any:
        if self.client is None or self.client.kvstub is None:
            raise StorageError("not connected to etcd")
        return self.client.kvstub

    async def _call(self, method: str, request: Any) -> Any:
        start = time.perf_counter()
        try:
            return await getattr(self._kv, method)(request, timeout=self.timeout)
        except rpc.AioRpcError as e:
            if "compacted" in (e.details() or ""):
                raise CompactedError(0, 0) from e
            raise StorageError(f"etcd {method}: {e.code().name}: {e.details()}") from e
        finally:
            ETCD_LATENCY.labels(method, _resource_of(request)).observe(time.perf_counter() - start)

    # -- reads ---------------------------------------------------------------

    async def revision(self) -> int:
        resp = await self._call("Range", rpc.RangeRequest(key=b"/", count_only=True))
        return int(resp.header.revision)

    async def get(self, key: str) -> Stored | None:
        resp = await self._call("Range", rpc.RangeRequest(key=key.encode()))
        return _stored(resp.kvs[0]) if resp.kvs else None

    async def list(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> Page:
        """One page of keys under `prefix`, in key order, at one store revision."""
        raw_prefix = prefix.encode()
        start = (start_after.encode() + b"\0") if start_after else raw_prefix
        request = rpc.RangeRequest(
            key=start, range_end=prefix_end(raw_prefix), limit=limit, revision=revision
        )
        try:
            resp = await self._call("Range", request)
        except CompactedError as e:
            raise CompactedError(revision, 0) from e
        items = [_stored(kv) for kv in resp.kvs]
        # A read at a past revision is a snapshot of that revision, not of now.
        at = revision or int(resp.header.revision)
        return Page(items, at, bool(resp.more), int(resp.count) - len(items))

    # -- guarded writes -----------------------------------------------------

    async def create(self, key: str, obj: dict[str, Any]) -> Stored | Conflict:
        k = key.encode()
        value = encode(obj)
        resp = await self._call(
            "Txn",
            rpc.TxnRequest(
                compare=[
                    rpc.Compare(
                        key=k, result=rpc.Compare.EQUAL, target=rpc.Compare.VERSION, version=0
                    )
                ],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
            ),
        )
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            return Conflict(_stored(kvs[0]) if kvs else None)
        revision = int(resp.header.revision)
        return Stored(decode(value, revision), revision)

    async def update(self, key: str, obj: dict[str, Any], expected: int) -> Stored | Conflict:
        """Write `obj` only if the key's mod_revision is still `expected`."""
        k = key.encode()
        value = encode(obj)
        resp = await self._call(
            "Txn",
            rpc.TxnRequest(
                compare=[
                    rpc.Compare(
                        key=k,
                        result=rpc.Compare.EQUAL,
                        target=rpc.Compare.MOD,
                        mod_revision=expected,
                    )
                ],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
            ),
        )
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            return Conflict(_stored(kvs[0]) if kvs else None)
        revision = int(resp.header.revision)
        return Stored(decode(value, revision), revision)

    async def delete(self, key: str, expected: int) -> int | Conflict:
        """Delete only if unchanged since `expected`; returns the deletion revision."""
        k = key.encode()
        resp = await self._call(
            "Txn",
            rpc.TxnRequest(
                compare=[
                    rpc.Compare(
                        key=k,
                        result=rpc.Compare.EQUAL,
                        target=rpc.Compare.MOD,
                        mod_revision=expected,
                    )
                ],
                success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k))],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
            ),
        )
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            return Conflict(_stored(kvs[0]) if kvs else None)
        return int(resp.header.revision)

    async def compact(self, revision: int) -> None:
        try:
            await self._call("Compact", rpc.CompactionRequest(revision=revision))
        except CompactedError:
            pass  # someone compacted further already
