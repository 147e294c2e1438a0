"""A Redis Cluster's topology, as plain frozen data (issue 13, docs/decisions/cluster.md).

Read by the Redis adapter (``bot.redisinfo.cluster``), used by the diagnosis, the health
check and the fixes. Its own module, below all of them, as ``bot.replication`` is.

A shard is named by its slot ranges (``0-5460``), not by its primary's address: a
failover moves the primary, the slots stay, so the shard's history and alerts follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

SLOTS = 16384
SUBJECT_SEPARATOR = "/"  # never in a target's name (TARGET_NAME_PATTERN): no clash


@dataclass(frozen=True)
class Shard:
    """One primary and the slots it serves."""

    primary: str  # host:port
    slots: tuple[tuple[int, int], ...]  # inclusive ranges, lowest first
    replicas: tuple[str, ...] = ()
    healthy: bool = True  # the seed holds the primary for up (not fail, pfail, loading)

    @property
    def name(self) -> str:
        """The shard as messages and subjects name it: its lowest slot range, ``0-5460``
        (``+2`` appended when it serves more ranges: ``0-100+2``)."""
        first, last = self.slots[0]
        extra = f"+{len(self.slots) - 1}" if len(self.slots) > 1 else ""
        return f"{first}-{last}{extra}"

    @property
    def slot_count(self) -> int:
        """How many of the 16384 slots it serves."""
        return sum(last - first + 1 for first, last in self.slots)

    @property
    def label(self) -> str:
        """``5461-10922 (127.0.0.1:7002)``: how messages name the shard."""
        return f"{self.name} ({self.primary})"


@dataclass(frozen=True)
class Topology:
    """What one seed said of the cluster: its state and the shards that serve slots.

    state: ``CLUSTER INFO``'s ``cluster_state`` (``ok`` or ``fail``).
    seed: the node that answered (host:port).
    """

    state: str
    seed: str
    shards: tuple[Shard, ...]  # by lowest slot

    @property
    def slots_assigned(self) -> int:
        """Slots some shard serves (16384 in a complete cluster)."""
        return sum(shard.slot_count for shard in self.shards)

    @property
    def problem(self) -> str | None:
        """Why the cluster cannot serve every key now, one line; None when it can."""
        down = [s.label for s in self.shards if not s.healthy]
        if down:
            return f"shard {', '.join(down)} is down"
        if self.state != "ok":
            return f"cluster_state is {self.state}"
        if self.slots_assigned < SLOTS:
            return f"{SLOTS - self.slots_assigned} of {SLOTS} slots are served by no shard"
        return None


def subject(target: str, shard: str) -> str:
    """The health check's name of one shard of ``target``: ``sessions/0-5460``."""
    return f"{target}{SUBJECT_SEPARATOR}{shard}"


def parent(subject_name: str) -> str:
    """The target a health subject belongs to (itself for a standalone target)."""
    return subject_name.partition(SUBJECT_SEPARATOR)[0]
