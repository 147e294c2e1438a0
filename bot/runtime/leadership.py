"""Who runs the scheduled jobs: the Leadership port, and the single-replica answer."""

from __future__ import annotations

from typing import Protocol


class Leadership(Protocol):
    """Says whether this replica may run scheduled jobs right now."""

    def is_leader(self) -> bool:
        """True while this replica leads (checked before every job run)."""
        ...


class AlwaysLeader:
    """One replica (SQLite, or no election configured): it always leads."""

    def is_leader(self) -> bool:
        """Always True."""
        return True
