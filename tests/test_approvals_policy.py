"""REDIS_MEM_APPROVERS parsing and who counts as an approver."""

from __future__ import annotations

import pytest

from bot.approvals.model import RequestState, valid_request_id
from bot.approvals.policy import ApproverPolicy
from bot.errors import ConfigError, Refused
from tests.approvals_support import StaticGroups


def test_parse_users_and_groups() -> None:
    policy = ApproverPolicy.parse(" U012AB3CD, W0ENTERPRISE ,S0ONCALL,, ")
    assert policy.users == frozenset({"U012AB3CD", "W0ENTERPRISE"})
    assert policy.groups == frozenset({"S0ONCALL"})
    assert not policy.empty
    assert ApproverPolicy.parse(None).empty and ApproverPolicy.parse("").empty


@pytest.mark.parametrize("token", ["alice", "@alice", "u012ab3cd", "C0CHANNEL", "U"])
def test_parse_rejects_a_bad_token_in_one_line(token: str) -> None:
    with pytest.raises(ConfigError) as err:
        ApproverPolicy.parse(f"U012AB3CD,{token}")
    assert str(err.value) == (
        f"REDIS_MEM_APPROVERS: {token!r} is not a Slack user id (U.../W...) or user-group id (S...)"
    )


def test_group_members_via_the_resolver() -> None:
    groups = StaticGroups({"S0ONCALL": frozenset({"U0MEMBER"})})
    policy = ApproverPolicy.parse("U0LEAD,S0ONCALL", resolver=groups)
    assert policy.is_approver("U0LEAD") and groups.asked == []  # listed: no API call
    assert policy.is_approver("U0MEMBER")
    assert not policy.is_approver("U0OTHER")
    assert not ApproverPolicy.parse("S0ONCALL").is_approver("U0MEMBER")  # no resolver


def test_resolver_errors_propagate() -> None:
    class Failing:
        def members(self, group_id: str) -> frozenset[str]:
            raise Refused(f"could not read user group {group_id}: missing_scope usergroups:read")

    policy = ApproverPolicy.parse("S0ONCALL", resolver=Failing())
    with pytest.raises(Refused, match="missing_scope"):
        policy.is_approver("U0MEMBER")


def test_request_ids_and_final_states() -> None:
    assert valid_request_id("0123456789abcdef0123456789abcdef")
    assert not valid_request_id("0123456789ABCDEF0123456789ABCDEF")
    assert not valid_request_id("../../etc/passwd")
    assert [s.value for s in RequestState if not s.final] == ["pending", "executing"]
