"""Every catalogue action from Slack: requested, previewed, approved, executed, verified, audited.

One parametrized test per action id of ``CATALOGUE``: the real redis-server is
prepared so the action's preconditions hold (idle times set with DUMP +
RESTORE ... IDLETIME, never by sleeping), then a signed ``/redis-mem fix``
posts the approval message, a listed approver clicks Approve, and once the
final ``chat.update`` is seen the end state is checked in the fake Kubernetes
API, in Redis, on the request, on the message and in the audit chain.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.approvals.model import ApprovalRequest, RequestState
from bot.audit.verify import verify_chain
from bot.remediation.catalogue import CATALOGUE
from tests.fakekube import NAMESPACE
from tests.remediation_support import CONF_16MB, Env, load_sessions
from tests.slack_remediation_support import (
    APPROVER,
    CHANNEL,
    SlackBot,
    ts_of,
    wait_for_final_update,
)
from tests.slackcheck import button_values, rebuilt

pytest_plugins = ("tests.remediation_support", "tests.slack_remediation_support")

SUCCEEDED, FAILED = RequestState.SUCCEEDED, RequestState.FAILED
REDIS_POD = "redis-session-7d9f8c6b5-x2k9p"
OTHER_PODS = [  # bystanders in the namespace: the app, the backup job, the bot itself
    "langgraph-agent-5c4d7b9f8-q8r7t",
    "langgraph-agent-5c4d7b9f8-xk2lp",
    "redis-mem-6f7c9d8b4-m4n5p",
    "redis-session-backup-28461-h7d2s",
]
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Debian's redis-server is built without Redis's jemalloc: it refuses activedefrag.
DEFRAG_REFUSED = (
    "live activedefrag NOT changed (CONFIG SET activedefrag yes not applied: Redis rejected it: "
    "CONFIG SET failed (possibly related to argument 'activedefrag') - Active defragmentation "
    "cannot be enabled: it requires a Redis server compiled with a modified Jemalloc like the "
    "one shipped by default with the Redis source distribution); "
    "live active-defrag-cycle-min NOT changed (not attempted); "
    "live active-defrag-cycle-max NOT changed (not attempted); "
    "ConfigMap NOT changed (not attempted): the ConfigMap was NOT written: a value Redis "
    "refuses would stop it from starting; nothing changed"
)


@dataclass(frozen=True)
class Case:
    """How to make one action runnable, what its preview must say, and what it must leave."""

    command: str
    prepare: Callable[[Env], None]
    preview: tuple[str, ...]  # lines (or parts of lines) the approval message shows
    check: Callable[[SlackBot], None]
    final: RequestState = SUCCEEDED
    result: tuple[str, ...] = ()  # lines the final message shows besides state and verification


# Preparing Redis ---------------------------------------------------------------------------


def sessions_with_ttl(env: Env) -> None:
    """100 sessions, each with a TTL (the healthy baseline)."""
    load_sessions(env.client, 100)


def sessions_without_ttl(env: Env) -> None:
    """60 sessions without TTL and 40 with one."""
    load_sessions(env.client, 60, ttl=None)
    load_sessions(env.client, 40, start=60)


def crowded_with_idle_sessions(env: Env) -> None:
    """300 recent sessions and 100 idle 2h; maxmemory so usage is ~85% (>= 80%).

    noeviction: Redis itself must not evict keys when client buffers push used memory up.
    """
    env.client.config_set("maxmemory-policy", "noeviction")
    load_sessions(env.client, 300, idle=100)
    load_sessions(env.client, 100, start=300, idle=7200)
    used = int(env.client.info("memory")["used_memory"])
    env.client.config_set("maxmemory", str(math.ceil(used / 0.85)))


# End states --------------------------------------------------------------------------------


def restarted_at(env: Env, deployment: str) -> str | None:
    spec: Any = env.deployment(deployment)["spec"]
    annotations = spec["template"].get("metadata", {}).get("annotations", {})
    value = annotations.get(RESTARTED_AT)
    return None if value is None else str(value)


def redis_container(env: Env) -> dict[str, Any]:
    spec: Any = env.deployment("redis-session")["spec"]
    [redis] = [c for c in spec["template"]["spec"]["containers"] if c["name"] == "redis"]
    return dict(redis)


def app_left_alone(env: Env) -> None:
    assert restarted_at(env, "langgraph-agent") is None
    assert env.app_config() == {
        "session_ttl_seconds": "86400",
        "session_max_concurrent": "5",
        "session_sliding_window": "false",
    }


def app_rolled(bot: SlackBot, key: str, value: str) -> None:
    """Only ``key`` changed in the app ConfigMap, and the app restarted at the bot's clock."""
    env = bot.env
    expected = {
        "session_ttl_seconds": "86400",
        "session_max_concurrent": "5",
        "session_sliding_window": "false",
        key: value,
    }
    assert env.app_config() == expected
    assert restarted_at(env, "langgraph-agent") == bot.clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert restarted_at(env, "redis-session") is None
    assert env.redis_conf() == CONF_16MB
    assert env.fake.pod_names() == sorted([REDIS_POD, *OTHER_PODS])


def check_raise_maxmemory(bot: SlackBot) -> None:
    env = bot.env
    assert env.redis_conf() == CONF_16MB.replace("maxmemory 16mb", "maxmemory 1024mb")
    assert env.client.config_get("maxmemory") == {"maxmemory": str(1024 * 1024 * 1024)}
    assert redis_container(env)["resources"] == {
        "requests": {"cpu": "100m", "memory": "1024Mi"},
        "limits": {"cpu": "1", "memory": "1536Mi"},
    }
    app_left_alone(env)


def check_shorten_ttl(bot: SlackBot) -> None:
    app_rolled(bot, "session_ttl_seconds", "43200")


def check_limit_sessions(bot: SlackBot) -> None:
    app_rolled(bot, "session_max_concurrent", "3")


def check_sliding_window(bot: SlackBot) -> None:
    app_rolled(bot, "session_sliding_window", "true")


def check_expire(bot: SlackBot) -> None:
    client = bot.env.client
    fixed = [client.ttl(f"session:{i}") for i in range(60)]
    kept = [client.ttl(f"session:{i}") for i in range(60, 100)]
    assert all(0 < ttl <= 3600 for ttl in fixed)
    assert all(3600 < ttl <= 86400 for ttl in kept)  # NX: a TTL already set is left alone
    assert client.dbsize() == 100
    assert bot.env.redis_conf() == CONF_16MB


def check_restart(bot: SlackBot) -> None:
    env = bot.env
    assert env.fake.pod_names() == OTHER_PODS
    assert env.fake.pod_names("staging") == ["redis-session-0"]
    assert env.redis_conf() == CONF_16MB
    app_left_alone(env)


def check_defrag_refused(bot: SlackBot) -> None:
    env = bot.env
    assert env.redis_conf() == CONF_16MB  # a directive Redis refuses would stop it starting
    assert env.client.config_get("activedefrag") == {"activedefrag": "no"}
    [request] = requests_of(bot)
    assert request.error == DEFRAG_REFUSED
    assert request.result is not None and request.result["state"] == DEFRAG_REFUSED


def check_policy(bot: SlackBot) -> None:
    env = bot.env
    assert env.redis_conf() == CONF_16MB.replace(
        "maxmemory-policy allkeys-lru", "maxmemory-policy volatile-lru"
    )
    assert env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert env.client.dbsize() == 100


def check_evict(bot: SlackBot) -> None:
    client = bot.env.client
    assert sum(client.exists(f"session:{i}") for i in range(300, 400)) == 40
    assert sum(client.exists(f"session:{i}") for i in range(300)) == 300  # recent: all kept
    assert client.dbsize() == 340
    assert bot.env.redis_conf() == CONF_16MB
    [request] = requests_of(bot)
    assert request.result is not None and request.result["keys_changed"] == 60


CASES: dict[str, Case] = {
    "raise-maxmemory": Case(
        "fix raise-maxmemory maxmemory=1gb",
        sessions_with_ttl,
        (
            "• New maxmemory: `1.0 GB`",
            "• live CONFIG SET maxmemory: 16777216 -> 1073741824",
            "redis.conf: maxmemory 16mb -> maxmemory 1024mb",
            "- maxmemory 16mb\n+ maxmemory 1024mb",
            f"Deployment {NAMESPACE}/redis-session container redis: limits.memory 768Mi -> 1536Mi",
            "requests.memory 512Mi -> 1024Mi",
        ),
        check_raise_maxmemory,
        result=(
            "✅ live maxmemory: live maxmemory set to 1024mb",
            "limits.memory 1536Mi, requests.memory 1024Mi (the pod rolls)",
        ),
    ),
    "shorten-session-ttl": Case(
        "fix shorten-session-ttl",  # the default: half of 24h
        sessions_with_ttl,
        (
            f"• ConfigMap {NAMESPACE}/langgraph-agent-config session_ttl_seconds: 86400 -> 43200",
            f"• Deployment {NAMESPACE}/langgraph-agent: rollout restart",
        ),
        check_shorten_ttl,
    ),
    "limit-concurrent-sessions": Case(
        "fix limit-concurrent-sessions sessions max_concurrent=3",
        sessions_with_ttl,
        (
            f"• ConfigMap {NAMESPACE}/langgraph-agent-config session_max_concurrent: 5 -> 3",
            f"• Deployment {NAMESPACE}/langgraph-agent: rollout restart",
        ),
        check_limit_sessions,
    ),
    "expire-keys-without-ttl": Case(
        "fix expire-keys-without-ttl ttl_seconds=1h",
        sessions_without_ttl,
        ("• EXPIRE NX 3600 on session:* keys without TTL: ~", "-> TTL 3600s (1.0h)"),
        check_expire,
        result=("✅ EXPIRE NX: EXPIRE NX 3600 set on 60 keys", "*Keys changed*: 60"),
    ),
    "restart-redis": Case(
        "fix restart-redis",
        sessions_with_ttl,
        (
            f"• delete pods app=redis-session in {NAMESPACE}: {REDIS_POD}",
            "🔥 *Loses data*",
            "ALL sessions are lost and EVERY user is logged out",
        ),
        check_restart,
        result=(f"✅ delete pods: deleted pods {REDIS_POD}: the Deployment starts new ones",),
    ),
    "enable-activedefrag": Case(
        "fix enable-activedefrag",
        sessions_with_ttl,
        (
            "• live CONFIG SET activedefrag: no -> yes",
            "+ activedefrag yes\n+ active-defrag-cycle-min 1\n+ active-defrag-cycle-max 25",
        ),
        check_defrag_refused,
        FAILED,
        result=("❌ live activedefrag: CONFIG SET activedefrag yes not applied",),
    ),
    "set-eviction-policy": Case(
        "fix set-eviction-policy policy=volatile-lru",
        sessions_with_ttl,
        (
            "• live CONFIG SET maxmemory-policy: allkeys-lru -> volatile-lru",
            "- maxmemory-policy allkeys-lru\n+ maxmemory-policy volatile-lru",
        ),
        check_policy,
    ),
    "enable-sliding-window": Case(
        "fix enable-sliding-window",
        sessions_with_ttl,
        (
            f"• ConfigMap {NAMESPACE}/langgraph-agent-config session_sliding_window: false -> true",
            f"• Deployment {NAMESPACE}/langgraph-agent: rollout restart",
        ),
        check_sliding_window,
    ),
    "evict-idle-sessions": Case(
        "fix evict-idle-sessions count=60",
        crowded_with_idle_sessions,
        (
            "• UNLINK the 60 idlest session:* keys: each idle at least 2.0h (the idlest 2.0h)",
            "🔥 *Loses data*",
            "data loss: 60 sessions are deleted and those users are logged out",
        ),
        check_evict,
        result=("✅ UNLINK: unlinked 60 sessions (idle >= 2.0h); 0 spared", "*Keys changed*: 60"),
    ),
}


def requests_of(bot: SlackBot) -> list[ApprovalRequest]:
    """Every request the bot stored (read back by the ids on its approval messages)."""
    posts = bot.fake.calls_to("chat.postMessage")
    return [bot.service.get(button_values(p.params["blocks"])["redis_mem.approve"]) for p in posts]


def shown(blocks: list[dict[str, Any]]) -> str:
    """The text a reader sees (Slack's ``&gt;`` escapes undone): headers, sections, context."""
    out = []
    for block in blocks:
        if block["type"] in ("header", "section"):
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out.extend(el["text"] for el in block["elements"])
    return html.unescape("\n".join(out))


def test_every_catalogue_action_has_a_case() -> None:
    assert list(CASES) == list(CATALOGUE)


@pytest.mark.parametrize("action_id", list(CATALOGUE))
def test_fix_from_slack_end_to_end(slack_bot: SlackBot, action_id: str) -> None:
    bot, case = slack_bot, CASES[action_id]
    title = CATALOGUE[action_id].title
    case.prepare(bot.env)
    dbsize = bot.env.client.dbsize()

    ack = bot.command(case.command)
    assert ack.json()["text"].startswith(f"Preparing the `{action_id}` preview")

    post, request = bot.approval_post()
    blocks = post.params["blocks"]
    assert post.params["channel"] == CHANNEL
    assert rebuilt(blocks) == blocks  # slack_sdk parses every block within Slack's limits
    assert blocks[0]["text"]["text"] == f"🛠 Approval needed: {title} on sessions"
    assert button_values(blocks) == {
        "redis_mem.approve": request.id,
        "redis_mem.reject": request.id,
    }
    text = shown(blocks)
    assert "*What will change*" in text
    for line in case.preview:
        assert line in text, f"{line!r} not in the preview:\n{text}"
    assert request.state is RequestState.PENDING and request.action_id == action_id
    # Nothing changed before the approval.
    assert bot.env.redis_conf() == CONF_16MB and bot.env.client.dbsize() == dbsize

    bot.click("redis_mem.approve", request.id, user=APPROVER, ts=ts_of(request))

    updates = wait_for_final_update(bot)
    assert all(u.params["ts"] == ts_of(request) for u in updates)
    assert all(rebuilt(u.params["blocks"]) == u.params["blocks"] for u in updates)
    final_blocks = updates[-1].params["blocks"]
    final = shown(final_blocks)
    head = "✅ Done" if case.final is SUCCEEDED else "❌ Failed"
    assert final_blocks[0]["text"]["text"].startswith(head)
    assert f"{head.split()[0]} *{head.split()[1]}* (approved by <@U0APPROVE>)" in final
    done = bot.service.get(request.id)
    assert done.state is case.final, done.error
    assert done.result is not None
    assert f"*State*: {done.result['state']}" in final
    assert "*Verification*" in final and "• memory:" in final and "• keys:" in final
    assert button_values(final_blocks) == {}
    for line in case.result:
        assert line in final, f"{line!r} not in the result:\n{final}"
    assert "Executing" in shown(updates[0].params["blocks"])
    case.check(bot)

    outcome = "executed" if case.final is SUCCEEDED else "failed"
    trail = [e for e in reversed(bot.audit.list_entries(limit=1000)) if e.request_id == request.id]
    assert [e.action for e in trail] == [
        "remediation.requested",
        "remediation.approved",
        f"remediation.{outcome}",
        "remediation.verified",
    ]
    assert [e.actor for e in trail] == ["U0REQUEST", "U0APPROVE", "U0APPROVE", "U0APPROVE"]
    assert all(e.parameters["action_id"] == action_id for e in trail)
    assert trail[2].parameters["state"] == done.result["state"]
    assert verify_chain(bot.engine).ok
