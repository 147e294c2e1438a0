"""Cancel of a running key action at the service: who may, how fast, and the exact counts.

A real redis-server and audit database; the execution is held inside a progress report
(``tests.running_support.paused``) while the cancel is made, so "stops before its next
batch" is checked exactly: the keys changed are those of that report, in Redis too.
"""

from __future__ import annotations

import math

import pytest

from bot.approvals.liveness import ExecutorId
from bot.approvals.model import Actor, RequestState
from bot.errors import Refused
from tests.approvals_support import APPROVER, OUTSIDER, REQUESTER, Rig
from tests.dbfixtures import db_engine, db_url  # noqa: F401  (rig_db: SQLite and PostgreSQL)
from tests.remediation_support import load_sessions
from tests.running_support import expire_request, paused, service_as, with_ttl

pytest_plugins = ("tests.remediation_support", "tests.approvals_support")

HERE = ExecutorId(host="redis-mem-a", pid=10, boot="a" * 32)
THERE = ExecutorId(host="redis-mem-b", pid=10, boot="b" * 32)
APPROVER_2 = Actor("U0APPROV2", "bob")


def test_the_requester_cancels_and_the_next_batch_never_starts(rig: Rig) -> None:
    service = service_as(rig, HERE)
    request_id = expire_request(rig).id
    with paused(service, request_id) as held:
        running = service.get(request_id)
        at_cancel = running.progress_changed
        asked = service.cancel(request_id=request_id, actor=REQUESTER)
        assert asked.cancel_requested_by == REQUESTER.id
        assert service.get(request_id).cancel_requested_by == REQUESTER.id
    done = held.final()

    assert done.state is RequestState.CANCELLED, done.error
    assert done == service.get(request_id)
    assert done.result is not None
    changed = done.result["keys_changed"]
    assert changed == at_cancel == with_ttl(rig, 3000)  # exact, and what Redis shows
    assert 0 < changed < 3000
    assert done.result["bulk"]["stopped"] == "stopped"
    assert done.result["cancelled_by"] == REQUESTER.id
    assert done.result["state"].endswith(
        f": cancelled after {changed:,} keys; those keys stay changed"
    )
    assert done.error == done.result["state"]
    assert rig.actions(request_id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.cancel_requested",
        "remediation.cancelled",
        "remediation.verified",
    ]
    asked_row, cancelled_row = rig.rows(request_id)[2:4]
    assert asked_row.actor == REQUESTER.id and asked_row.parameters["running_here"] is True
    assert cancelled_row.outcome == "cancelled"
    assert cancelled_row.parameters["keys_changed"] == changed
    assert cancelled_row.parameters["cancelled_by"] == REQUESTER.id


def test_a_cancel_on_another_replica_stops_it_through_the_database(rig_db: Rig) -> None:
    rig = rig_db
    running = service_as(rig, HERE)
    other = service_as(rig, THERE)  # the click reached another replica
    request_id = expire_request(rig).id
    with paused(running, request_id) as held:
        at_cancel = running.get(request_id).progress_changed
        other.cancel(request_id=request_id, actor=APPROVER_2)
        assert rig.rows(request_id)[-1].parameters["running_here"] is False
    done = held.final()
    assert done.state is RequestState.CANCELLED
    assert done.result is not None and done.result["cancelled_by"] == APPROVER_2.id
    # Read from the row before the next batch (cancel_poll 0 in these tests).
    assert done.result["keys_changed"] == at_cancel == with_ttl(rig, 3000)


def test_only_the_requester_or_an_approver_may_cancel(rig: Rig) -> None:
    service = service_as(rig, HERE)
    request_id = expire_request(rig).id
    with paused(service, request_id):
        with pytest.raises(Refused, match=r"^only the requester or an approver can cancel it$"):
            service.cancel(request_id=request_id, actor=OUTSIDER)
        service.cancel(request_id=request_id, actor=APPROVER)  # the approver who approved it
        with pytest.raises(Refused, match=r"^already cancelled by U0APPROVE: it stops after"):
            service.cancel(request_id=request_id, actor=REQUESTER)
    denied = [r for r in rig.rows(request_id) if r.action == "access.denied"]
    assert [d.actor for d in denied] == [OUTSIDER.id, REQUESTER.id]
    assert service.get(request_id).state is RequestState.CANCELLED


def test_nothing_to_cancel_is_refused_and_audited(rig: Rig) -> None:
    service = service_as(rig, HERE)
    request = expire_request(rig, keys=200)
    with pytest.raises(Refused, match=r"^nothing to cancel: it is pending$"):
        service.cancel(request_id=request.id, actor=REQUESTER)
    done = service.approve(request_id=request.id, approver=APPROVER)
    assert done.state is RequestState.SUCCEEDED
    with pytest.raises(Refused, match=r"^nothing to cancel: it is succeeded$"):
        service.cancel(request_id=request.id, actor=REQUESTER)
    with pytest.raises(Refused, match=r"^unknown request$"):
        service.cancel(request_id="0" * 32, actor=REQUESTER)
    policy = service.request(
        actor=REQUESTER,
        action_id="set-eviction-policy",
        target_name=None,
        raw_params={"policy": "volatile-lru"},
        channel="C0OPS",
    )
    with pytest.raises(Refused, match=r"^set-eviction-policy cannot be cancelled$"):
        service.cancel(request_id=policy.id, actor=REQUESTER)
    assert rig.actions(request.id).count("access.denied") == 2
    assert with_ttl(rig, 200) == 200


def test_a_cancelled_eviction_says_how_many_of_how_many(rig: Rig) -> None:
    client = rig.env.client
    client.config_set("maxmemory-policy", "noeviction")
    load_sessions(client, 2000, idle=86400)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(math.ceil(used / 0.85)))
    service = service_as(rig, HERE)
    request = service.request(
        actor=REQUESTER,
        action_id="evict-idle-sessions",
        target_name=None,
        raw_params={"count": "1500"},
        channel="C0OPS",
    )
    with paused(service, request.id) as held:
        service.cancel(request_id=request.id, actor=REQUESTER)
    done = held.final()
    assert done.state is RequestState.CANCELLED, done.error
    assert done.result is not None
    gone = 2000 - int(client.dbsize())
    assert 0 < done.result["keys_changed"] == gone < 1500
    assert done.result["state"].endswith(
        f"cancelled after {gone:,} of 1,500 keys; those keys stay changed"
    )
