"""restart-redis: delete the Redis pods by label selector, saying plainly what is lost."""

from __future__ import annotations

from bot.remediation.catalogue import get_action
from tests.conftest import RedisFactory
from tests.fakekube import FakeKube
from tests.remediation_support import (
    CONF_16MB,
    Env,
    load_sessions,
    make_env,
)

RESTART = get_action("restart-redis")
REDIS_POD = "redis-session-7d9f8c6b5-x2k9p"
BYSTANDERS = [
    "langgraph-agent-5c4d7b9f8-q8r7t",
    "langgraph-agent-5c4d7b9f8-xk2lp",
    "redis-mem-6f7c9d8b4-m4n5p",
    "redis-session-backup-28461-h7d2s",
]

pytest_plugins = ("tests.remediation_support",)  # the env/kube fixtures


def test_restart_without_persistence_says_everyone_is_logged_out(env: Env) -> None:
    ctx = env.ctx()
    preview = RESTART.preview(ctx, {})
    assert preview.changes[0].line() == (
        f"delete pods app=redis-session in langgraph-agent: {REDIS_POD}"
    )
    assert preview.warnings == (
        "DATA LOSS: no persistence (appendonly no, no save) (read from CONFIG GET): ALL sessions "
        "are lost and EVERY user is logged out",
    )
    assert preview.loses_data and preview.logs_users_out
    assert preview.risk == "high"


def test_restart_with_aof_keeps_sessions(env: Env) -> None:
    env.client.config_set("appendonly", "yes")
    preview = RESTART.preview(env.ctx(), {})
    assert not preview.loses_data and not preview.logs_users_out
    assert preview.warnings[0].startswith(
        "appendonly yes (read from CONFIG GET): sessions are reloaded"
    )


def test_restart_with_rdb_only_loses_the_last_writes(env: Env) -> None:
    env.client.config_set("save", "3600 1")
    preview = RESTART.preview(env.ctx(), {})
    assert preview.loses_data
    assert preview.warnings[0].startswith("DATA LOSS: no AOF, RDB snapshots only (save 3600 1)")


def test_restart_reads_persistence_from_the_configmap_without_config(
    redis_factory: RedisFactory, kube: tuple[FakeKube, object]
) -> None:
    kube[0].add_configmap("redis-session-config", {"redis.conf": CONF_16MB})
    env = next(make_env(redis_factory, kube, "--rename-command", "CONFIG", ""))  # type: ignore[arg-type]
    preview = RESTART.preview(env.ctx(), {})
    assert preview.warnings[0].startswith("appendonly yes (read from the ConfigMap)")


def test_restart_deletes_only_the_redis_pods(env: Env) -> None:
    load_sessions(env.client, 50)
    ctx = env.ctx()
    preview = RESTART.preview(ctx, {})
    assert RESTART.recheck(env.ctx(), {}, preview) is None
    result = RESTART.execute(ctx, {}, preview=preview)
    assert result.complete
    assert result.state == f"deleted pods {REDIS_POD}: the Deployment starts new ones"
    assert env.fake.pod_names() == BYSTANDERS
    assert env.fake.pod_names("staging") == ["redis-session-0"]
    check = RESTART.verify(ctx.diagnosis, env.diagnose(), {})
    assert check.details[0].startswith("fragmentation ")


def test_restart_recheck_refuses_when_the_pods_changed(env: Env) -> None:
    preview = RESTART.preview(env.ctx(), {})
    env.fake.add_pod("redis-session-7d9f8c6b5-zz9qq", {"app": "redis-session"})
    reason = RESTART.recheck(env.ctx(), {}, preview)
    assert reason == (
        f"pods changed since the preview ({REDIS_POD} -> "
        f"{REDIS_POD},redis-session-7d9f8c6b5-zz9qq): request the action again"
    )


def test_restart_403_deletes_nothing(env: Env) -> None:
    env.fake.fail_next("DELETE", "/api/v1/namespaces/langgraph-agent/pods", 403)
    result = RESTART.execute(env.ctx(), {})
    assert not result.complete
    assert result.state.startswith("delete pods NOT changed (Kubernetes refused")
    assert result.state.endswith(": nothing was deleted")
    assert REDIS_POD in env.fake.pod_names()


def test_restart_not_offered_without_pods(env: Env) -> None:
    RESTART.execute(env.ctx(), {})
    assert RESTART.preconditions(env.ctx(), {}) == [
        "no pods match app=redis-session in namespace langgraph-agent"
    ]
