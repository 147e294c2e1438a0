"""What a leader-election Lease says, shared by the elector and its Kubernetes adapter.

Kernel layer (no imports): ``bot.runtime.election`` reads and writes these records
through its ``LeaseStore`` port and ``bot.kube.lease`` maps them to Lease objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LeaseRecord:
    """What a Lease says: who holds it ("" = released), since when, renewed when."""

    holder: str
    duration_seconds: int
    acquired_at: datetime | None
    renewed_at: datetime | None
    transitions: int = 0


@dataclass(frozen=True)
class VersionedLease:
    """A record and the version a conditional write must name (``resourceVersion``)."""

    record: LeaseRecord
    version: str
