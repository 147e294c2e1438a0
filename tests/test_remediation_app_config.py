"""shorten-session-ttl, limit-concurrent-sessions, enable-sliding-window: one key of the app
ConfigMap, then a rollout restart, against the fake Kubernetes API server (real client)."""

from __future__ import annotations

import pytest

from bot.errors import UsageError
from bot.remediation.catalogue import get_action
from tests.remediation_support import (
    Env,
    load_sessions,
)

APP_CM = "/api/v1/namespaces/langgraph-agent/configmaps/langgraph-agent-config"
APP_DEPLOY = "/apis/apps/v1/namespaces/langgraph-agent/deployments/langgraph-agent"
SEEDED = {
    "session_ttl_seconds": "86400",
    "session_max_concurrent": "5",
    "session_sliding_window": "false",
}
TTL = get_action("shorten-session-ttl")
CONCURRENT = get_action("limit-concurrent-sessions")
SLIDING = get_action("enable-sliding-window")

pytest_plugins = ("tests.remediation_support",)  # the env/kube fixtures


def _restarted_at(env: Env) -> str | None:
    template = env.deployment("langgraph-agent")["spec"]["template"]  # type: ignore[index]
    annotations = template.get("metadata", {}).get("annotations", {})
    return annotations.get("kubectl.kubernetes.io/restartedAt")


def test_ttl_default_halves_the_current_one(env: Env) -> None:
    assert TTL.defaults(env.ctx()) == {"ttl_seconds": 43200}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("30", "ttl_seconds must be between 60 and 2592000 (got 30)"),
        ("31d", "ttl_seconds must be between 60 and 2592000 (got 2678400)"),
    ],
)
def test_ttl_out_of_range_is_refused(env: Env, raw: str, message: str) -> None:
    with pytest.raises(UsageError) as err:
        TTL.resolve(env.ctx(), {"ttl_seconds": raw})
    assert str(err.value) == message


def test_ttl_preview_and_execute(env: Env) -> None:
    ctx = env.ctx()
    params = TTL.resolve(ctx, {"ttl_seconds": "12h"})
    preview = TTL.preview(ctx, params)
    assert [c.line() for c in preview.changes] == [
        "ConfigMap langgraph-agent/langgraph-agent-config session_ttl_seconds: 86400 -> 43200",
        "Deployment langgraph-agent/langgraph-agent: rollout restart",
    ]
    assert any("sessions unused for 12.0h will expire" in w for w in preview.warnings)
    result = TTL.execute(ctx, params, preview=preview)
    assert result.complete, result.state
    assert env.app_config() == {**SEEDED, "session_ttl_seconds": "43200"}
    assert _restarted_at(env) == "2026-11-29T04:00:00Z"
    assert result.state.endswith("restarted at 2026-11-29T04:00:00Z")


def test_ttl_restart_failure_is_reported_exactly(env: Env) -> None:
    ctx = env.ctx()
    params = TTL.resolve(ctx, {})
    env.fake.fail_next("PATCH", APP_DEPLOY, 500)
    result = TTL.execute(ctx, params)
    assert not result.complete
    assert result.state.startswith(
        "ConfigMap langgraph-agent/langgraph-agent-config session_ttl_seconds set to 43200"
    )
    assert "rollout restart NOT changed (Kubernetes API failed to patch deployment" in result.state
    assert result.state.endswith(": the app keeps the old value until its pods restart")
    assert env.app_config()["session_ttl_seconds"] == "43200"
    assert _restarted_at(env) is None


def test_ttl_configmap_403_changes_nothing(env: Env) -> None:
    ctx = env.ctx()
    env.fake.fail_next("PATCH", APP_CM, 403)
    result = TTL.execute(ctx, TTL.resolve(ctx, {}))
    assert not result.complete
    assert result.state.endswith("rollout restart NOT changed (not attempted): nothing changed")
    assert env.app_config() == SEEDED
    assert _restarted_at(env) is None


def test_app_recheck_refuses_after_a_concurrent_edit(env: Env) -> None:
    ctx = env.ctx()
    params = TTL.resolve(ctx, {})
    preview = TTL.preview(ctx, params)
    env.cluster.patch_configmap_key(
        namespace="langgraph-agent", name="langgraph-agent-config", key="log_level", value="debug"
    )
    reason = TTL.recheck(env.ctx(), params, preview)
    assert reason is not None
    assert reason.startswith("app_configmap_resource_version changed since the preview")
    result = TTL.execute(env.ctx(), params, preview=preview)
    assert not result.complete and "changed since the preview" in result.state
    assert env.app_config()["session_ttl_seconds"] == "86400"


def test_concurrent_default_and_floor(env: Env) -> None:
    assert CONCURRENT.defaults(env.ctx()) == {"max_concurrent": 3}
    with pytest.raises(UsageError, match=r"^max_concurrent must be between 1 and 1000 \(got 0\)$"):
        CONCURRENT.resolve(env.ctx(), {"max_concurrent": "0"})


def test_concurrent_execute(env: Env) -> None:
    ctx = env.ctx()
    params = CONCURRENT.resolve(ctx, {})
    result = CONCURRENT.execute(ctx, params, preview=CONCURRENT.preview(ctx, params))
    assert result.complete
    assert env.app_config() == {**SEEDED, "session_max_concurrent": "3"}


def test_sliding_window_once(env: Env) -> None:
    ctx = env.ctx()
    assert SLIDING.preconditions(ctx, {}) == []
    result = SLIDING.execute(ctx, {}, preview=SLIDING.preview(ctx, {}))
    assert result.complete
    assert env.app_config() == {**SEEDED, "session_sliding_window": "true"}
    assert SLIDING.preconditions(env.ctx(), {}) == ["session_sliding_window is already true"]


def test_verify_says_the_app_change_acts_slowly(env: Env) -> None:
    load_sessions(env.client, 2000)
    before = env.diagnose()
    check = TTL.verify(before, env.diagnose(), {"ttl_seconds": 43200})
    assert check.verdict.endswith("no change yet: the app restart takes effect as sessions renew")
    assert check.session_keys_before == check.session_keys_after == 2000


def test_recheck_with_the_api_server_failing_refuses_in_one_line(env: Env) -> None:
    ctx = env.ctx()
    params = TTL.resolve(ctx, {})
    preview = TTL.preview(ctx, params)
    env.fake.fail_next("GET", APP_CM, 503, times=5)
    reason = TTL.recheck(env.ctx(), params, preview)
    assert reason is not None and "\n" not in reason
    assert "503" in reason
