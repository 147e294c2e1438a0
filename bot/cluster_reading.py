"""A Redis Cluster target's reading: every primary's own snapshot, or why it was unreadable.

Read by the Redis adapter (``bot.redisinfo.cluster_probe``) into ``Snapshot.cluster``,
judged shard by shard by the diagnosis (``bot.diagnosis.shards``). Its own module beside
``bot.replication`` and ``bot.shards``, below both: plain frozen data, no client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.shards import Shard, Topology

if TYPE_CHECKING:  # Snapshot carries a ClusterReading: the import would be circular at run time
    from bot.redisinfo.snapshot import Snapshot


@dataclass(frozen=True)
class ShardReading:
    """One shard as this reading saw it: its primary's snapshot, or the one-line error.

    Exactly one of ``snapshot`` and ``error`` is set: a primary that did not answer is
    reported, never a reason to fail the whole diagnosis.
    """

    shard: Shard
    snapshot: Snapshot | None = None
    error: str | None = None


@dataclass(frozen=True)
class ClusterReading:
    """The topology one seed reported and what each primary said, in slot order."""

    topology: Topology
    shards: tuple[ShardReading, ...]

    @property
    def readable(self) -> tuple[ShardReading, ...]:
        """The shards whose primary answered (their snapshots make the whole)."""
        return tuple(s for s in self.shards if s.snapshot is not None)
