"""The limits a container asks for, in the OCI runtime spec's terms."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resources:
    cpu_shares: int | None = None  # v1 cpu.shares (1024 = one CPU's worth of weight)
    cpu_quota: int | None = None  # microseconds per period; None or -1: unlimited
    cpu_period: int = 100_000
    memory_limit: int | None = None  # bytes; swap is disabled alongside it
    pids_limit: int | None = None

    @staticmethod
    def weight_from_shares(shares: int) -> int:
        """cgroup v2 cpu.weight from v1 shares, with the conversion runc and the kubelet use."""
        shares = min(max(shares, 2), 262144)
        return 1 + ((shares - 2) * 9999) // 262142
