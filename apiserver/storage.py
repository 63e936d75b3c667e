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
aetcd only opens plain channels, so `_TLSClient` opens a TLS one when the
endpoint is `https://` (client certificate and CA as kube-apiserver's
`--etcd-certfile/--etcd-keyfile/--etcd-cafile`).

Failures are typed, because each leaves the API differently: etcd out of
reach is `UnavailableError` (503, the client retries), a value etcd refuses
as too large is `TooLargeError` (413), and a stored value that does not decode
is `CorruptObjectError` naming its key (500, as kube-apiserver reports a
corrupt object): one bad value costs that object, never its neighbours'
watches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aetcd
import grpc
from aetcd import rpc, watcher
from aetcd.client import _handle_errors

from . import jsoncodec
from .metrics import ETCD_LATENCY


class StorageError(Exception):
    """etcd could not be reached or answered with an error."""


class UnavailableError(StorageError):
    """etcd did not answer (down, restarting, or unreachable)."""


class TooLargeError(StorageError):
    """etcd refused the request as larger than its --max-request-bytes."""


class CorruptObjectError(StorageError):
    """A stored value that is not JSON, or not an object of the kind its key holds.

    The wording follows kube-apiserver's storage error for a corrupt object.
    """

    def __init__(self, key: str, revision: int, why: str) -> None:
        super().__init__(
            f"StorageError: corrupt object, Code: 6, Key: {key}, ResourceVersion: {revision}, "
            f"AdditionalErrorMsg: object not decodable: failed to decode: {why}"
        )
        self.key = key
        self.revision = revision


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
    return jsoncodec.dumps(obj)


def decode(value: bytes, revision: int) -> dict[str, Any]:
    obj = jsoncodec.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


# Which kinds each storage prefix holds (`/registry/events/` holds two): set by
# the server at start, so that a value of the wrong kind is caught as corrupt.
KINDS_BY_PREFIX: dict[str, frozenset[str]] = {}


def _kinds_for(key: str, kinds: Mapping[str, frozenset[str]]) -> frozenset[str] | None:
    parts = key.split("/")
    if len(parts) < 4:
        return None
    return kinds.get("/".join(parts[:3]) + "/")


def decode_checked(key: str, value: bytes, revision: int) -> dict[str, Any]:
    """`decode`, or CorruptObjectError when the value is not an object this key can hold."""
    try:
        obj = jsoncodec.loads(value)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptObjectError(key, revision, f"json parse error: {e}") from e
    if not isinstance(obj, dict):
        raise CorruptObjectError(key, revision, f"a JSON {type(obj).__name__}, not an object")
    meta = obj.get("metadata", {})
    if not isinstance(meta, dict) or not isinstance(meta.get("name", ""), str):
        raise CorruptObjectError(key, revision, "metadata is not an object with a name")
    kinds = _kinds_for(key, KINDS_BY_PREFIX)
    # A missing kind is left alone (every write sets it; refusing to read an
    # object over it would cost more than it tells).
    if kinds and "kind" in obj and obj["kind"] not in kinds:
        raise CorruptObjectError(
            key, revision, f"kind {obj.get('kind')!r} is not {' or '.join(sorted(kinds))}"
        )
    meta["resourceVersion"] = str(revision)
    obj["metadata"] = meta
    return obj


def _stored(kv: Any) -> Stored:
    return Stored(
        decode_checked(kv.key.decode(errors="replace"), kv.value, kv.mod_revision), kv.mod_revision
    )


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
    keys: tuple[str, ...] = ()  # each item's etcd key


@dataclass(frozen=True)
class ClientTLS:
    """kube-apiserver's --etcd-cafile, --etcd-certfile, --etcd-keyfile."""

    ca: Path | None
    cert: Path | None
    key: Path | None

    def credentials(self) -> Any:
        def read(p: Path | None) -> bytes | None:
            return p.read_bytes() if p else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca),
            private_key=read(self.key),
            certificate_chain=read(self.cert),
        )


class _TLSClient(aetcd.Client):
    """aetcd's client over a TLS channel (aetcd itself opens only plain ones)."""

    def __init__(self, *args: Any, credentials: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._credentials = credentials

    @_handle_errors
    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            self.channel = rpc.secure_channel(
                f"{self._host}:{self._port}", self._credentials, options=self._options.items()
            )
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(
                rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
            )
            self._connected.set()
        finally:
            self._is_connecting = False


CHANNEL_OPTIONS = {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 16 * 1024 * 1024,
    # gRPC's default reconnect back-off grows to two minutes: after etcd comes
    # back, the apiserver would stay unavailable for that long.
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2000,
}


def make_client(url: str, tls: ClientTLS | None, timeout: float) -> aetcd.Client:
    """A client for one etcd URL: TLS when it is https://."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or 2379
    if parts.scheme == "https":
        creds = (tls or ClientTLS(None, None, None)).credentials()
        return _TLSClient(
            host=host, port=port, timeout=timeout, options=CHANNEL_OPTIONS, credentials=creds
        )
    return aetcd.Client(host=host, port=port, timeout=timeout, options=CHANNEL_OPTIONS)


UNREACHABLE = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"}
RECONNECT_WAIT = 2.5  # seconds: a little over the channel's longest reconnect back-off


def _never_sent(e: Any) -> bool:
    """gRPC failed the call before sending it: no connection to etcd at that moment
    (as opposed to a connection lost with the request in flight, which may have
    been carried out and is never resent)."""
    details = (e.details() or "").lower()
    return e.code().name == "UNAVAILABLE" and (
        "failed to connect" in details or "connection refused" in details
    )


# kube-apiserver's storage/etcd3/lease_manager.go: keys written with a TTL share
# one etcd lease for a while instead of each granting its own (an Event per pod
# would otherwise cost etcd a LeaseGrant per pod, and keep one lease per Event).
LEASE_REUSE_PERCENT = 0.05  # of the TTL asked for ...
LEASE_REUSE_MAX_SECONDS = 60  # ... at most this long (leaseReuseDurationSeconds)


class LeaseManager:
    """Leases for keys that expire (Events): one granted lease serves every write
    asking for the same TTL until it would no longer last that long.

    A lease is granted for the TTL plus a reuse window (5% of the TTL, at most
    60 s) and handed out while it still outlives the TTL asked for, so a key
    lives at least its TTL and at most TTL + the window, as in kube-apiserver.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._leases: dict[int, tuple[int, float]] = {}  # ttl -> (lease ID, expires at)
        self._lock = asyncio.Lock()
        self.granted = 0  # leases granted so far (tests, metrics)

    @staticmethod
    def reuse_seconds(ttl: int) -> int:
        return min(int(LEASE_REUSE_PERCENT * ttl), LEASE_REUSE_MAX_SECONDS)

    async def lease(self, ttl: int) -> int:
        """A lease ID that lives at least `ttl` seconds from now."""
        now = time.monotonic()
        held = self._leases.get(ttl)
        if held is not None and now + ttl < held[1]:
            return held[0]
        async with self._lock:
            now = time.monotonic()
            held = self._leases.get(ttl)
            if held is not None and now + ttl < held[1]:
                return held[0]
            granted = ttl + self.reuse_seconds(ttl)
            resp = await self.store._call(
                "LeaseGrant", rpc.LeaseGrantRequest(TTL=granted), stub="lease"
            )
            self.granted += 1
            self._leases[ttl] = (int(resp.ID), now + granted)
            return int(resp.ID)

    def forget(self) -> None:
        """Leases are gone (etcd replaced): grant afresh."""
        self._leases.clear()


class Store:
    """A connection to etcd speaking in objects and revisions."""

    def __init__(
        self, endpoints: Sequence[str], *, timeout: float = 10.0, tls: ClientTLS | None = None
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.tls = tls
        self.client: aetcd.Client | None = None
        self.leases = LeaseManager(self)

    async def connect(self, retry_for: float = 0.0) -> None:
        """Connect to the first endpoint that answers (a cluster answers on any member),
        trying again for `retry_for` seconds (an etcd just started is not yet serving)."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                return await self._connect_once()
            except StorageError:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.2)

    async def _connect_once(self) -> None:
        errors = []
        for url in self.endpoints:
            client = make_client(url, self.tls, self.timeout)
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

    async def members(self) -> list[Any]:
        resp = await self._call("MemberList", rpc.MemberListRequest(), stub="cluster")
        return list(resp.members)

    async def update_peer_urls(self, name: str, peer_urls: list[str]) -> bool:
        """Make member `name` advertise `peer_urls` (after a port or scheme change).

        etcd keeps a member's peer URLs in its data; flags only set them on the
        first start. Returns whether anything changed.
        """
        for member in await self.members():
            if member.name == name and list(member.peerURLs) != peer_urls:
                await self._call(
                    "MemberUpdate",
                    rpc.MemberUpdateRequest(ID=member.ID, peerURLs=peer_urls),
                    stub="cluster",
                )
                return True
        return False

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def reconnect(self, endpoints: Sequence[str]) -> None:
        """Move to other endpoints (the embedded etcd came back on new ports)."""
        old, self.client = self.client, None
        self.endpoints = list(endpoints)
        self.leases.forget()
        if old is not None:
            await old.close()
        await self.connect(retry_for=20.0)

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[Any]:
        """Every etcd event under `prefix` from `start_revision` on (raw `Event`s).

        Each watch is a gRPC stream of its own rather than one of aetcd's shared
        watcher: that one queues every watch's requests on one bounded queue under
        one lock, and with etcd down its queue filled, every later watch waited
        forever and the apiserver could not even stop. Raises CompactedError
        when `start_revision` is compacted, UnavailableError when the stream
        breaks (etcd gone, restarting, or closing the stream).
        """
        if self.client is None or self.client.channel is None:
            raise UnavailableError("not connected to etcd")
        key = prefix.encode()
        create = rpc.WatchRequest(
            create_request=rpc.WatchCreateRequest(
                key=key, range_end=prefix_end(key), start_revision=start_revision, prev_kv=True
            )
        )
        done = asyncio.Event()

        async def requests() -> AsyncIterator[Any]:
            yield create
            await done.wait()  # ending the requests would half-close the stream

        call = rpc.WatchStub(self.client.channel).Watch(requests())
        try:
            async for response in call:
                if response.compact_revision:
                    raise CompactedError(start_revision, int(response.compact_revision))
                if response.canceled:
                    raise UnavailableError(f"etcd canceled the watch: {response.cancel_reason}")
                for event in response.events:
                    yield event
            raise UnavailableError("etcd closed the watch stream")
        except rpc.AioRpcError as e:
            raise UnavailableError(f"etcd Watch: {e.code().name}: {e.details()}") from e
        finally:
            done.set()
            call.cancel()

    async def _reconnected(self) -> bool:
        """Wait (briefly: the reconnect back-off is at most 2 s) for the channel to
        connect again; whether it did."""
        channel = self.client.channel if self.client is not None else None
        if channel is None:
            return False
        try:
            await asyncio.wait_for(channel.channel_ready(), RECONNECT_WAIT)
        except TimeoutError:
            return False
        return True

    @property
    def _cluster(self) -> Any:
        if self.client is None or self.client.clusterstub is None:
            raise UnavailableError("not connected to etcd")
        return self.client.clusterstub

    @property
    def _lease(self) -> Any:
        if self.client is None or self.client.leasestub is None:
            raise UnavailableError("not connected to etcd")
        return self.client.leasestub

    @property
    def _kv(self) -> Any:
        if self.client is None or self.client.kvstub is None:
            raise UnavailableError("not connected to etcd")
        return self.client.kvstub

    async def _call(self, method: str, request: Any, *, stub: str = "kv") -> Any:
        start = time.perf_counter()
        try:
            if stub == "kv":
                target = self._kv
            else:
                target = self._lease if stub == "lease" else self._cluster
            try:
                return await getattr(target, method)(request, timeout=self.timeout)
            except rpc.AioRpcError as e:
                if not _never_sent(e) or not await self._reconnected():
                    raise
                # The channel was between connections (etcd just came back): the
                # request never left, so sending it now is safe, as clientv3 retries.
                return await getattr(target, method)(request, timeout=self.timeout)
        except rpc.AioRpcError as e:
            details = e.details() or ""
            if "lease not found" in details:
                self.leases.forget()  # etcd lost it (replaced, restored): the next write asks anew
            if "compacted" in details:
                raise CompactedError(0, 0) from e
            if "request is too large" in details or "larger than max" in details:
                raise TooLargeError(f"etcd {method}: {details}") from e
            if e.code().name in UNREACHABLE:
                raise UnavailableError(f"etcd {method}: {e.code().name}: {details}") from e
            raise StorageError(f"etcd {method}: {e.code().name}: {details}") from e
        finally:
            ETCD_LATENCY.labels(method, _resource_of(request)).observe(time.perf_counter() - start)

    # -- reads ---------------------------------------------------------------

    async def revision(self) -> int:
        resp = await self._call("Range", rpc.RangeRequest(key=b"/", count_only=True))
        return int(resp.header.revision)

    async def mod_revision(self, key: str) -> tuple[int, int]:
        """(the key's mod_revision or 0 when absent, the store revision): a
        keys-only read, so no value crosses the wire or is decoded."""
        resp = await self._call("Range", rpc.RangeRequest(key=key.encode(), keys_only=True))
        return (int(resp.kvs[0].mod_revision) if resp.kvs else 0), int(resp.header.revision)

    async def changed_since(self, prefix: str, after: int) -> tuple[int, int, int]:
        """What changed under `prefix` after revision `after`, cheaply:
        (keys under the prefix now, the newest mod_revision above `after`, or 0
        when no key was written after it, the store revision).

        One keys-only range: etcd counts every key in the range but returns only
        those modified after `after` (its `count` is taken before the
        mod-revision filter), so nothing but a few keys crosses the wire.
        """
        raw = prefix.encode()
        resp = await self._call(
            "Range",
            rpc.RangeRequest(
                key=raw, range_end=prefix_end(raw), keys_only=True, min_mod_revision=after + 1
            ),
        )
        newest = max((int(kv.mod_revision) for kv in resp.kvs), default=0)
        return int(resp.count), newest, int(resp.header.revision)

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
        keys = tuple(kv.key.decode(errors="replace") for kv in resp.kvs)
        return Page(items, at, bool(resp.more), int(resp.count) - len(items), keys)

    # -- guarded writes -----------------------------------------------------

    async def create(
        self,
        key: str,
        obj: dict[str, Any],
        guard: tuple[str, int] | None = None,
        *,
        ttl: int = 0,
    ) -> Stored | Conflict:
        """Write `obj` only if `key` is absent (and, with a `guard` (key, revision),
        only if that key is still at that mod_revision). A lost guard with the
        key still absent answers Conflict(None). With a `ttl` (seconds) the key
        goes away on its own after it, on a lease shared with other such keys."""
        lease = await self.leases.lease(ttl) if ttl else 0
        k = key.encode()
        value = encode(obj)
        compare = [
            rpc.Compare(key=k, result=rpc.Compare.EQUAL, target=rpc.Compare.VERSION, version=0)
        ]
        if guard is not None:
            compare.append(
                rpc.Compare(
                    key=guard[0].encode(),
                    result=rpc.Compare.EQUAL,
                    target=rpc.Compare.MOD,
                    mod_revision=guard[1],
                )
            )
        resp = await self._call(
            "Txn",
            rpc.TxnRequest(
                compare=compare,
                success=[
                    rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value, lease=lease))
                ],
                failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
            ),
        )
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            return Conflict(_stored(kvs[0]) if kvs else None)
        revision = int(resp.header.revision)
        return Stored(decode(value, revision), revision)

    async def update(
        self, key: str, obj: dict[str, Any], expected: int, *, ttl: int = 0
    ) -> Stored | Conflict:
        """Write `obj` only if the key's mod_revision is still `expected` (with a
        `ttl`, on a lease again: the key lives `ttl` from this write)."""
        k = key.encode()
        lease = await self.leases.lease(ttl) if ttl else 0
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
                success=[
                    rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value, lease=lease))
                ],
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
