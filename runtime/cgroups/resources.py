"""The limits a container asks for, in the OCI runtime spec's terms."""

from __future__ import annotations


class Resources:
    """A plain class rather than a dataclass: skiff-runc imports this on every container
    start, and `dataclasses` (with `inspect`) costs more time than the whole start-up."""

    __slots__ = ("cpu_period", "cpu_quota", "cpu_shares", "memory_limit", "pids_limit")

    def __init__(
        self,
        cpu_shares: int | None = None,  # v1 cpu.shares (1024 = one CPU's worth of weight)
        cpu_quota: int | None = None,  # microseconds per period; None or -1: unlimited
        cpu_period: int = 100_000,
        memory_limit: int | None = None,  # bytes; swap is disabled alongside it
        pids_limit: int | None = None,
    ) -> None:
        self.cpu_shares, self.cpu_quota, self.cpu_period = cpu_shares, cpu_quota, cpu_period
        self.memory_limit, self.pids_limit = memory_limit, pids_limit

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__)
        return f"Resources({fields})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Resources) and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]

    @staticmethod
    def weight_from_shares(shares: int) -> int:
        """cgroup v2 cpu.weight from v1 shares, with the conversion runc and the kubelet use."""
        shares = min(max(shares, 2), 262144)
        return 1 + ((shares - 2) * 9999) // 262142
