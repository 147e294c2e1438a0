"""A Sentinel-managed store's replication, as plain frozen data.

Read by the Redis adapter (``bot.redisinfo.sentinel``) into a Snapshot, carried by the
Diagnosis to every face. Its own module, below both: the diagnosis model is imported by
the stores, which must not reach the Redis adapter's package (.importlinter).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReplicaLag:
    """One replica as the sentinels list it, and how far it trails the primary.

    lag_bytes: the primary's ``master_repl_offset`` minus the replica's
    ``slave_repl_offset``; None when the replica could not be read (``error`` says why).
    link: ``up`` or ``down`` (the sentinel's master-link-status), ``s_down`` and the like
    when the sentinel's flags say the replica is itself down.
    """

    address: str  # host:port
    link: str
    lag_bytes: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class SentinelReading:
    """Which primary the sentinels named for this snapshot, and its replicas."""

    master_name: str
    primary: str  # host:port
    sentinel: str  # the sentinel that answered (host:port)
    replicas: tuple[ReplicaLag, ...] = ()
