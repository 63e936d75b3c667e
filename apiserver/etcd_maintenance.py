"""etcd's upkeep beside compaction: defragment when most of the file is free, and
report the NOSPACE alarm as such.

Compaction (server.py) frees old revisions inside etcd's database, but the
file keeps its size until it is defragmented, and etcd's space quota
(`--quota-backend-bytes`) counts the file. Once the file reaches the quota,
etcd raises the NOSPACE alarm and refuses every write except deletes: the
cluster turns read-only until someone frees space, defragments and disarms
the alarm. Kubernetes leaves defragmentation to the operator; k3s does it for
its embedded etcd. skiff defragments the etcd it embeds when at least half of
the file, and at least 64 MiB, is free (`should_defragment`, pure), checked
after each compaction, and logs NOSPACE as an error with what to do each time
it checks while the alarm stands (`skiff status` shows it too).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aetcd import rpc

log = logging.getLogger("skiff.apiserver.etcd")

MIN_FREE = 64 * 1024 * 1024
FREE_RATIO = 0.5
NOSPACE_ADVICE = (
    "etcd raised NOSPACE: its database reached the space quota and it refuses writes; "
    "delete what is not needed, then defragment and disarm the alarm "
    "(etcdctl defrag; etcdctl alarm disarm)"
)


def should_defragment(db_size: int, in_use: int) -> bool:
    """Pure: defragmenting pays once half the file (and 64 MiB) is free space."""
    free = db_size - in_use
    return free >= MIN_FREE and free >= FREE_RATIO * db_size


RPC_TIMEOUT = 60.0  # a defragmentation of a large file takes a while


async def alarms(client: Any) -> list[str]:
    """The alarms raised on any member: "NOSPACE", "CORRUPT"."""
    request = rpc.AlarmRequest(action=rpc.AlarmRequest.GET, memberID=0, alarm=rpc.NONE)
    response = await client.maintenancestub.Alarm(request, timeout=RPC_TIMEOUT)
    return sorted({rpc.AlarmType.Name(a.alarm) for a in response.alarms})


async def maintain(client: Any, *, defragment: bool) -> list[str]:
    """One round: report alarms; defragment the (embedded) member when it pays.
    Returns the alarms raised."""
    raised = await alarms(client)
    for alarm in raised:
        log.error(NOSPACE_ADVICE if alarm == "NOSPACE" else f"etcd raised the {alarm} alarm")
    if not defragment:
        return raised
    status = await client.maintenancestub.Status(rpc.StatusRequest(), timeout=RPC_TIMEOUT)
    if should_defragment(status.dbSize, status.dbSizeInUse):
        await client.maintenancestub.Defragment(rpc.DefragmentRequest(), timeout=RPC_TIMEOUT)
        after = await client.maintenancestub.Status(rpc.StatusRequest(), timeout=RPC_TIMEOUT)
        log.info("defragmented etcd: %d MiB -> %d MiB", status.dbSize >> 20, after.dbSize >> 20)
    return raised


async def run(store: Any, *, defragment: bool, interval: float = 30.0) -> None:
    """Every `interval` seconds: report alarms, defragment when it pays (the apiserver
    defragments only the etcd it embeds; an external cluster is its operator's)."""
    while True:
        await asyncio.sleep(interval)
        if store.client is None:
            continue  # reconnecting: the health checks say so already
        try:
            await maintain(store.client, defragment=defragment)
        except Exception as e:
            log.warning("etcd upkeep failed: %s", e)
