"""raise-maxmemory, set-eviction-policy, enable-activedefrag against a real Redis and the fake
Kubernetes API server (real client): previews, exact ConfigMap text, partial failures."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.errors import KubernetesError, UsageError
from bot.remediation.catalogue import get_action
from bot.remediation.model import RemediationLimits
from tests.conftest import RedisFactory
from tests.fakekube import FakeKube
from tests.remediation_support import (
    CONF_16MB,
    Env,
    load_sessions,
    make_env,
)

MIB = 1024**2
REDIS_CM = "/api/v1/namespaces/langgraph-agent/configmaps/redis-session-config"
REDIS_DEPLOY = "/apis/apps/v1/namespaces/langgraph-agent/deployments/redis-session"
RAISE = get_action("raise-maxmemory")
POLICY = get_action("set-eviction-policy")
DEFRAG = get_action("enable-activedefrag")

pytest_plugins = ("tests.remediation_support",)  # the env/kube fixtures


def _redis_container(env: Env) -> dict[str, object]:
    spec = env.deployment("redis-session")["spec"]
    containers = spec["template"]["spec"]["containers"]  # type: ignore[index]
    return next(c for c in containers if c["name"] == "redis")


# raise-maxmemory -------------------------------------------------------------------


def test_raise_defaults_cover_usage_and_keep_pod_headroom(env: Env) -> None:
    load_sessions(env.client, 8000)
    ctx = env.ctx()
    params = RAISE.defaults(ctx)
    used = ctx.diagnosis.used_memory
    assert params["maxmemory"] % MIB == 0
    assert params["maxmemory"] >= used / 0.7
    assert params["maxmemory"] > ctx.diagnosis.maxmemory
    assert params["pod_memory_limit"] == params["maxmemory"] * 3 // 2


def test_raise_refuses_maxmemory_below_used_memory(env: Env) -> None:
    load_sessions(env.client, 8000)
    with pytest.raises(UsageError, match=r"^maxmemory 1\.0 MB is not above used memory"):
        RAISE.resolve(env.ctx(), {"maxmemory": "1mb"})


def test_raise_refuses_a_pod_limit_not_above_maxmemory(env: Env) -> None:
    with pytest.raises(UsageError) as err:
        RAISE.resolve(env.ctx(), {"maxmemory": "64mb", "pod_memory_limit": "64Mi"})
    assert str(err.value) == (
        "pod_memory_limit 64.0 MB is not above maxmemory 64.0 MB: the pod would be OOM-killed "
        "before Redis evicts (keep headroom, e.g. 96Mi)"
    )


def test_raise_given_maxmemory_gets_the_pod_headroom(env: Env) -> None:
    params = RAISE.resolve(env.ctx(), {"maxmemory": "1024mb"})
    assert params == {"maxmemory": 1024 * MIB, "pod_memory_limit": 1536 * MIB}


def test_raise_preview_changes_one_directive_and_the_pod(env: Env) -> None:
    ctx = env.ctx()
    preview = RAISE.preview(ctx, RAISE.resolve(ctx, {"maxmemory": "1024mb"}))
    lines = [c.line() for c in preview.changes]
    assert lines == [
        "live CONFIG SET maxmemory: 16777216 -> 1073741824",
        "ConfigMap langgraph-agent/redis-session-config redis.conf: "
        "maxmemory 16mb -> maxmemory 1024mb",
        "Deployment langgraph-agent/redis-session container redis: limits.memory 768Mi -> 1536Mi",
        "Deployment langgraph-agent/redis-session container redis: requests.memory 512Mi -> 1024Mi",
    ]
    assert preview.changes[1].diff == ("@@ line 6", "- maxmemory 16mb", "+ maxmemory 1024mb")
    assert any("rolls the Redis pod" in w for w in preview.warnings)
    assert preview.loses_data and preview.logs_users_out
    assert preview.facts["live maxmemory"] == "16777216"
    assert env.redis_conf() == CONF_16MB  # a preview never writes


def test_raise_within_headroom_leaves_the_deployment_alone(env: Env) -> None:
    ctx = env.ctx()
    preview = RAISE.preview(ctx, RAISE.resolve(ctx, {"maxmemory": "64mb"}))
    assert not any(c.where.startswith("Deployment") for c in preview.changes)
    assert "the pod memory limit already has the headroom: unchanged" in preview.warnings
    assert not preview.loses_data
    result = RAISE.execute(ctx, preview.params, preview=preview)
    assert result.complete
    assert _redis_container(env)["resources"] == {
        "requests": {"cpu": "100m", "memory": "512Mi"},
        "limits": {"cpu": "1", "memory": "768Mi"},
    }


def test_raise_execute_changes_live_configmap_and_pod(env: Env) -> None:
    load_sessions(env.client, 8000)
    before = env.diagnose()
    ctx = env.ctx()
    params = RAISE.resolve(ctx, {"maxmemory": "1024mb"})
    preview = RAISE.preview(ctx, params)
    result = RAISE.execute(ctx, params, preview=preview)
    assert result.complete, result.state
    assert [s.name for s in result.steps] == [
        "check ConfigMap",
        "live maxmemory",
        "ConfigMap",
        "Deployment",
    ]
    assert env.client.config_get("maxmemory") == {"maxmemory": str(1024 * MIB)}
    assert env.redis_conf() == CONF_16MB.replace("maxmemory 16mb", "maxmemory 1024mb")
    redis = _redis_container(env)
    assert redis["resources"] == {
        "requests": {"cpu": "100m", "memory": "1024Mi"},
        "limits": {"cpu": "1", "memory": "1536Mi"},
    }
    assert redis["image"] == "redis:7.2-alpine"
    spec = env.deployment("redis-session")["spec"]
    names = [c["name"] for c in spec["template"]["spec"]["containers"]]  # type: ignore[index]
    assert names == ["redis", "exporter"]
    check = RAISE.verify(before, env.diagnose(), params)
    assert check.verdict.endswith(": fixed")
    assert check.usage_ratio_after is not None and check.usage_ratio_after < 0.02


def test_raise_configmap_403_after_live_set_is_reported_exactly(env: Env) -> None:
    ctx = env.ctx()
    params = RAISE.resolve(ctx, {"maxmemory": "1024mb"})
    preview = RAISE.preview(ctx, params)
    env.fake.fail_next("PATCH", REDIS_CM, 403)
    result = RAISE.execute(ctx, params, preview=preview)
    assert not result.complete
    assert result.state.startswith(
        "live maxmemory set to 1024mb; ConfigMap NOT changed (Kubernetes refused to patch "
        "configmap langgraph-agent/redis-session-config (403 Forbidden)"
    )
    assert result.state.endswith(
        "Deployment NOT changed (not attempted): the live value will be lost on restart"
    )
    assert env.client.config_get("maxmemory") == {"maxmemory": str(1024 * MIB)}
    assert env.redis_conf() == CONF_16MB
    assert _redis_container(env)["resources"]["limits"]["memory"] == "768Mi"  # type: ignore[index]


def test_raise_deployment_500_warns_of_the_old_pod_limit(env: Env) -> None:
    ctx = env.ctx()
    params = RAISE.resolve(ctx, {"maxmemory": "1024mb"})
    env.fake.fail_next("PATCH", REDIS_DEPLOY, 500)
    result = RAISE.execute(ctx, params)
    assert not result.complete
    assert result.state.startswith(
        "live maxmemory set to 1024mb; ConfigMap langgraph-agent/redis-session-config "
        "redis.conf set maxmemory 1024mb"
    )
    assert result.state.endswith(
        "Redis runs with the new maxmemory under the OLD pod memory limit: it may be "
        "OOM-killed before it evicts; raise the limit or lower maxmemory"
    )
    assert env.redis_conf() == CONF_16MB.replace("maxmemory 16mb", "maxmemory 1024mb")


def test_raise_recheck_refuses_after_a_concurrent_configmap_edit(env: Env) -> None:
    ctx = env.ctx()
    params = RAISE.resolve(ctx, {"maxmemory": "64mb"})
    preview = RAISE.preview(ctx, params)
    assert RAISE.recheck(env.ctx(), params, preview) is None
    edited = CONF_16MB + "# tuned by hand\n"
    env.cluster.patch_configmap_key(
        namespace="langgraph-agent", name="redis-session-config", key="redis.conf", value=edited
    )
    reason = RAISE.recheck(env.ctx(), params, preview)
    assert reason is not None and reason.startswith("configmap_resource_version changed since")
    # Executing anyway (a race past the re-check) changes nothing at all.
    result = RAISE.execute(env.ctx(), params, preview=preview)
    assert not result.complete
    assert env.client.config_get("maxmemory") == {"maxmemory": str(16 * MIB)}
    assert env.redis_conf() == edited
    assert result.state.startswith("check ConfigMap NOT changed (ConfigMap langgraph-agent/")


def test_raise_recheck_refuses_when_maxmemory_changed_live(env: Env) -> None:
    ctx = env.ctx()
    params = RAISE.resolve(ctx, {"maxmemory": "64mb"})
    preview = RAISE.preview(ctx, params)
    env.client.config_set("maxmemory", "32mb")
    reason = RAISE.recheck(env.ctx(), params, preview)
    assert reason == (
        "live maxmemory changed since the preview (16777216 -> 33554432): request the action again"
    )


def test_raise_recheck_refuses_when_used_memory_passed_the_request(
    redis_factory: RedisFactory, kube: tuple[FakeKube, object]
) -> None:
    # No live limit; the ConfigMap's is below what is asked (else that alone refuses it).
    kube[0].add_configmap("redis-session-config", {"redis.conf": CONF_16MB.replace("16mb", "1mb")})
    env = next(make_env(redis_factory, kube))  # type: ignore[arg-type]
    load_sessions(env.client, 2000)
    ctx = env.ctx()
    asked = ctx.diagnosis.used_memory + 2 * MIB
    params = {"maxmemory": asked, "pod_memory_limit": asked * 2}
    preview = RAISE.preview(ctx, params)
    load_sessions(env.client, 4000, start=2000)
    reason = RAISE.recheck(env.ctx(), params, preview)
    assert reason is not None and "is not above used memory" in reason


def test_raise_redis_down_changes_nothing(env: Env) -> None:
    ctx = env.ctx()
    params = RAISE.resolve(ctx, {"maxmemory": "64mb"})
    env.server.stop()
    result = RAISE.execute(ctx, params)
    assert not result.complete
    assert result.steps[0].name == "live maxmemory" and not result.steps[0].ok
    assert result.state.endswith("nothing changed")
    assert env.redis_conf() == CONF_16MB


# set-eviction-policy -----------------------------------------------------------------


def test_policy_default_is_allkeys_lru_when_keys_lack_a_ttl(env: Env) -> None:
    env.client.config_set("maxmemory-policy", "volatile-lru")
    load_sessions(env.client, 200, ttl=None)
    ctx = env.ctx()
    assert POLICY.defaults(ctx) == {"policy": "allkeys-lru"}
    preview = POLICY.preview(ctx, POLICY.defaults(ctx))
    assert any(
        "volatile-* policies evict only keys that carry a TTL" in w for w in preview.warnings
    )


def test_policy_default_is_volatile_lru_when_every_key_has_a_ttl(env: Env) -> None:
    load_sessions(env.client, 200)
    ctx = env.ctx()
    assert POLICY.defaults(ctx) == {"policy": "volatile-lru"}


def test_policy_refuses_the_current_one_and_unknown_ones(env: Env) -> None:
    with pytest.raises(UsageError, match=r"^maxmemory-policy is already allkeys-lru$"):
        POLICY.resolve(env.ctx(), {"policy": "allkeys-lru"})
    with pytest.raises(UsageError, match=r"^policy must be one of allkeys-lru, .* \(got lru\)$"):
        POLICY.resolve(env.ctx(), {"policy": "lru"})


def test_policy_execute_live_and_one_configmap_line(env: Env) -> None:
    load_sessions(env.client, 100, ttl=None)
    ctx = env.ctx()
    params = POLICY.resolve(ctx, {"policy": "volatile-lru"})
    preview = POLICY.preview(ctx, params)
    assert preview.changes[1].diff == (
        "@@ line 7",
        "- maxmemory-policy allkeys-lru",
        "+ maxmemory-policy volatile-lru",
    )
    assert any(
        "can never evict them (run expire-keys-without-ttl first)" in w for w in preview.warnings
    )
    result = POLICY.execute(ctx, params, preview=preview)
    assert result.complete, result.state
    assert env.client.config_get("maxmemory-policy") == {"maxmemory-policy": "volatile-lru"}
    assert env.redis_conf() == CONF_16MB.replace(
        "maxmemory-policy allkeys-lru", "maxmemory-policy volatile-lru"
    )


def test_policy_without_config_command_changes_only_the_configmap(
    redis_factory: RedisFactory, kube: tuple[FakeKube, object]
) -> None:
    kube[0].add_configmap("redis-session-config", {"redis.conf": CONF_16MB})
    env = next(make_env(redis_factory, kube, "--rename-command", "CONFIG", ""))  # type: ignore[arg-type]
    ctx = env.ctx()
    params = {"policy": "volatile-lru"}
    preview = POLICY.preview(ctx, params)
    assert preview.changes[0].line() == (
        "live CONFIG SET maxmemory-policy: volatile-lru (NOT possible on this server)"
    )
    assert any("does not allow CONFIG" in w for w in preview.warnings)
    result = POLICY.execute(ctx, params, preview=preview)
    assert not result.complete
    assert result.state.endswith(
        "(resourceVersion "
        + env.fake.get("configmaps", "redis-session-config")["metadata"][  # type: ignore[index]
            "resourceVersion"
        ]
        + "): the ConfigMap value takes effect only when Redis restarts"
    )
    assert "maxmemory-policy volatile-lru" in env.redis_conf()


# enable-activedefrag -------------------------------------------------------------------


def test_defrag_preview_appends_three_lines_and_keeps_the_rest(env: Env) -> None:
    ctx = env.ctx()
    preview = DEFRAG.preview(ctx, {})
    assert preview.changes[-1].diff == (
        "@@ line 13",
        "+ activedefrag yes",
        "+ active-defrag-cycle-min 1",
        "+ active-defrag-cycle-max 25",
    )
    assert "maxmemory 16mb" in env.redis_conf() and "appendonly yes" in env.redis_conf()


def test_defrag_refused_by_redis_writes_nothing(env: Env) -> None:
    """Debian's redis-server has no active defrag: Redis refuses it, and the ConfigMap must not
    get a directive that would stop Redis from starting."""
    ctx = env.ctx()
    preview = DEFRAG.preview(ctx, {})
    result = DEFRAG.execute(ctx, {}, preview=preview)
    if result.complete:  # a Redis built with its own jemalloc accepts it
        assert env.redis_conf().endswith(
            "activedefrag yes\nactive-defrag-cycle-min 1\nactive-defrag-cycle-max 25\n"
        )
        return
    assert result.state.startswith("live activedefrag NOT changed (CONFIG SET activedefrag yes")
    assert result.state.endswith(
        "ConfigMap NOT changed (not attempted): the ConfigMap was NOT written: a value Redis "
        "refuses would stop it from starting; nothing changed"
    )
    assert env.redis_conf() == CONF_16MB


def test_defrag_offered_when_off(env: Env) -> None:
    # Debian's build refuses activedefrag, so "already on" is checked against a fake answer:
    # the precondition reads CONFIG GET, which we exercise for "off" here.
    assert DEFRAG.preconditions(env.ctx(), {}) == []


def test_limits_are_injected(env: Env) -> None:
    ctx = env.ctx(RemediationLimits(pod_headroom=2.0))
    params = RAISE.resolve(ctx, {"maxmemory": "64mb"})
    assert params["pod_memory_limit"] == 128 * MIB


def test_a_missing_configmap_key_names_the_keys_there(env: Env) -> None:
    coords = env.target.kubernetes.model_copy(update={"redis_configmap": "langgraph-agent-config"})
    wrong = replace(env, target=env.target.model_copy(update={"kubernetes": coords}))
    ctx = wrong.ctx()
    with pytest.raises(KubernetesError) as err:
        RAISE.preview(ctx, RAISE.resolve(ctx, {"maxmemory": "64mb"}))
    assert str(err.value) == (
        "configmap langgraph-agent/langgraph-agent-config has no key 'redis.conf' (keys: "
        "session_max_concurrent, session_sliding_window, session_ttl_seconds): "
        "check redis_configmap_key in the targets file"
    )
