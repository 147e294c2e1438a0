"""Every refusal leaves the world unchanged (ConfigMap text, Redis) and writes an audit row;
failures mid-action are stated exactly. Real redis-server, fake Kubernetes API, real audit DB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import text

from bot.approvals.model import Actor, ApprovalRequest, RequestState
from bot.approvals.policy import ApproverPolicy
from bot.audit.verify import verify_chain
from bot.errors import AuditUnavailable, Refused, UsageError
from bot.remediation.model import RemediationLimits
from tests.approvals_support import (
    APPROVER,
    ONCALL_MEMBER,
    OUTSIDER,
    REDIS_CM,
    REQUESTER,
    Rig,
    StaticGroups,
)
from tests.remediation_support import CONF_16MB, load_sessions

pytest_plugins = ("tests.remediation_support", "tests.approvals_support")


def _policy_request(rig: Rig) -> ApprovalRequest:
    return rig.service.request(
        actor=REQUESTER,
        action_id="set-eviction-policy",
        target_name=None,
        raw_params={"policy": "volatile-lru"},
        channel="C0OPS",
    )


def _unchanged(rig: Rig) -> None:
    assert rig.env.redis_conf() == CONF_16MB
    assert rig.env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert rig.env.fake.calls("PATCH") == []


@pytest.fixture
def pending(rig: Rig) -> Iterator[ApprovalRequest]:
    load_sessions(rig.env.client, 50)
    yield _policy_request(rig)


def _refused(rig: Rig, request: ApprovalRequest, actor: Actor, match: str) -> None:
    before = len(rig.rows())
    with pytest.raises(Refused, match=match):
        rig.service.approve(request_id=request.id, approver=actor)
    denied = rig.rows()[before:]
    assert [r.action for r in denied][-1] == "access.denied"
    assert denied[-1].actor == actor.id and denied[-1].outcome == "denied"
    _unchanged(rig)


def test_self_approval_is_refused(rig: Rig, pending: ApprovalRequest) -> None:
    _refused(rig, pending, REQUESTER, r"^you cannot approve your own request$")
    assert rig.service.get(pending.id).state is RequestState.PENDING


def test_requester_who_is_an_approver_still_cannot_approve(rig: Rig) -> None:
    load_sessions(rig.env.client, 50)
    request = rig.service.request(
        actor=APPROVER,
        action_id="set-eviction-policy",
        target_name=None,
        raw_params={"policy": "volatile-lru"},
        channel=None,
    )
    _refused(rig, request, APPROVER, r"^you cannot approve your own request$")


def test_approver_not_listed_is_refused(rig: Rig, pending: ApprovalRequest) -> None:
    _refused(rig, pending, OUTSIDER, r"^you are not an approver \(REDIS_MEM_APPROVERS\)$")
    assert rig.service.get(pending.id).state is RequestState.PENDING


def test_group_member_may_approve_non_member_may_not(rig: Rig) -> None:
    groups = StaticGroups({"S0ONCALL": frozenset({"W0ONCALL1"})})
    rig.rebuild(policy=ApproverPolicy.parse("S0ONCALL", resolver=groups))
    load_sessions(rig.env.client, 50)
    request = _policy_request(rig)
    _refused(rig, request, OUTSIDER, r"^you are not an approver")
    assert groups.asked == ["S0ONCALL"]
    done = rig.service.approve(request_id=request.id, approver=ONCALL_MEMBER)
    assert done.state is RequestState.SUCCEEDED and done.decided_by == "W0ONCALL1"


def test_expired_request_is_refused_and_marked_expired(rig: Rig, pending: ApprovalRequest) -> None:
    rig.clock.advance(minutes=15)
    before = len(rig.rows())
    with pytest.raises(Refused, match=r"^this request expired at 04:15 UTC: request it again$"):
        rig.service.approve(request_id=pending.id, approver=APPROVER)
    assert [r.action for r in rig.rows()[before:]] == ["remediation.expired", "access.denied"]
    assert rig.service.get(pending.id).state is RequestState.EXPIRED
    assert rig.service.pending() == [] and rig.service.expire_due() == []
    _unchanged(rig)
    with pytest.raises(Refused, match=r"expired at 04:15 UTC"):
        rig.service.approve(request_id=pending.id, approver=APPROVER)


def test_expire_due_expires_only_what_is_due(rig: Rig, pending: ApprovalRequest) -> None:
    rig.clock.advance(minutes=10)
    later = _policy_request(rig)
    assert rig.service.expire_due() == []
    rig.clock.advance(minutes=5)
    (expired,) = rig.service.expire_due()
    assert expired.id == pending.id and expired.state is RequestState.EXPIRED
    assert rig.service.pending() == [later]
    assert rig.actions(pending.id)[-1] == "remediation.expired"
    assert rig.rows(pending.id)[-1].actor == "scheduler"
    assert rig.service.expire_due() == []  # audited once


@pytest.mark.parametrize("request_id", ["0" * 32, "not-a-request-id", "", "A" * 500])
def test_unknown_or_malformed_request_id(rig: Rig, request_id: str) -> None:
    with pytest.raises(Refused, match=r"^unknown request$"):
        rig.service.approve(request_id=request_id, approver=APPROVER)
    with pytest.raises(Refused, match=r"^unknown request$"):
        rig.service.reject(request_id=request_id, actor=APPROVER)
    with pytest.raises(Refused, match=r"^unknown request$"):
        rig.service.get(request_id)
    rows = rig.rows()
    assert [r.action for r in rows] == ["access.denied", "access.denied"]
    assert len(rows[0].request_id or "") <= 64
    _unchanged(rig)


def test_second_approval_of_a_done_request(rig: Rig, pending: ApprovalRequest) -> None:
    done = rig.service.approve(request_id=pending.id, approver=APPROVER)
    assert done.state is RequestState.SUCCEEDED
    conf, patches = rig.env.redis_conf(), len(rig.env.fake.calls("PATCH"))
    with pytest.raises(Refused, match=r"^this request is already succeeded by U0APPROVE$"):
        rig.service.approve(request_id=pending.id, approver=Actor("U0APPROV2"))
    assert rig.actions(pending.id)[-1] == "access.denied"
    assert rig.env.redis_conf() == conf and len(rig.env.fake.calls("PATCH")) == patches
    assert rig.actions().count("remediation.executed") == 1


def test_reject_and_cancel(rig: Rig, pending: ApprovalRequest) -> None:
    with pytest.raises(Refused, match=r"^only an approver or the requester can reject$"):
        rig.service.reject(request_id=pending.id, actor=OUTSIDER)
    rejected = rig.service.reject(request_id=pending.id, actor=APPROVER)
    assert rejected.state is RequestState.REJECTED and rejected.decided_by == "U0APPROVE"
    with pytest.raises(Refused, match=r"already rejected by U0APPROVE"):
        rig.service.approve(request_id=pending.id, approver=APPROVER)
    other = _policy_request(rig)
    cancelled = rig.service.reject(request_id=other.id, actor=REQUESTER)
    assert cancelled.state is RequestState.REJECTED
    assert rig.rows(other.id)[-1].outcome == "cancelled"
    assert rig.actions(pending.id) == [
        "remediation.requested",
        "access.denied",
        "remediation.rejected",
        "access.denied",
    ]
    _unchanged(rig)


@pytest.mark.parametrize(
    ("action_id", "raw", "message"),
    [
        ("raise-maxmemory", {"maxmemory": "1mb"}, r"is not above used memory"),
        (
            "expire-keys-without-ttl",
            {"ttl_seconds": "59"},
            r"^ttl_seconds must be between 60 and 2592000 \(got 59\)$",
        ),
        ("expire-keys-without-ttl", {"ttl_seconds": "31d"}, r"\(got 2678400\)$"),
        (
            "evict-idle-sessions",
            {"count": "1001"},
            r"^count must be between 1 and 1000 \(got 1001\)$",
        ),
        ("set-eviction-policy", {"policy": "lru"}, r"^policy must be one of"),
        ("set-eviction-policy", {"colour": "red"}, r"^unknown parameter 'colour'"),
        ("no-such-action", {}, r"^unknown action 'no-such-action'"),
    ],
)
def test_parameters_out_of_range_are_refused_at_request_time(
    rig: Rig, action_id: str, raw: dict[str, str], message: str
) -> None:
    rig.rebuild(limits=RemediationLimits(max_keys=1000))
    load_sessions(rig.env.client, 200, ttl=None)
    with pytest.raises(UsageError, match=message):
        rig.service.request(
            actor=REQUESTER, action_id=action_id, target_name=None, raw_params=raw, channel=None
        )
    (row,) = rig.rows()
    assert row.action == "remediation.refused" and row.outcome == "invalid"
    assert row.actor == "U0REQUEST" and row.parameters["action_id"] == action_id
    assert rig.service.pending() == []
    _unchanged(rig)
    assert sum(rig.env.client.ttl(f"session:{i}") == -1 for i in range(200)) == 200


def test_unknown_target_and_failed_precondition_are_refused(rig: Rig) -> None:
    load_sessions(rig.env.client, 50)
    with pytest.raises(UsageError, match=r"^unknown target 'prod'"):
        rig.service.request(
            actor=REQUESTER, action_id="set-eviction-policy", target_name="prod",
            raw_params={}, channel=None,
        )  # fmt: skip
    with pytest.raises(Refused, match=r"^expire-keys-without-ttl cannot run now: the diagnosis"):
        rig.service.request(
            actor=REQUESTER, action_id="expire-keys-without-ttl", target_name=None,
            raw_params={}, channel=None,
        )  # fmt: skip
    assert [r.outcome for r in rig.rows()] == ["invalid", "refused"]
    assert rig.service.pending() == []


def test_no_approvers_configured_refuses_requests(rig: Rig) -> None:
    rig.rebuild(policy=ApproverPolicy.parse(None))
    load_sessions(rig.env.client, 50)
    with pytest.raises(Refused, match=r"^no approvers are configured"):
        _policy_request(rig)
    assert rig.service.pending() == []


def test_recheck_after_a_concurrent_configmap_edit_refuses(
    rig: Rig, pending: ApprovalRequest
) -> None:
    edited = CONF_16MB + "# tuned by hand\n"
    rig.env.cluster.patch_configmap_key(
        namespace="langgraph-agent", name="redis-session-config", key="redis.conf", value=edited
    )
    patches = len(rig.env.fake.calls("PATCH"))
    done = rig.service.approve(request_id=pending.id, approver=APPROVER)
    assert done.state is RequestState.REFUSED
    assert done.error is not None
    assert done.error.startswith("configmap_resource_version changed since the preview")
    assert rig.env.redis_conf() == edited
    assert rig.env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert len(rig.env.fake.calls("PATCH")) == patches
    assert rig.actions(pending.id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.refused",
    ]
    assert rig.rows(pending.id)[-1].summary.startswith("not executed: configmap_resource_version")


def test_kubernetes_403_on_patch_fails_with_the_exact_partial_state(
    rig: Rig, pending: ApprovalRequest
) -> None:
    rig.env.fake.fail_next("PATCH", REDIS_CM, 403, message="configmaps is forbidden")
    done = rig.service.approve(request_id=pending.id, approver=APPROVER)
    assert done.state is RequestState.FAILED
    assert done.result is not None and done.result["complete"] is False
    assert done.error == done.result["state"]
    assert done.error == (
        "live maxmemory-policy set to volatile-lru; ConfigMap NOT changed (Kubernetes refused to "
        "patch configmap langgraph-agent/redis-session-config (403 Forbidden): the bot's "
        'ServiceAccount lacks "patch" on configmaps — see deploy/base/rbac.yaml): the live value '
        "will be lost on restart"
    )
    assert rig.env.redis_conf() == CONF_16MB  # not written
    assert rig.env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert rig.actions(pending.id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.failed",
        "remediation.verified",
    ]
    failed = rig.rows(pending.id)[2]
    assert failed.outcome == "error" and failed.parameters["state"] == done.error
    assert verify_chain(rig.engine).ok


def test_redis_down_mid_action_fails_with_exact_keys_changed(rig: Rig) -> None:
    load_sessions(rig.env.client, 2000, ttl=None)
    request = rig.service.request(
        actor=REQUESTER,
        action_id="expire-keys-without-ttl",
        target_name=None,
        raw_params={"ttl_seconds": "3600"},
        channel=None,
    )
    truth: list[int] = []

    def stop_redis_after_first_batch(req: ApprovalRequest) -> None:
        if req.progress and not truth:
            # What Redis really holds at the moment it dies: nothing can change after.
            client = redis.Redis.from_url(rig.env.server.url)
            keys = list(client.scan_iter("session:*", count=1000))
            truth.append(sum(1 for key in keys if client.ttl(key) > 0))
            client.close()
            rig.env.server.stop()

    done = rig.service.approve(
        request_id=request.id, approver=APPROVER, progress=stop_redis_after_first_batch
    )
    assert done.state is RequestState.FAILED
    assert done.result is not None
    assert 0 < truth[0] < 2000
    assert done.result["keys_changed"] == truth[0]
    assert done.result["verification"] is None
    assert done.result["verification_error"].startswith("could not verify: ")
    failed = rig.rows(request.id)[2]
    assert failed.action == "remediation.failed"
    assert failed.parameters["keys_changed"] == truth[0]
    assert f"set on {truth[0]:,} keys" in failed.parameters["state"]


def test_audit_unavailable_at_request_stores_nothing(rig: Rig) -> None:
    load_sessions(rig.env.client, 50)
    rig.sink.broken = True
    with pytest.raises(AuditUnavailable):
        _policy_request(rig)
    assert rig.service.pending() == []
    rig.sink.broken = False
    assert rig.rows() == []
    _unchanged(rig)


def test_audit_unavailable_at_approval_executes_nothing(rig: Rig, pending: ApprovalRequest) -> None:
    rig.sink.broken = True
    with pytest.raises(AuditUnavailable):
        rig.service.approve(request_id=pending.id, approver=APPROVER)
    rig.sink.broken = False
    after = rig.service.get(pending.id)
    assert after.state is RequestState.FAILED
    assert after.error is not None
    assert after.error.startswith("audit unavailable, stopped before remediation.approved")
    _unchanged(rig)
    assert rig.actions(pending.id) == ["remediation.requested"]
    with pytest.raises(Refused, match="already failed"):
        rig.service.approve(request_id=pending.id, approver=APPROVER)


def test_unusable_sqlite_database_stores_and_executes_nothing(rig: Rig) -> None:
    load_sessions(rig.env.client, 50)
    with rig.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_chain_head"))
    with pytest.raises(AuditUnavailable, match=r"audit database sqlite:///.* unavailable"):
        _policy_request(rig)
    with rig.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM approval_requests")).scalar_one() == 0
    _unchanged(rig)


def test_group_lookup_failure_refuses_and_is_audited(rig: Rig) -> None:
    class SlackDown:
        def members(self, group_id: str) -> frozenset[str]:
            raise Refused(f"could not list user group {group_id}: ratelimited")

    rig.rebuild(policy=ApproverPolicy.parse("S0ONCALL", resolver=SlackDown()))
    load_sessions(rig.env.client, 50)
    request = _policy_request(rig)
    _refused(rig, request, ONCALL_MEMBER, r"^could not check the approver groups: could not list")
    assert rig.service.get(request.id).state is RequestState.PENDING
