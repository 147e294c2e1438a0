"""Leader election: client-go's algorithm over a small LeaseStore port, fenced by time.

Several ``redis-mem serve`` replicas answer Slack; one runs the scheduled jobs. The
``Elector`` (a ``Component``) tries to acquire or renew a ``Claim`` every retry period on
its own thread; ``is_leader()`` is true only while ``now < last successful renew +
fence`` (the renew deadline for a Lease). A Lease is taken over only once its record
has not changed for the lease duration, measured on the follower's own clock
(client-go's "observed time", so no two clocks are compared), and the lease duration
is longer than the renew deadline: a leader that cannot renew stops running jobs
before anyone else may start them. See docs/decisions/leader-election.md.

No Kubernetes or database here: the adapters are ``bot.kube.lease`` (a Lease object)
and ``bot.audit.advisory`` (a PostgreSQL advisory lock); the record they exchange is
``bot.leases`` (the kernel layer, so the adapters below the runtime can name it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from bot.leases import LeaseRecord, VersionedLease

log = logging.getLogger(__name__)

# client-go's defaults, and the ratios REDIS_MEM_LEASE_SECONDS scales them by.
LEASE_SECONDS = 15.0
RENEW_SHARE = 10 / 15
RETRY_SHARE = 2 / 15


@dataclass(frozen=True)
class LeaseTimings:
    """Lease duration > renew deadline > retry period (client-go: 15 s, 10 s, 2 s)."""

    duration: float = LEASE_SECONDS
    renew_deadline: float = LEASE_SECONDS * RENEW_SHARE
    retry: float = LEASE_SECONDS * RETRY_SHARE

    def __post_init__(self) -> None:
        # client-go refuses the same: a deadline past the duration lets two leaders overlap.
        if not self.duration > self.renew_deadline > self.retry > 0:
            raise ValueError("leader election needs lease duration > renew deadline > retry > 0")

    @classmethod
    def scaled(cls, duration: float) -> LeaseTimings:
        """client-go's proportions for a lease of ``duration`` seconds (15 -> 10 s, 2 s)."""
        return cls(duration, duration * RENEW_SHARE, duration * RETRY_SHARE)


class LeaseStore(Protocol):
    """One lease object; every write is conditional. Failures raise (one-line message)."""

    description: str  # "Kubernetes Lease ns/name", for the log

    def get(self) -> VersionedLease | None:
        """The lease, or None when it does not exist."""
        ...

    def create(self, record: LeaseRecord) -> VersionedLease | None:
        """Create it; None when it already exists (someone else won this round)."""
        ...

    def replace(self, record: LeaseRecord, version: str) -> VersionedLease | None:
        """Replace it if still at ``version``; None on a conflict (someone else won)."""
        ...


class Claim(Protocol):
    """What an ``Elector`` holds: a Lease, an advisory lock. Attempts may raise."""

    description: str

    def try_acquire_or_renew(self) -> bool:
        """One attempt: True when this replica holds the claim now."""
        ...

    def release(self) -> None:
        """Give it up (stop): a follower may take over at once."""
        ...


class LeaseClaim:
    """client-go's ``tryAcquireOrRenew`` over a ``LeaseStore``."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        identity: str,
        timings: LeaseTimings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``clock``: monotonic seconds (expiry); ``wall``: the times written in the record."""
        self.store = store
        self.description = store.description
        self.identity = identity
        self._timings = timings
        self._clock = clock
        self._wall = wall
        self._observed: VersionedLease | None = None
        self._observed_at = 0.0

    def try_acquire_or_renew(self) -> bool:
        """Create the lease, renew ours, or take over one unchanged for a lease duration."""
        now = self._wall()
        current = self.store.get()
        if current is None:
            record = LeaseRecord(self.identity, self._seconds(), now, now, 0)
            return self._observe(self.store.create(record))
        if self._observed is None or current.record != self._observed.record:
            self._observe(current)  # it changed: its holder is alive as of now
        held = current.record
        if held.holder and held.holder != self.identity and not self._expired():
            return False
        if held.holder == self.identity:
            record = replace(held, duration_seconds=self._seconds(), renewed_at=now)
        else:
            record = LeaseRecord(self.identity, self._seconds(), now, now, held.transitions + 1)
        return self._observe(self.store.replace(record, current.version))

    def release(self) -> None:
        """Clear the holder if it is still us (client-go's ``release``): no one waits."""
        current = self.store.get()
        if current is None or current.record.holder != self.identity:
            return
        now = self._wall()
        record = replace(current.record, holder="", duration_seconds=1, renewed_at=now)
        self._observe(self.store.replace(record, current.version))

    def _expired(self) -> bool:
        held = self._observed.record.duration_seconds if self._observed else 0
        # The record's own duration, so a leader with a longer lease is not cut short.
        duration = max(float(held), self._timings.duration)
        return self._observed_at + duration <= self._clock()

    def _observe(self, lease: VersionedLease | None) -> bool:
        if lease is None:
            return False
        self._observed, self._observed_at = lease, self._clock()
        return lease.record.holder == self.identity

    def _seconds(self) -> int:
        return max(1, round(self._timings.duration))


class Elector:
    """A ``Component`` and the ``Leadership`` port: acquire/renew every ``retry`` seconds."""

    name = "leader-election"

    def __init__(
        self,
        claim: Claim,
        *,
        retry: float,
        fence: float,
        clock: Callable[[], float] = time.monotonic,
        drop_on_failure: bool = False,
    ) -> None:
        """``fence``: how long a successful attempt keeps this replica the leader.

        ``drop_on_failure``: a failed attempt ends leadership at once (an advisory lock:
        its session is gone, so is the lock), instead of when the fence runs out (a Lease:
        nobody may take it before the lease duration).
        """
        if not fence > retry > 0:
            raise ValueError("the fence must be longer than the retry period")
        self.claim = claim
        self._retry = retry
        self._fence = fence
        self._clock = clock
        self._drop_on_failure = drop_on_failure
        self._lock = threading.Lock()
        self._renewed: float | None = None
        self._was_leader = False
        self._last_error = ""  # an outage is logged once, not every retry period
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def is_leader(self) -> bool:
        """True only while the last successful renew is younger than the fence."""
        with self._lock:
            return self._renewed is not None and self._clock() < self._renewed + self._fence

    def step(self) -> bool:
        """One attempt (the thread calls it every retry period); returns ``is_leader()``."""
        started = self._clock()  # before the call: others saw the renew no earlier
        try:
            held = self.claim.try_acquire_or_renew()
        except Exception as err:  # an API or database error: this attempt failed
            self._failed(_line(err))
            held = False
        else:
            self._last_error = ""
        with self._lock:
            if held:
                self._renewed = started
            elif self._drop_on_failure:
                self._renewed = None
        self._log_change()
        return self.is_leader()

    def start(self) -> None:
        """First attempt now (so a lone replica leads before the scheduler starts), then loop."""
        log.info("leader election: %s, retry every %g s", self.claim.description, self._retry)
        self.step()
        self._thread = threading.Thread(target=self._loop, name="redis-mem-leader-election")
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop leading at once, then release the claim so a follower takes over."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self._fence)
        with self._lock:
            self._renewed = None
        self._log_change()
        try:
            self.claim.release()
        except Exception as err:  # the follower then waits out the lease instead
            what = self.claim.description
            log.warning("leader election: releasing %s failed: %s", what, _line(err))

    def _failed(self, message: str) -> None:
        level = logging.DEBUG if message == self._last_error else logging.WARNING
        log.log(level, "leader election (%s): %s", self.claim.description, message)
        self._last_error = message

    def _loop(self) -> None:
        while not self._stopping.wait(self._retry):
            self.step()

    def _log_change(self) -> None:
        leader = self.is_leader()
        with self._lock:
            changed, self._was_leader = leader != self._was_leader, leader
        if changed:
            state = "leads: runs the scheduled jobs" if leader else "no longer leads"
            log.info("leader election: this replica %s (%s)", state, self.claim.description)


def _line(err: Exception) -> str:
    text = " ".join(str(getattr(err, "message", "") or err).split())
    return text[:300] or type(err).__name__
