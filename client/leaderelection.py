"""Leader election on a coordination.k8s.io/v1 Lease, as client-go does it.

Candidates race to hold one Lease. The holder renews it every `retry_period`;
if it cannot renew within `renew_deadline` it stops leading (its work is
cancelled) before anyone else may take over; others take over only after
`lease_duration` has passed since the last renewal they observed. Every
write is guarded by resourceVersion, so two candidates never both win.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from api.meta import now_micro

from . import errors
from .lease import get_lease, held_spec, new_lease
from .rest import Client

log = logging.getLogger("skiff.leaderelection")


class LeaderElector:
    def __init__(
        self,
        client: Client,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        self.client = client
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._observed: tuple[str, float] = ("", 0.0)  # (renewTime seen, when we saw it)

    async def _try(self) -> bool:
        """One attempt to acquire or renew; True when we hold the lease after it."""
        lease = await get_lease(self.client, self.namespace, self.name)
        current: dict[str, Any] = (lease or {}).get("spec") or {}
        spec = held_spec(
            current,
            holder=self.identity,
            duration_seconds=int(self.lease_duration),
            renew_time=now_micro(),
        )
        if lease is None:
            try:
                await self.client.create(
                    new_lease(namespace=self.namespace, name=self.name, spec=spec)
                )
                return True
            except errors.AlreadyExists:
                return False
        holder = current.get("holderIdentity") or ""
        renewed = current.get("renewTime") or ""
        if renewed != self._observed[0]:
            self._observed = (renewed, time.monotonic())
        expired = time.monotonic() - self._observed[1] > float(
            current.get("leaseDurationSeconds") or self.lease_duration
        )
        if holder and holder != self.identity and not expired:
            return False
        lease["spec"] = spec
        try:
            await self.client.update(lease)
        except errors.Conflict:
            return False
        return True

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Acquire, then run `lead()` for as long as the lease is held; forever."""
        while True:
            while True:  # retry every retry_period until we hold the lease
                if await self._safe_try():
                    break
                await asyncio.sleep(self.retry_period)
            log.info("%s became leader of %s/%s", self.identity, self.namespace, self.name)
            work = asyncio.create_task(lead())
            try:
                await self._renew_until_lost(work)
            finally:
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    try:
                        await work
                    except Exception:
                        log.exception("the work done while leading failed")
            log.warning("%s lost the lease %s/%s", self.identity, self.namespace, self.name)

    async def _safe_try(self) -> bool:
        try:
            return await self._try()
        except Exception as e:
            log.warning("leader election attempt failed: %s", e)
            return False

    async def _renew_until_lost(self, work: asyncio.Task[None]) -> None:
        last_renewal = time.monotonic()
        while not work.done():
            await asyncio.sleep(self.retry_period)
            if await self._safe_try():
                last_renewal = time.monotonic()
            elif time.monotonic() - last_renewal > self.renew_deadline:
                return

    async def release(self) -> None:
        """Give the lease up on a clean shutdown so a successor need not wait."""
        with contextlib.suppress(Exception):
            lease = await get_lease(self.client, self.namespace, self.name)
            held_by = ((lease or {}).get("spec") or {}).get("holderIdentity")
            if lease is not None and held_by == self.identity:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.client.update(lease)
