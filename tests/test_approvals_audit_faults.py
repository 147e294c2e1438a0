"""An audit write failing AFTER the change ran: the stored request says the change was
applied and keeps the missing rows, which a sweep writes once the database takes them; when
even the request cannot be stored, the AuditUnavailable says the change was applied, and
nothing stays EXECUTING forever.

Real redis-server, fake Kubernetes API, real SQLite audit database (a real lock held by
another connection where the database itself must fail).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.approvals.backlog import AuditBacklog
from bot.approvals.gate import OUTCOME_UNKNOWN
from bot.approvals.model import ApprovalRequest, RequestState
from bot.approvals.unrecorded import BACKLOG_KEY, RECORDED_LATE_KEY
from bot.audit.engine import make_engine
from bot.audit.verify import verify_chain
from bot.errors import AuditUnavailable
from tests.approvals_support import (
    APPROVER,
    REQUESTER,
    LockingAudit,
    Rig,
    make_rig,
)
from tests.remediation_support import CONF_16MB, Env, load_sessions

pytest_plugins = ("tests.remediation_support", "tests.approvals_support")

VOLATILE_CONF = CONF_16MB.replace("maxmemory-policy allkeys-lru", "maxmemory-policy volatile-lru")


def _policy_request(rig: Rig) -> ApprovalRequest:
    load_sessions(rig.env.client, 50)
    return rig.service.request(
        actor=REQUESTER,
        action_id="set-eviction-policy",
        target_name=None,
        raw_params={"policy": "volatile-lru"},
        channel="C0OPS",
    )


def _applied(rig: Rig) -> None:
    assert rig.env.redis_conf() == VOLATILE_CONF
    assert rig.env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}


@pytest.fixture
def quick_rig(env: Env, tmp_path: Path) -> Iterator[Rig]:
    """The rig on SQLite with a short busy timeout, so a held lock fails writes quickly."""
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}", connect_args={"timeout": 0.2})
    yield make_rig(env, engine)
    engine.dispose()


def test_locked_database_after_the_change_says_it_was_applied(
    quick_rig: Rig, tmp_path: Path
) -> None:
    rig = quick_rig
    request = _policy_request(rig)
    locking = LockingAudit(rig.audit, path=tmp_path / "audit.db", lock_on="remediation.executed")
    service = rig.rebuild(audit=locking)
    try:
        with pytest.raises(AuditUnavailable, match="while recording an audit event") as caught:
            service.approve(request_id=request.id, approver=APPROVER)
    finally:
        locking.release()
    assert str(caught.value).startswith("set-eviction-policy on sessions was applied (")
    assert "neither its audit rows nor its result could be stored" in str(caught.value)
    # The cause is the audit write's error, not the one of storing the end (same lock).
    assert "updating an approval request" not in str(caught.value)
    _applied(rig)
    stuck = service.get(request.id)
    assert stuck.state is RequestState.EXECUTING  # the end could not be stored either
    assert rig.actions(request.id) == ["remediation.requested", "remediation.approved"]

    # Its execution is over, so its heartbeat stopped: once stale (not after an hour) the
    # sweep ends it as interrupted (bot/approvals/recovery.py).
    rig.clock.advance(seconds=40)
    assert service.expire_due() == []
    assert service.get(request.id).state is RequestState.EXECUTING
    rig.clock.advance(seconds=10)
    (ended,) = service.expire_due()
    assert ended.id == request.id and ended.state is RequestState.INTERRUPTED
    assert ended.error is not None and ended.error.startswith("interrupted: its bot process (")
    assert "stopped its heartbeat at 04:00:00 UTC" in ended.error
    assert "it reported no progress, so the change may or may not have started" in ended.error
    assert service.get(request.id) == ended
    last = rig.rows(request.id)[-1]
    assert last.action == "remediation.interrupted" and last.actor == "scheduler"
    assert last.outcome == "interrupted" and ended.error in last.summary
    assert service.expire_due() == []  # audited once


def test_request_left_executing_by_a_restart_is_failed_after_the_limit(rig: Rig) -> None:
    request = _policy_request(rig)
    # A bot that claimed the request and then died: the row stays EXECUTING.
    assert rig.store.transition(
        request.id,
        expected=RequestState.PENDING,
        to=RequestState.EXECUTING,
        decided_by=APPROVER.id,
        decided_at=rig.clock.now,
    )
    service = rig.rebuild(executing_limit=timedelta(minutes=30))
    rig.clock.advance(minutes=29)
    assert service.expire_due() == []
    rig.clock.advance(minutes=2)
    (failed,) = service.expire_due()
    assert failed.state is RequestState.FAILED and failed.error == OUTCOME_UNKNOWN
    assert rig.actions(request.id) == ["remediation.requested", "remediation.failed"]


def test_lost_verification_row_keeps_the_applied_result_until_it_is_written(rig: Rig) -> None:
    request = _policy_request(rig)
    rig.sink.fail_on = "remediation.verified"
    done = rig.service.approve(request_id=request.id, approver=APPROVER)  # no error: applied
    rig.sink.fail_on = None
    _applied(rig)
    assert done == rig.service.get(request.id)
    assert done.state is RequestState.SUCCEEDED
    assert done.error is not None
    assert done.error.startswith("applied, but not recorded in the audit trail: audit database")
    assert done.result is not None
    assert done.result["complete"] is True
    assert done.result["steps"][-1]["name"] == "ConfigMap" and done.result["steps"][-1]["ok"]
    assert done.result["verification"]["verdict"]
    owed = done.result[BACKLOG_KEY]["entries"]
    assert [e["action"] for e in owed] == ["remediation.verified"]
    assert rig.actions(request.id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.executed",
    ]

    backlog = AuditBacklog(store=rig.store, audit=rig.audit, clock=rig.clock)
    [recorded] = backlog.flush()
    assert recorded.id == request.id and recorded.state is RequestState.SUCCEEDED
    assert recorded.error is None
    assert recorded.result is not None and BACKLOG_KEY not in recorded.result
    assert recorded.result[RECORDED_LATE_KEY]["reason"] == done.result[BACKLOG_KEY]["reason"]
    last = rig.rows(request.id)[-1]
    assert last.action == "remediation.verified" and last.actor == APPROVER.id
    assert last.parameters["recorded_late"] is True and last.summary.endswith("[recorded late]")
    assert backlog.flush() == []  # written once
    assert verify_chain(rig.engine).ok


def test_lost_executed_row_keeps_it_and_every_later_row_in_order(rig: Rig) -> None:
    request = _policy_request(rig)
    rig.sink.fail_on = "remediation.executed"
    done = rig.service.approve(request_id=request.id, approver=APPROVER)
    rig.sink.fail_on = None
    _applied(rig)
    assert done.state is RequestState.SUCCEEDED
    assert done.error is not None and done.error.startswith("applied, but not recorded")
    assert done.result is not None and done.result["complete"] is True
    owed = done.result[BACKLOG_KEY]["entries"]
    # The verification ran (the change was applied) and its row queued behind the lost one.
    assert [e["action"] for e in owed] == ["remediation.executed", "remediation.verified"]
    assert rig.actions(request.id) == ["remediation.requested", "remediation.approved"]

    AuditBacklog(store=rig.store, audit=rig.audit, clock=rig.clock).flush()
    assert rig.actions(request.id)[2:] == ["remediation.executed", "remediation.verified"]
    assert rig.service.get(request.id).error is None


def test_lost_approved_row_still_stops_before_anything_runs(rig: Rig) -> None:
    request = _policy_request(rig)
    rig.sink.fail_on = "remediation.approved"
    with pytest.raises(AuditUnavailable):
        rig.service.approve(request_id=request.id, approver=APPROVER)
    rig.sink.fail_on = None
    assert rig.env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    stopped = rig.service.get(request.id)
    assert stopped.state is RequestState.FAILED
    assert stopped.error is not None
    assert stopped.error.startswith("audit unavailable, stopped before remediation.approved")
    assert AuditBacklog(store=rig.store, audit=rig.audit, clock=rig.clock).owing() == []
