"""The elector (client-go's algorithm) with a fake clock and an in-memory LeaseStore.

The store is a test double of the ``LeaseStore`` port with the API server's semantics:
a create of an existing lease and a replace naming a stale version both lose (None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from bot.config import Settings
from bot.leases import LeaseRecord, VersionedLease
from bot.runtime.election import Elector, LeaseClaim, LeaseTimings
from bot.wiring_leader import election_mode, leader_election

TIMINGS = LeaseTimings()  # client-go's 15 s / 10 s / 2 s


@dataclass
class Clock:
    """Monotonic seconds and a wall clock that move together, only when told."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class MemoryLeaseStore:
    """One lease in memory, versioned like a Kubernetes object."""

    lease: VersionedLease | None = None
    version: int = 0
    down: bool = False  # every call fails, as an unreachable API server would
    writes: list[LeaseRecord] = field(default_factory=list)
    description: str = "in-memory lease"

    def get(self) -> VersionedLease | None:
        self._check()
        return self.lease

    def create(self, record: LeaseRecord) -> VersionedLease | None:
        self._check()
        return None if self.lease is not None else self._put(record)

    def replace(self, record: LeaseRecord, version: str) -> VersionedLease | None:
        self._check()
        if self.lease is None or self.lease.version != version:
            return None
        return self._put(record)

    def _put(self, record: LeaseRecord) -> VersionedLease:
        self.version += 1
        self.lease = VersionedLease(record, str(self.version))
        self.writes.append(record)
        return self.lease

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("the API server is unreachable")


def _elector(store: MemoryLeaseStore, clock: Clock, identity: str) -> Elector:
    claim = LeaseClaim(store, identity=identity, timings=TIMINGS, clock=clock, wall=clock.wall)
    return Elector(claim, retry=TIMINGS.retry, fence=TIMINGS.renew_deadline, clock=clock)


def test_the_first_replica_creates_the_lease_and_leads() -> None:
    clock, store = Clock(), MemoryLeaseStore()
    a = _elector(store, clock, "pod-a")
    assert not a.is_leader()
    assert a.step() is True
    assert store.lease is not None
    record = store.lease.record
    assert record.holder == "pod-a" and record.duration_seconds == 15
    assert record.acquired_at == record.renewed_at == clock.wall() and record.transitions == 0


def test_renewing_keeps_the_acquire_time_and_moves_the_renew_time() -> None:
    clock, store = Clock(), MemoryLeaseStore()
    a = _elector(store, clock, "pod-a")
    a.step()
    acquired = clock.wall()
    for _ in range(20):  # 40 s of renewals, far past one lease duration
        clock.advance(TIMINGS.retry)
        assert a.step() is True
    assert store.lease is not None
    assert store.lease.record.acquired_at == acquired
    assert store.lease.record.renewed_at == clock.wall()


def test_a_follower_waits_while_the_leader_renews() -> None:
    clock, store = Clock(), MemoryLeaseStore()
    a, b = _elector(store, clock, "pod-a"), _elector(store, clock, "pod-b")
    a.step()
    for _ in range(30):
        clock.advance(TIMINGS.retry / 2)
        a.step()
        assert b.step() is False
    assert a.is_leader() and not b.is_leader()


def test_a_leader_that_cannot_renew_stops_at_the_renew_deadline_before_anyone_takes_over() -> None:
    clock, store = Clock(), MemoryLeaseStore()
    a, b = _elector(store, clock, "pod-a"), _elector(store, clock, "pod-b")
    a.step()
    b.step()  # b observes the lease now
    last_renew = clock.now
    lost_at = taken_at = None
    while taken_at is None:
        clock.advance(0.5)
        if lost_at is None and not a.is_leader():  # a cannot reach the API any more
            lost_at = clock.now
        if b.step():
            taken_at = clock.now
    assert lost_at is not None
    assert lost_at - last_renew == pytest.approx(TIMINGS.renew_deadline)
    assert taken_at - last_renew >= TIMINGS.duration  # only after a full lease duration
    assert lost_at < taken_at
    assert store.lease is not None and store.lease.record.transitions == 1


def test_a_failing_store_costs_leadership_at_the_deadline_and_renewing_later_restores_it() -> None:
    clock, store = Clock(), MemoryLeaseStore()
    a = _elector(store, clock, "pod-a")
    a.step()
    store.down = True
    clock.advance(TIMINGS.renew_deadline - 0.5)
    assert a.step() is True  # still inside the fence: jobs keep running
    clock.advance(1.0)
    assert a.step() is False
    store.down = False
    assert a.step() is True  # nobody took it: the same holder renews


def test_a_stale_version_loses_the_race() -> None:
    clock, store = Clock(), MemoryLeaseStore()
    a, b = _elector(store, clock, "pod-a"), _elector(store, clock, "pod-b")
    a.step()
    b.step()
    clock.advance(TIMINGS.duration + 1)  # a is gone: both b and c see an expired lease
    c = _elector(store, clock, "pod-c")
    assert b.claim.try_acquire_or_renew() is True
    # c read the lease when it was a's; by the time it writes, b changed it: c must lose.
    assert store.lease is not None
    stale = VersionedLease(store.lease.record, str(int(store.lease.version) - 1))
    assert store.replace(stale.record, stale.version) is None
    assert c.step() is False


def test_release_on_stop_lets_a_follower_take_over_at_once() -> None:
    clock, store = Clock(), MemoryLeaseStore()
    a, b = _elector(store, clock, "pod-a"), _elector(store, clock, "pod-b")
    a.step()
    assert b.step() is False
    a.stop()
    assert not a.is_leader()
    assert store.lease is not None and store.lease.record.holder == ""
    clock.advance(TIMINGS.retry)  # b's next attempt, far inside the old lease
    assert b.step() is True
    assert store.lease.record.holder == "pod-b" and store.lease.record.transitions == 1


def test_timings_must_keep_the_renew_deadline_inside_the_lease() -> None:
    assert LeaseTimings.scaled(15) == LeaseTimings(15, 10, 2)
    with pytest.raises(ValueError, match="lease duration > renew deadline"):
        LeaseTimings(duration=10, renew_deadline=10, retry=2)
    with pytest.raises(ValueError, match="fence"):
        Elector(LeaseClaim(MemoryLeaseStore(), identity="a", timings=TIMINGS), retry=2, fence=2)


@dataclass
class FlakyClaim:
    """A claim that holds until its session dies (an advisory lock)."""

    alive: bool = True
    description: str = "flaky lock"

    def try_acquire_or_renew(self) -> bool:
        if not self.alive:
            raise ConnectionError("server closed the connection unexpectedly")
        return True

    def release(self) -> None:
        self.alive = False


def test_drop_on_failure_ends_leadership_at_the_first_failed_attempt() -> None:
    clock = Clock()
    elector = Elector(FlakyClaim(), retry=2, fence=4, clock=clock, drop_on_failure=True)
    assert elector.step() is True
    claim = elector.claim
    assert isinstance(claim, FlakyClaim)
    claim.alive = False
    clock.advance(0.1)
    assert elector.step() is False  # not 3.9 s more of jobs on a lock someone else may hold


@pytest.mark.parametrize(
    ("setting", "database", "environ", "mode"),
    [
        ("auto", "sqlite:///a.db", {}, "none"),
        ("auto", "postgresql://db/bot", {}, "database"),
        ("auto", "postgresql://db/bot", {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, "kubernetes"),
        ("auto", "sqlite:///a.db", {"KUBECONFIG": "/home/me/.kube/config"}, "kubernetes"),
        ("auto", "sqlite:///a.db", {"KUBERNETES_SERVICE_HOST": ""}, "none"),
        ("none", "postgresql://db/bot", {"KUBECONFIG": "/k"}, "none"),
        ("database", "postgresql://db/bot", {"KUBECONFIG": "/k"}, "database"),
        ("kubernetes", "sqlite:///a.db", {}, "kubernetes"),
    ],
)
def test_auto_picks_the_lease_in_a_cluster_the_lock_on_postgresql_and_none_on_sqlite(
    setting: str, database: str, environ: dict[str, str], mode: str
) -> None:
    settings = Settings(database_url=database, leader_election=setting)
    assert election_mode(settings, environ) == mode


def test_database_election_on_sqlite_is_one_leader_by_construction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings(database_url="sqlite:///a.db", leader_election="database")
    with caplog.at_level("INFO", logger="bot.wiring_leader"):
        election = leader_election(settings, {})
    assert election.mode == "none" and election.components == ()
    assert election.leadership.is_leader()
    assert "leader by construction" in caplog.text


def test_the_lease_knob_scales_client_gos_timings() -> None:
    settings = Settings(lease_seconds=3)
    timings = LeaseTimings.scaled(settings.lease_seconds)
    assert (timings.duration, timings.renew_deadline, timings.retry) == pytest.approx((3, 2, 0.4))
    with pytest.raises(ValidationError):
        Settings(lease_seconds=1)
