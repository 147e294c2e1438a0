"""The approval store on SQLite and PostgreSQL: round trip, conditional transitions, and races
(20 concurrent approvals -> exactly one execution, counted in the audit trail and the fake's
PATCH log)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from bot.approvals.model import Actor, ApprovalRequest, RequestState
from bot.approvals.policy import ApproverPolicy
from bot.approvals.store import ApprovalStore
from bot.audit.verify import verify_chain
from bot.errors import AuditUnavailable, Refused
from tests.approvals_support import REDIS_CM, REQUESTER, Rig
from tests.dbfixtures import db_engine, db_url  # noqa: F401
from tests.remediation_support import CONF_16MB, NOW, load_sessions

pytest_plugins = ("tests.remediation_support", "tests.approvals_support")

THREADS = 20


def _request(n: int = 0, *, minutes: int = 15) -> ApprovalRequest:
    created = NOW + timedelta(seconds=n)
    return ApprovalRequest(
        id=f"{n:032x}",
        action_id="set-eviction-policy",
        target="sessions",
        params={"policy": "volatile-lru", "n": n},
        preview={"action_id": "set-eviction-policy", "facts": {"v": "1"}, "changes": []},
        requester="U0REQUEST",
        requester_name="rita",
        state=RequestState.PENDING,
        created_at=created,
        expires_at=created + timedelta(minutes=minutes),
        channel="C0OPS",
    )


def _race(threads: int, work: object) -> list[object]:
    """Run ``work(i)`` in ``threads`` threads released together; their results or exceptions."""
    assert callable(work)
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as err:
            results[i] = err

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    return results


def test_round_trip_keeps_every_field(db_engine: Engine) -> None:  # noqa: F811
    store = ApprovalStore(db_engine)
    request = _request(1)
    store.add(request)
    assert store.get(request.id) == request
    assert store.get("f" * 32) is None
    got = store.get(request.id)
    assert got is not None and got.created_at.tzinfo is not None


def test_transitions_are_conditional(db_engine: Engine) -> None:  # noqa: F811
    store = ApprovalStore(db_engine)
    request = _request(2)
    store.add(request)
    late = NOW + timedelta(minutes=20)
    assert not store.transition(
        request.id, expected=RequestState.PENDING, to=RequestState.EXECUTING, unexpired_at=late
    )
    assert store.transition(
        request.id,
        expected=RequestState.PENDING,
        to=RequestState.EXECUTING,
        unexpired_at=NOW,
        decided_by="U0APPROVE",
        decided_at=NOW,
    )
    assert not store.transition(request.id, expected=RequestState.PENDING, to=RequestState.EXPIRED)
    result = {"complete": True, "state": "done", "steps": []}
    assert store.transition(
        request.id, expected=RequestState.EXECUTING, to=RequestState.SUCCEEDED, result=result
    )
    got = store.get(request.id)
    assert got is not None and got.state is RequestState.SUCCEEDED
    assert got.result == result and got.decided_by == "U0APPROVE" and got.decided_at == NOW
    with pytest.raises(ValueError, match="not a mutable approval column"):
        store.transition(
            request.id, expected=RequestState.SUCCEEDED, to=RequestState.PENDING, params={}
        )
    assert store.set_fields(request.id, progress="12 keys changed (40 scanned)")
    assert not store.set_fields("e" * 32, progress="x")


def test_pending_and_due_split_on_expiry(db_engine: Engine) -> None:  # noqa: F811
    store = ApprovalStore(db_engine)
    short, old, young = _request(3, minutes=5), _request(4), _request(5)
    for request in (young, short, old):
        store.add(request)
    at = NOW + timedelta(minutes=6)
    assert [r.id for r in store.pending(at)] == [old.id, young.id]
    assert [r.id for r in store.due(at)] == [short.id]


def test_twenty_concurrent_claims_one_winner(db_engine: Engine) -> None:  # noqa: F811
    store = ApprovalStore(db_engine)
    request = _request(6)
    store.add(request)

    def claim(i: int) -> bool:
        return store.transition(
            request.id,
            expected=RequestState.PENDING,
            to=RequestState.EXECUTING,
            unexpired_at=NOW,
            decided_by=f"U0APPR{i:03d}",
            decided_at=NOW,
        )

    results = _race(THREADS, claim)
    assert results.count(True) == 1 and results.count(False) == THREADS - 1
    got = store.get(request.id)
    assert got is not None and got.state is RequestState.EXECUTING
    assert got.decided_by == f"U0APPR{results.index(True):03d}"


def test_an_unreachable_database_is_audit_unavailable(tmp_path: object) -> None:
    from bot.audit.engine import make_engine

    engine = make_engine("sqlite:////nonexistent-dir/approvals.db")
    with pytest.raises(AuditUnavailable, match=r"unavailable while reading an approval request"):
        ApprovalStore(engine).get("a" * 32)
    engine.dispose()


def test_twenty_concurrent_approvals_execute_once(rig_db: Rig) -> None:
    rig = rig_db
    approvers = [f"U0APPR{i:03d}" for i in range(THREADS)]
    rig.rebuild(policy=ApproverPolicy.parse(",".join(approvers)))
    load_sessions(rig.env.client, 50)
    request = rig.service.request(
        actor=REQUESTER,
        action_id="set-eviction-policy",
        target_name=None,
        raw_params={"policy": "volatile-lru"},
        channel=None,
    )

    def approve(i: int) -> ApprovalRequest:
        return rig.service.approve(request_id=request.id, approver=Actor(approvers[i]))

    results = _race(THREADS, approve)
    done = [r for r in results if isinstance(r, ApprovalRequest)]
    refused = [r for r in results if isinstance(r, Refused)]
    assert len(done) == 1, results
    assert len(refused) == THREADS - 1, results
    assert done[0].state is RequestState.SUCCEEDED
    actions = rig.actions(request.id)
    assert actions.count("remediation.approved") == 1
    assert actions.count("remediation.executed") == 1
    assert actions.count("access.denied") == THREADS - 1
    assert len([c for c in rig.env.fake.calls("PATCH") if c.path == REDIS_CM]) == 1
    assert rig.env.redis_conf() == CONF_16MB.replace(
        "maxmemory-policy allkeys-lru", "maxmemory-policy volatile-lru"
    )
    assert verify_chain(rig.engine).ok
