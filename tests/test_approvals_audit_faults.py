"""An audit write failing AFTER the change ran: the stored request keeps what happened, the
original AuditUnavailable reaches the caller, and nothing stays EXECUTING forever.

Real redis-server, fake Kubernetes API, real SQLite audit database (a real lock held by
another connection where the database itself must fail).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.approvals.model import ApprovalRequest, RequestState
from bot.approvals.service import OUTCOME_UNKNOWN
from bot.audit.engine import make_engine
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


def test_locked_database_after_the_change_raises_the_original_error(
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
    # The error of the audit write, not the one of storing the end (same lock).
    assert "updating an approval request" not in str(caught.value)
    _applied(rig)
    stuck = service.get(request.id)
    assert stuck.state is RequestState.EXECUTING  # the end could not be stored either
    assert rig.actions(request.id) == ["remediation.requested", "remediation.approved"]

    rig.clock.advance(minutes=59)
    assert service.expire_due() == []
    assert service.get(request.id).state is RequestState.EXECUTING
    rig.clock.advance(minutes=2)
    (failed,) = service.expire_due()
    assert failed.id == request.id and failed.state is RequestState.FAILED
    assert failed.error == OUTCOME_UNKNOWN
    assert OUTCOME_UNKNOWN.startswith("outcome unknown: the bot stopped or lost its database")
    assert service.get(request.id) == failed
    last = rig.rows(request.id)[-1]
    assert last.action == "remediation.failed" and last.actor == "scheduler"
    assert last.outcome == "error" and OUTCOME_UNKNOWN in last.summary
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


def test_lost_verification_row_keeps_the_applied_result(rig: Rig) -> None:
    request = _policy_request(rig)
    rig.sink.fail_on = "remediation.verified"
    with pytest.raises(AuditUnavailable):
        rig.service.approve(request_id=request.id, approver=APPROVER)
    rig.sink.fail_on = None
    _applied(rig)
    done = rig.service.get(request.id)
    assert done.state is RequestState.SUCCEEDED
    assert done.error == "audit unavailable: verification not recorded"
    assert done.result is not None
    assert done.result["complete"] is True
    assert done.result["verification_recorded"] is False
    assert done.result["steps"][-1]["name"] == "ConfigMap" and done.result["steps"][-1]["ok"]
    assert "keys_changed" in done.result and done.result["state"]
    assert rig.actions(request.id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.executed",
    ]


def test_lost_executed_row_keeps_the_result_and_says_what_stopped(rig: Rig) -> None:
    request = _policy_request(rig)
    rig.sink.fail_on = "remediation.executed"
    with pytest.raises(AuditUnavailable):
        rig.service.approve(request_id=request.id, approver=APPROVER)
    rig.sink.fail_on = None
    _applied(rig)
    done = rig.service.get(request.id)
    assert done.state is RequestState.FAILED
    assert done.error is not None
    assert done.error.startswith("audit unavailable, stopped before remediation.executed")
    assert done.result is not None and done.result["complete"] is True
