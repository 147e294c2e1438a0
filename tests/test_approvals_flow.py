"""The approval state machine end to end: request -> approve -> execute -> verify, against a real
redis-server, the fake Kubernetes API server (real client) and a real audit database."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from bot.approvals.model import ApprovalRequest, RequestState
from bot.audit.verify import verify_chain
from tests.approvals_support import APPROVER, REDIS_CM, REQUESTER, Rig
from tests.remediation_support import CONF_16MB, load_sessions

pytest_plugins = ("tests.remediation_support", "tests.approvals_support")

VOLATILE_CONF = CONF_16MB.replace("maxmemory-policy allkeys-lru", "maxmemory-policy volatile-lru")


def _policy_request(rig: Rig) -> ApprovalRequest:
    return rig.service.request(
        actor=REQUESTER,
        action_id="set-eviction-policy",
        target_name=None,
        raw_params={"policy": "volatile-lru"},
        channel="C0OPS",
    )


def test_eviction_policy_requested_approved_executed_verified(rig: Rig) -> None:
    load_sessions(rig.env.client, 100)
    request = _policy_request(rig)
    assert request.state is RequestState.PENDING
    assert len(request.id) == 32 and request.requester == "U0REQUEST"
    assert request.created_at == rig.clock.now
    assert (request.expires_at - request.created_at).total_seconds() == 15 * 60
    assert request.preview["changes"][1]["diff"] == [
        "@@ line 7",
        "- maxmemory-policy allkeys-lru",
        "+ maxmemory-policy volatile-lru",
    ]
    assert rig.service.pending() == [request]
    rig.service.attach_message(request.id, channel="C0OPS", ts="1700000000.000100")

    done = rig.service.approve(request_id=request.id, approver=APPROVER)

    assert done.state is RequestState.SUCCEEDED, done.error
    assert done.decided_by == "U0APPROVE" and done.error is None
    assert rig.env.redis_conf() == VOLATILE_CONF
    assert rig.env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert done.result is not None and done.result["complete"] is True
    assert done.result["verification"]["verdict"]
    assert done.result["steps"][-1]["name"] == "ConfigMap" and done.result["steps"][-1]["ok"]
    assert rig.service.get(request.id) == done
    assert rig.service.pending() == []
    assert rig.actions(request.id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.executed",
        "remediation.verified",
    ]
    executed = rig.rows(request.id)[2]
    assert executed.parameters["request_id"] == request.id
    assert executed.parameters["params"] == {"policy": "volatile-lru"}
    assert executed.parameters["action_id"] == "set-eviction-policy"
    assert executed.channel == "C0OPS" and executed.message_ts == "1700000000.000100"
    assert executed.actor == "U0APPROVE" and rig.rows(request.id)[0].actor == "U0REQUEST"
    assert verify_chain(rig.engine).ok
    assert len([c for c in rig.env.fake.calls("PATCH") if c.path == REDIS_CM]) == 1


def test_expire_keys_reports_progress_and_exact_counts(rig: Rig) -> None:
    load_sessions(rig.env.client, 600, ttl=None)
    load_sessions(rig.env.client, 100, start=600, ttl=3600)
    request = rig.service.request(
        actor=REQUESTER,
        action_id="expire-keys-without-ttl",
        target_name="sessions",
        raw_params={"ttl_seconds": "12h"},
        channel=None,
    )
    seen: list[ApprovalRequest] = []

    done = rig.service.approve(request_id=request.id, approver=APPROVER, progress=seen.append)

    assert done.state is RequestState.SUCCEEDED, done.error
    assert done.result is not None and done.result["keys_changed"] == 600
    assert done.result["bulk"] == {"scanned": 700, "changed": 600, "skipped": 100, "stopped": None}
    assert seen[0].state is RequestState.EXECUTING and seen[-1] == done
    lines = [s.progress for s in seen if s.progress]
    assert len(lines) >= 2 and lines[-1] == "600 keys changed (700 scanned)"
    assert done.progress == "600 keys changed (700 scanned)"
    assert all(rig.env.client.ttl(f"session:{i}") > 3600 for i in range(600))
    assert all(0 < rig.env.client.ttl(f"session:{i}") <= 3600 for i in range(600, 700))
    executed = rig.rows(request.id)[2]
    assert executed.action == "remediation.executed"
    assert executed.parameters["keys_changed"] == 600
    assert executed.parameters["params"] == {"ttl_seconds": 43200}
    details = done.result["verification"]["details"]
    assert details == ["sampled session keys without TTL 600/700 -> 0/700"]


def test_progress_is_throttled_by_the_injected_clock(rig: Rig) -> None:
    load_sessions(rig.env.client, 500, ttl=None)
    rig.rebuild(progress_interval=timedelta(seconds=1))
    request = rig.service.request(
        actor=REQUESTER,
        action_id="expire-keys-without-ttl",
        target_name=None,
        raw_params={},
        channel=None,
    )
    seen: list[ApprovalRequest] = []
    done = rig.service.approve(request_id=request.id, approver=APPROVER, progress=seen.append)
    # The clock never moves: one progress report, plus the executing and final states.
    assert [s.progress for s in seen if s.progress and s.state is RequestState.EXECUTING] == [
        seen[1].progress
    ]
    assert done.result is not None and done.result["keys_changed"] == 500
    assert done.progress == "500 keys changed (500 scanned)"  # the final counts, not the first


def test_a_failing_progress_callback_does_not_stop_the_action(rig: Rig) -> None:
    load_sessions(rig.env.client, 400, ttl=None)
    request = rig.service.request(
        actor=REQUESTER,
        action_id="expire-keys-without-ttl",
        target_name=None,
        raw_params={"ttl_seconds": "86400"},
        channel=None,
    )
    calls: list[str] = []

    def slack_down(req: ApprovalRequest) -> None:
        calls.append(req.state.value)
        raise RuntimeError("slack_sdk.errors.SlackApiError: ratelimited")

    done = rig.service.approve(request_id=request.id, approver=APPROVER, progress=slack_down)
    assert done.state is RequestState.SUCCEEDED
    assert done.result is not None and done.result["keys_changed"] == 400
    assert len(calls) >= 3 and calls[-1] == "succeeded"
    assert rig.rows(request.id)[2].parameters["keys_changed"] == 400
    assert sum(rig.env.client.ttl(f"session:{i}") == -1 for i in range(400)) == 0


def test_evict_idle_sessions_runs_through_the_flow(rig: Rig) -> None:
    client = rig.env.client
    client.config_set("maxmemory-policy", "noeviction")  # Redis must not evict on its own
    load_sessions(client, 250, idle=100)
    load_sessions(client, 50, start=250, idle=86400)
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(math.ceil(used / 0.85)))
    request = rig.service.request(
        actor=REQUESTER,
        action_id="evict-idle-sessions",
        target_name=None,
        raw_params={"count": "50"},
        channel=None,
    )
    assert request.preview["loses_data"] and request.preview["logs_users_out"]
    done = rig.service.approve(request_id=request.id, approver=APPROVER)
    assert done.state is RequestState.SUCCEEDED, done.error
    assert done.result is not None and done.result["keys_changed"] == 50
    assert client.exists(*[f"session:{i}" for i in range(250, 300)]) == 0
    assert client.exists(*[f"session:{i}" for i in range(250)]) == 250
    assert rig.rows(request.id)[2].parameters["keys_changed"] == 50


def test_form_prefills_values_the_request_accepts(rig: Rig) -> None:
    load_sessions(rig.env.client, 200, ttl=None)
    form = rig.service.form(action_id="raise-maxmemory", target_name=None)
    assert form.target == "sessions" and form.preconditions == ()
    assert [s.name for s in form.specs] == ["maxmemory", "pod_memory_limit"]
    assert form.defaults["maxmemory"].endswith("mb")
    request = rig.service.request(
        actor=REQUESTER,
        action_id="raise-maxmemory",
        target_name=None,
        raw_params=form.defaults,
        channel=None,
    )
    assert request.state is RequestState.PENDING
    expire_form = rig.service.form(action_id="expire-keys-without-ttl", target_name="sessions")
    assert expire_form.defaults == {"ttl_seconds": "86400"}


def test_form_says_why_an_action_cannot_run(rig: Rig) -> None:
    load_sessions(rig.env.client, 50)
    form = rig.service.form(action_id="expire-keys-without-ttl", target_name=None)
    assert form.preconditions == ("the diagnosis found no session keys without TTL (50 sampled)",)


def test_attach_message_needs_a_known_request(rig: Rig) -> None:
    from bot.errors import Refused

    with pytest.raises(Refused, match=r"^unknown request$"):
        rig.service.attach_message("a" * 32, channel="C0OPS", ts="1.2")
    with pytest.raises(Refused, match=r"^unknown request$"):
        rig.service.attach_message("bad id", channel="C0OPS", ts="1.2")
