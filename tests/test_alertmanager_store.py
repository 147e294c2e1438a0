"""The Alertmanager groups store and the service over it, on SQLite and PostgreSQL.

Concurrent re-sends of one group make one row; of concurrent claimers exactly one wins;
two services ("replicas") on one database delivering the same group at once post it
once. The poster here is a recording ``GroupPoster`` (the port), not Slack: the Slack
side is tested through a real ``redis-mem serve`` (tests/test_serve_alertmanager.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from bot.alertmanager.model import WebhookPayload, payload_from
from bot.alertmanager.ports import GroupView, Posted, PostError
from bot.alertmanager.service import AlertmanagerService
from bot.alertmanager.store import SqlGroupStore
from bot.alertmanager.tables import GROUPS
from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.config import Target
from bot.diagnosis.model import Diagnosis
from bot.errors import RedisUnavailable
from tests.dbfixtures import db_engine, db_url  # noqa: F401
from tests.test_alertmanager_payload import payload

T0 = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
LEASE = timedelta(minutes=2)
TARGETS = {"prod": Target(name="prod", redis_url="redis://127.0.0.1:1/0")}


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class RecordingPoster:
    """A GroupPoster that remembers what it showed; ``fail`` makes the next calls fail."""

    posts: list[tuple[str, GroupView]] = field(default_factory=list)
    updates: list[tuple[Posted, GroupView]] = field(default_factory=list)
    fail: list[PostError] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def post(self, channel: str, view: GroupView) -> Posted:
        with self.lock:
            if self.fail:
                raise self.fail.pop(0)
            self.posts.append((channel, view))
            return Posted("C0ALERTS", f"1700000000.{len(self.posts):06d}")

    def update(self, where: Posted, view: GroupView) -> Posted:
        with self.lock:
            if self.fail:
                raise self.fail.pop(0)
            self.updates.append((where, view))
            return where


def no_redis(target: str) -> Diagnosis:
    raise RedisUnavailable(f"cannot reach Redis of {target}")


def service(
    engine: Engine, poster: RecordingPoster, clock: Clock, owner: str = "a"
) -> AlertmanagerService:
    return AlertmanagerService(
        targets=TARGETS,
        default_channel="C0ALERTS",
        store=SqlGroupStore(engine),
        audit=SqlAuditStore(engine),
        poster=poster,
        diagnose=no_redis,
        clock=clock,
        owner=owner,
    )


def notification(**overrides: Any) -> WebhookPayload:
    return payload_from(payload(**overrides))


def rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(GROUPS)).scalar_one())


def test_record_then_claim_then_deliver(db_engine: Engine) -> None:  # noqa: F811
    store = SqlGroupStore(db_engine)
    sent = notification()
    kwargs = {"group_hash": sent.group_hash, "group_key": sent.group_key, "at": T0}
    assert store.record(status="firing", payload=sent.stored(), **kwargs) == 1
    assert store.pending(now=T0, limit=10) == [sent.group_hash]
    claimed = store.claim(sent.group_hash, owner="a", now=T0, lease=LEASE)
    assert claimed is not None and claimed.revision == 1 and claimed.message_ts is None
    assert store.claim(sent.group_hash, owner="b", now=T0, lease=LEASE) is None  # held
    store.delivered(sent.group_hash, owner="a", revision=1, channel="C1", ts="1.2",
                    status="firing", at=T0)  # fmt: skip
    assert store.pending(now=T0, limit=10) == []
    # A re-send: revision 2, pending again, and the claim hands back where the message is.
    assert store.record(status="firing", payload=sent.stored(), **kwargs) == 2
    again = store.claim(sent.group_hash, owner="b", now=T0, lease=LEASE)
    assert again is not None and (again.channel, again.message_ts, again.revision) == (
        "C1",
        "1.2",
        2,
    )


def test_a_stale_claim_is_taken_over(db_engine: Engine) -> None:  # noqa: F811
    store = SqlGroupStore(db_engine)
    sent = notification()
    store.record(group_hash=sent.group_hash, group_key=sent.group_key, status="firing",
                 payload=sent.stored(), at=T0)  # fmt: skip
    assert store.claim(sent.group_hash, owner="dead", now=T0, lease=LEASE) is not None
    assert store.claim(sent.group_hash, owner="b", now=T0 + LEASE, lease=LEASE) is None
    later = T0 + LEASE + timedelta(seconds=1)
    assert store.claim(sent.group_hash, owner="b", now=later, lease=LEASE) is not None
    # The dead owner's late answer changes nothing: the row is b's now.
    store.delivered(sent.group_hash, owner="dead", revision=1, channel="C1", ts="9.9",
                    status="firing", at=later)  # fmt: skip
    assert store.get(sent.group_hash)["message_ts"] is None  # type: ignore[index]


def test_racing_records_and_claims(db_url: str) -> None:  # noqa: F811
    engines = [make_engine(db_url) for _ in range(6)]  # as many processes
    upgrade(engines[0])
    sent = notification()
    barrier = threading.Barrier(len(engines))
    revisions: list[int] = []
    winners: list[str] = []

    def race(index: int, engine: Engine) -> None:
        store = SqlGroupStore(engine)
        barrier.wait()
        revisions.append(
            store.record(
                group_hash=sent.group_hash,
                group_key=sent.group_key,
                status="firing",
                payload=sent.stored(),
                at=T0,
            )
        )
        barrier.wait()
        if store.claim(sent.group_hash, owner=f"p{index}", now=T0, lease=LEASE) is not None:
            winners.append(f"p{index}")

    threads = [threading.Thread(target=race, args=pair) for pair in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(revisions) == [1, 2, 3, 4, 5, 6]
    assert len(winners) == 1
    assert rows(engines[0]) == 1
    for engine in engines:
        engine.dispose()


def test_two_replicas_delivering_one_group_post_it_once(db_url: str) -> None:  # noqa: F811
    engines = [make_engine(db_url) for _ in range(2)]
    upgrade(engines[0])
    poster, clock = RecordingPoster(), Clock()
    replicas = [service(e, poster, clock, owner=f"r{i}") for i, e in enumerate(engines)]
    sent = notification()
    barrier = threading.Barrier(2)

    def replica(svc: AlertmanagerService) -> None:
        svc.receive(sent)  # Alertmanager's HA pair: both replicas got the notification
        barrier.wait()
        svc.deliver_pending()

    threads = [threading.Thread(target=replica, args=(svc,)) for svc in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(poster.posts) == 1
    # Both receipts were revisions: one of them may still be pending for an update.
    for svc in replicas:
        svc.deliver_pending()
    assert len(poster.posts) == 1 and len(poster.updates) <= 1
    for engine in engines:
        engine.dispose()


def test_firing_posts_resending_updates_resolved_updates(db_engine: Engine) -> None:  # noqa: F811
    poster, clock = RecordingPoster(), Clock()
    svc = service(db_engine, poster, clock)
    svc.receive(notification())
    assert svc.deliver_pending() == 1
    [(channel, first)] = poster.posts
    assert channel == "C0ALERTS" and first.target == "prod" and first.status == "firing"
    assert first.diagnosis is None and first.diagnosis_error == "cannot reach Redis of prod"
    svc.receive(notification())
    svc.deliver_pending()
    resolved = payload(status="resolved")
    resolved["alerts"][0]["status"] = "resolved"
    svc.receive(payload_from(resolved))
    svc.deliver_pending()
    assert len(poster.posts) == 1
    [(where, _), (again, last)] = poster.updates
    assert where == again == Posted("C0ALERTS", "1700000000.000001")
    assert last.status == "resolved" and last.diagnosis_error is None  # no diagnosis once resolved
    # Firing again after it showed resolved: a new episode, a new message.
    svc.receive(notification())
    svc.deliver_pending()
    assert len(poster.posts) == 2 and len(poster.updates) == 2
    audit = SqlAuditStore(db_engine).list_entries(limit=10)
    actions = [e.action for e in audit]
    assert actions == [
        "alertmanager.firing",
        "alertmanager.resolved",
        "alertmanager.firing",
        "alertmanager.firing",
    ]
    newest = audit[0]
    assert newest.source == "webhook" and newest.target == "prod"
    assert dict(newest.parameters) == {
        "alertname": "RedisHighMemoryUsage",
        "severity": "warning",
        "group": notification().group_hash[:16],
        "fingerprint": "2f4b1c0d9e8a7b6c",
    }


def test_a_transient_failure_is_retried_later_a_permanent_one_given_up(
    db_engine: Engine,  # noqa: F811
) -> None:
    poster, clock = RecordingPoster(), Clock()
    svc = service(db_engine, poster, clock)
    poster.fail = [PostError("Slack chat.postMessage failed: ratelimited", transient=True)]
    svc.receive(notification())
    assert svc.deliver_pending() == 0
    assert svc.deliver_pending() == 0  # not due yet
    clock.now += timedelta(seconds=6)
    assert svc.deliver_pending() == 1 and len(poster.posts) == 1
    poster.fail = [PostError("Slack chat.update failed: invalid_blocks", transient=False)]
    svc.receive(notification())
    assert svc.deliver_pending() == 0
    clock.now += timedelta(hours=1)
    assert svc.deliver_pending() == 0 and poster.updates == []  # given up until a re-send
    svc.receive(notification())
    assert svc.deliver_pending() == 1 and len(poster.updates) == 1


def test_an_unmapped_alert_is_audited_and_shown_in_the_default_channel(
    db_engine: Engine,  # noqa: F811
) -> None:
    poster, clock = RecordingPoster(), Clock()
    svc = AlertmanagerService(
        targets={**TARGETS, "other": Target(name="other", channel="C0OTHER")},
        default_channel="C0ALERTS",
        store=SqlGroupStore(db_engine),
        audit=SqlAuditStore(db_engine),
        poster=poster,
        diagnose=no_redis,
        clock=clock,
    )
    body = payload(groupKey='{}:{alertname="X"}')
    body["alerts"][0]["labels"] = {"alertname": "X", "instance": "elsewhere:6379"}
    svc.receive(payload_from(body))
    svc.deliver_pending()
    [(channel, view)] = poster.posts
    assert channel == "C0ALERTS" and view.target is None and view.diagnosis_error is None
    assert view.alerts[0].why == "instance elsewhere:6379 is the Redis of no target"
    [row] = SqlAuditStore(db_engine).list_entries(limit=5)
    assert row.outcome == "unmapped" and row.target is None


@pytest.mark.parametrize("channel", ["C0PROD"])
def test_the_targets_channel_wins(db_engine: Engine, channel: str) -> None:  # noqa: F811
    poster = RecordingPoster()
    svc = AlertmanagerService(
        targets={"prod": Target(name="prod", redis_url="redis://127.0.0.1:1/0", channel=channel)},
        default_channel="C0ALERTS",
        store=SqlGroupStore(db_engine),
        audit=SqlAuditStore(db_engine),
        poster=poster,
        diagnose=no_redis,
        clock=Clock(),
    )
    svc.receive(notification())
    svc.deliver_pending()
    assert [c for c, _ in poster.posts] == [channel]
