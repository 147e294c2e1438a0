"""The message bookkeeping behind the redelivery, on SQLite and PostgreSQL.

What each request's message shows (migration 0004), which final requests lag behind
it, their backoff (never sooner than Slack's Retry-After) and giving up, through the
real ``ApprovalStore`` and ``MessageLedger`` on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from bot.approvals.ledger import MessageLedger
from bot.approvals.model import ApprovalRequest, RequestState
from bot.approvals.store import ApprovalStore
from tests.approvals_support import Clock
from tests.dbfixtures import db_engine, db_url  # noqa: F401 (fixtures)

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _request(n: int) -> ApprovalRequest:
    return ApprovalRequest(
        id=f"{n:032x}",
        action_id="set-eviction-policy",
        target="sessions",
        params={"policy": "volatile-lru"},
        preview={"title": "Set the eviction policy"},
        requester="U0REQUEST",
        requester_name="rita",
        state=RequestState.PENDING,
        created_at=NOW + timedelta(seconds=n),
        expires_at=NOW + timedelta(minutes=15),
        channel="C0OPS",
        team="T0FAKE",
    )


def _succeeded(store: ApprovalStore, request: ApprovalRequest, clock: Clock) -> None:
    store.add(request)
    assert store.attach(
        request.id,
        channel="C0OPS",
        ts=f"1700000000.{request.id[-6:]}",
        shown=request.state,
        at=clock(),
    )
    assert store.transition(request.id, expected=RequestState.PENDING, to=RequestState.EXECUTING)
    assert store.transition(request.id, expected=RequestState.EXECUTING, to=RequestState.SUCCEEDED)


def test_lagging_final_messages_back_off_and_stop_once_shown(db_engine: Engine) -> None:  # noqa: F811
    store, clock = ApprovalStore(db_engine), Clock(NOW)
    ledger = MessageLedger(store, clock)
    pending = _request(1)
    store.add(pending)
    store.attach(
        pending.id, channel="C0OPS", ts="1700000000.000001", shown=RequestState.PENDING, at=NOW
    )
    assert ledger.lagging() == []  # pending and shown pending: nothing to do
    done = _request(2)
    _succeeded(store, done, clock)

    [lag] = ledger.lagging()
    assert (lag.request.id, lag.request.state, lag.attempts) == (done.id, RequestState.SUCCEEDED, 0)
    assert lag.request.team == "T0FAKE" and lag.request.shown_state is RequestState.PENDING
    ledger.failed(lag, retry_after=45)  # longer than the first 30 s of backoff
    clock.advance(seconds=44)
    assert ledger.lagging() == []
    clock.advance(seconds=2)
    [lag] = ledger.lagging()
    assert lag.attempts == 1
    ledger.failed(lag)
    clock.advance(seconds=59)
    assert ledger.lagging() == []  # second failure: 60 s
    clock.advance(seconds=2)
    [lag] = ledger.lagging()
    ledger.shown(lag.request)

    assert ledger.lagging() == []
    clock.advance(hours=5)
    assert ledger.lagging() == []
    stored = store.get(done.id)
    assert stored is not None and stored.shown_state is RequestState.SUCCEEDED
    # A late progress update cannot make the finished request look unfinished.
    assert not store.mark_shown(done.id, RequestState.EXECUTING, at=clock())
    assert store.get(done.id).shown_state is RequestState.SUCCEEDED  # type: ignore[union-attr]


def test_a_message_given_up_on_is_never_tried_again(db_engine: Engine) -> None:  # noqa: F811
    store, clock = ApprovalStore(db_engine), Clock(NOW)
    ledger = MessageLedger(store, clock)
    for n in (1, 2):
        _succeeded(store, _request(n), clock)
    first, second = ledger.lagging()
    assert first.request.id == _request(1).id  # oldest first, at equal attempts

    ledger.failed(first, gave_up="Slack refused the update: message_not_found")
    ledger.failed(second)
    clock.advance(days=30)

    [left] = ledger.lagging()
    assert left.request.id == second.request.id and left.attempts == 1
