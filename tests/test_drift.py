"""Configuration drift (issue 9, item 4): live Redis 64mb, its ConfigMap 512mb.

End to end on a real redis-server and the fake Kubernetes API server (real client): the
diagnosis reports the drift (model, JSON, finding, the CLI); a default raise-maxmemory
goes above 512mb; an explicit 70mb is refused in one line, audited, and changes nothing;
the other Redis-config actions show the drift and leave the drifted directive alone.
The comparison rules themselves are checked on hand-built values first.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.approvals.model import Actor
from bot.audit.engine import make_engine
from bot.config import KubeCoordinates, Target, Thresholds
from bot.diagnosis.drift import PersistedConf, find_drift, live_settings
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import Drift
from bot.diagnosis.serialize import diagnosis_to_dict
from bot.errors import KubernetesError, UsageError
from bot.kube.cluster import KubeCluster
from bot.kube.lazy import LazyCluster
from bot.redisconf import conf_bytes
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisinfo.snapshot import Snapshot
from bot.remediation.actions.drift_guard import edit_conflict
from bot.remediation.catalogue import get_action
from bot.remediation.persisted import ConfigMapRedisConf
from bot.services.diagnose import DiagnosisService
from tests.approvals_support import Rig, make_rig
from tests.clirun import run_cli
from tests.conftest import RedisFactory
from tests.fakekube import REDIS_CONF, FakeKube, running_fake_kube
from tests.remediation_support import Env, fixed_clock, load_sessions, make_env
from tests.test_diagnosis import snap

MIB = 1024**2
RAISE = get_action("raise-maxmemory")
POLICY = get_action("set-eviction-policy")
DEFRAG = get_action("enable-activedefrag")
CONFIGMAP = ("configmaps", "redis-session-config")
DRIFT_LINE = "live maxmemory 64mb, ConfigMap 512mb: a restart changes the limit"

pytest_plugins = ("tests.remediation_support",)  # the kube fixture


# The comparison, on hand-built values ------------------------------------------------------


@pytest.mark.parametrize(
    ("live", "written", "drifts"),
    [
        ({"maxmemory": "67108864"}, "maxmemory 64mb\n", False),  # CONFIG GET says bytes
        ({"maxmemory": "67108864"}, "maxmemory 64MB\n", False),
        ({"maxmemory": "64000000"}, "maxmemory 64m\n", False),  # redis: m = 1000 * 1000
        ({"maxmemory": "67108864"}, "maxmemory 64m\n", True),
        ({"maxmemory": "0"}, "", False),  # absent: Redis's default, no limit
        ({"activedefrag": "yes"}, "activedefrag YES\n", False),
        ({"appendonly": "no"}, "", False),
        ({"maxmemory-policy": "allkeys-lru"}, "maxmemory-policy allkeys-lru\n", False),
        ({"maxmemory-policy": "allkeys-lru"}, "", True),  # absent: noeviction
        ({"maxmemory": None}, "maxmemory 1gb\n", False),  # unknown live value: not compared
    ],
)
def test_values_compare_as_redis_reads_them(
    live: dict[str, str | None], written: str, drifts: bool
) -> None:
    assert bool(find_drift(live, written)) is drifts


def test_redis_conf_sizes_are_redis_units() -> None:
    assert conf_bytes("64mb") == 64 * MIB
    assert conf_bytes("64m") == 64_000_000
    assert conf_bytes("1GB") == 1024**3
    assert conf_bytes("0") == 0
    assert conf_bytes("1.5gb") is None  # redis refuses fractions
    assert conf_bytes("64Mi") is None  # a Kubernetes quantity is not a redis.conf size


def test_an_absent_directive_is_reported_with_the_default_it_gets() -> None:
    (drift,) = find_drift({"appendonly": "yes"}, "maxmemory 64mb\n")
    assert drift == Drift("appendonly", "yes", None, "no")
    conf = PersistedConf("cm", "maxmemory 64mb\nmaxmemory-policy allkeys-lru\n")
    d = diagnose(_snapshot({"appendonly": "yes"}), Thresholds(), conf)
    assert [f.message for f in d.findings if f.id == "config-drift"] == [
        "live appendonly yes, ConfigMap has no appendonly line (Redis default no): "
        "a restart turns the append-only file off"
    ]
    assert diagnosis_to_dict(d)["drift"] == [
        {"directive": "appendonly", "live": "yes", "configmap": None}
    ]


def test_without_config_the_live_values_come_from_info() -> None:
    snap = _snapshot({}, persistence={"aof_enabled": "1"})
    assert live_settings(snap) == {
        "maxmemory": str(64 * MIB),
        "maxmemory-policy": "allkeys-lru",
        "activedefrag": None,  # INFO does not say: not compared
        "appendonly": "yes",
    }


def test_not_compared_is_null_and_a_note_never_a_failure() -> None:
    snap = _snapshot({"maxmemory": str(64 * MIB)})
    plain = diagnose(snap, Thresholds())
    assert plain.drift is None and diagnosis_to_dict(plain)["drift"] is None
    assert not [f for f in plain.findings if f.id.startswith("config-drift")]
    unread = diagnose(snap, Thresholds(), PersistedConf("cm", reason="API down"))
    assert unread.drift is None
    assert [(f.id, f.severity.value, f.message) for f in unread.findings] == [
        (
            "config-drift-unchecked",
            "ok",
            "live settings not compared with the persisted redis.conf: API down",
        )
    ]


def test_an_edit_that_changes_only_its_directive_passes_the_guard() -> None:
    assert edit_conflict(REDIS_CONF, {"maxmemory-policy": "volatile-lru"}, where="cm") is None
    assert edit_conflict(REDIS_CONF, {"activedefrag": "yes"}, where="cm") is None


# End to end: live 64mb, ConfigMap 512mb ------------------------------------------------------


@pytest.fixture
def drifted(redis_factory: RedisFactory, kube: tuple[FakeKube, KubeCluster]) -> Iterator[Env]:
    """Redis at 64mb (AOF on, as the ConfigMap says) and the runbook's ConfigMap at 512mb."""
    envs = make_env(
        redis_factory,
        kube,
        *("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru", "--appendonly", "yes"),
    )
    env = next(envs)
    env.target = env.target.model_copy(update={"kubernetes": KubeCoordinates()})
    load_sessions(env.client, 500)
    yield env
    envs.close()


def _service(env: Env, cluster: object) -> DiagnosisService:
    def probe(target: Target) -> LiveRedisProbe:
        return LiveRedisProbe(name=target.name, url=env.server.url, clock=fixed_clock)

    return DiagnosisService(
        targets={env.target.name: env.target},
        probe_factory=probe,
        thresholds=Thresholds(),
        persisted=ConfigMapRedisConf(cluster),  # type: ignore[arg-type]
    )


def _untouched(env: Env, version: str) -> None:
    """The ConfigMap (text and version) and the live maxmemory are as seeded."""
    stored = env.fake.get(*CONFIGMAP)
    assert stored is not None
    assert stored["data"]["redis.conf"] == REDIS_CONF
    assert stored["metadata"]["resourceVersion"] == version
    assert env.client.config_get("maxmemory") == {"maxmemory": str(64 * MIB)}
    assert not env.fake.calls("PATCH")


def test_diagnose_reports_the_drift(drifted: Env) -> None:
    d = _service(drifted, drifted.cluster).diagnose()
    assert d.drift == (Drift("maxmemory", "64mb", "512mb", "512mb"),)
    assert [(f.id, f.severity.value, f.message) for f in d.findings if "drift" in f.id] == [
        ("config-drift", "warning", DRIFT_LINE)
    ]
    assert diagnosis_to_dict(d)["drift"] == [
        {"directive": "maxmemory", "live": "64mb", "configmap": "512mb"}
    ]


def test_no_drift_is_an_empty_list(drifted: Env) -> None:
    drifted.client.config_set("maxmemory", "512mb")
    d = _service(drifted, drifted.cluster).diagnose()
    assert d.drift == () and diagnosis_to_dict(d)["drift"] == []


def test_unreachable_kubernetes_or_no_coordinates_is_a_note(drifted: Env) -> None:
    with running_fake_kube(timeout=2.0) as gone:
        pass  # stopped on exit: its port now refuses connections
    d = _service(drifted, gone.cluster).diagnose()
    assert d.drift is None
    (note,) = [f for f in d.findings if f.id == "config-drift-unchecked"]
    assert note.message.startswith(
        "live settings not compared with the persisted redis.conf: cannot read the ConfigMap "
        "langgraph-agent/redis-session-config redis.conf: "
    )
    assert "\n" not in note.message

    def no_config() -> KubeCluster:
        raise KubernetesError("cannot load the Kubernetes kubeconfig configuration: no file")

    assert _service(drifted, LazyCluster(no_config)).diagnose().drift is None
    # The same target without a kubernetes section (the runbook's names by default).
    service = _service(drifted, drifted.cluster)
    plain = Target(name="sessions", redis_url=drifted.server.url)
    d = replace(service, targets={plain.name: plain}).diagnose()
    assert d.drift is None
    assert [f.message for f in d.findings if f.id == "config-drift-unchecked"] == [
        "live settings not compared with the persisted redis.conf: target 'sessions' has no "
        "kubernetes section in the targets file"
    ]


def test_a_hung_api_is_cut_at_the_request_timeout_and_noted(drifted: Env) -> None:
    with running_fake_kube(timeout=0.5) as hung:
        hung.fake.slow(30.0, method="GET")  # released when the fake stops
        d = _service(drifted, hung.cluster).diagnose()
    assert d.drift is None
    (note,) = [f for f in d.findings if f.id == "config-drift-unchecked"]
    assert "cannot read the ConfigMap" in note.message and "\n" not in note.message


def test_default_raise_goes_above_the_configmap_value(drifted: Env) -> None:
    ctx = drifted.ctx()
    params = RAISE.defaults(ctx)
    assert params["maxmemory"] == 1024 * MIB  # twice the larger of 64mb live and 512mb persisted
    preview = RAISE.preview(ctx, RAISE.resolve(ctx, {}))
    assert preview.params["maxmemory"] == 1024 * MIB
    assert preview.changes[1].line() == (
        "ConfigMap langgraph-agent/redis-session-config redis.conf: "
        "maxmemory 512mb -> maxmemory 1024mb"
    )
    assert f"configuration drift: {DRIFT_LINE}; this action sets both to 1024mb" in (
        preview.warnings
    )


def test_explicit_70mb_is_refused_in_one_line_audited_and_changes_nothing(
    drifted: Env, tmp_path: Path
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    rig: Rig = make_rig(drifted, engine)
    version = str(drifted.fake.get(*CONFIGMAP)["metadata"]["resourceVersion"])  # type: ignore[index]
    with pytest.raises(UsageError) as refused:
        rig.service.request(
            actor=Actor("U0REQUEST", "rita"),
            action_id="raise-maxmemory",
            target_name=drifted.target.name,
            raw_params={"maxmemory": "70mb"},
            channel="C0OPS",
        )
    assert str(refused.value) == (
        "maxmemory 70.0 MB is not above maxmemory 512mb in the ConfigMap "
        "langgraph-agent/redis-session-config redis.conf, which Redis restarts with: this "
        "action only raises it; ask for more than 512.0 MB"
    )
    (row,) = rig.rows()
    assert (row.action, row.outcome) == ("remediation.refused", "invalid")
    assert rig.service.pending() == []
    _untouched(drifted, version)
    engine.dispose()


def test_the_refusal_holds_at_execution_time(drifted: Env) -> None:
    ctx = drifted.ctx()
    params = RAISE.resolve(ctx, {"maxmemory": "1024mb"})
    preview = RAISE.preview(ctx, params)
    # Between request and approval someone raises the ConfigMap past the request.
    raised = REDIS_CONF.replace("maxmemory 512mb", "maxmemory 2gb")
    drifted.cluster.patch_configmap_key(
        namespace="langgraph-agent", name="redis-session-config", key="redis.conf", value=raised
    )
    reason = RAISE.recheck(drifted.ctx(), params, preview)
    assert reason is not None and reason.startswith("maxmemory 1.0 GB is not above maxmemory 2gb")
    with pytest.raises(UsageError, match=r"^maxmemory 1\.0 GB is not above maxmemory 2gb in"):
        RAISE.execute(drifted.ctx(), params)  # no preview: the check still runs first
    assert drifted.client.config_get("maxmemory") == {"maxmemory": str(64 * MIB)}
    assert drifted.redis_conf() == raised


def test_policy_change_shows_the_drift_and_leaves_maxmemory_alone(drifted: Env) -> None:
    ctx = drifted.ctx()
    params = POLICY.resolve(ctx, {"policy": "volatile-lru"})
    preview = POLICY.preview(ctx, params)
    assert f"configuration drift: {DRIFT_LINE}; this action leaves it as it is" in (
        preview.warnings
    )
    assert preview.facts["config drift"] == "maxmemory live 64mb ConfigMap 512mb"
    result = POLICY.execute(ctx, params, preview=preview)
    assert result.complete, result.state
    assert drifted.redis_conf() == REDIS_CONF.replace(
        "maxmemory-policy allkeys-lru", "maxmemory-policy volatile-lru"
    )
    assert drifted.client.config_get("maxmemory") == {"maxmemory": str(64 * MIB)}


def test_policy_in_force_live_only_is_persisted_not_refused(drifted: Env) -> None:
    drifted.client.config_set("maxmemory-policy", "volatile-lru")  # the ConfigMap: allkeys-lru
    ctx = drifted.ctx()
    preview = POLICY.preview(ctx, POLICY.resolve(ctx, {"policy": "volatile-lru"}))
    assert preview.changes[0].line() == "live CONFIG SET maxmemory-policy: volatile-lru (already)"
    assert preview.changes[1].diff == (
        "@@ line 7",
        "- maxmemory-policy allkeys-lru",
        "+ maxmemory-policy volatile-lru",
    )


def test_defrag_preview_shows_the_drift_and_edits_only_its_lines(drifted: Env) -> None:
    preview = DEFRAG.preview(drifted.ctx(), {})
    assert f"configuration drift: {DRIFT_LINE}; this action leaves it as it is" in (
        preview.warnings
    )
    assert [line for line in preview.changes[-1].diff if line.startswith("-")] == []
    DEFRAG.execute(drifted.ctx(), {}, preview=preview)  # Debian's build may refuse: either way
    assert "maxmemory 512mb" in drifted.redis_conf()


# The CLI face ------------------------------------------------------------------------------


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: fake, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: fake, user: {token: test-token}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake}}]\n"
        "current-context: fake\n"
    )
    return path


def _cli_env(tmp_path: Path, drifted: Env, *, kubeconfig: Path, kubernetes: bool) -> dict[str, str]:
    section = "    kubernetes: {namespace: langgraph-agent}\n" if kubernetes else ""
    targets = tmp_path / "targets.yaml"
    targets.write_text(f"targets:\n  - name: prod\n    redis_url: {drifted.server.url}\n{section}")
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "REDIS_MEM_TARGETS_FILE": str(targets),
        "KUBECONFIG": str(kubeconfig),
        "KUBERNETES_SERVICE_HOST": "",  # never the in-cluster configuration
    }


def test_cli_diagnose_json_reports_the_drift(drifted: Env, tmp_path: Path) -> None:
    env = _cli_env(
        tmp_path, drifted, kubeconfig=_kubeconfig(tmp_path, drifted.fake.url), kubernetes=True
    )
    result = run_cli("diagnose", "--json", env=env)
    assert result.code == 0, result
    doc = json.loads(result.stdout)
    assert doc["drift"] == [{"directive": "maxmemory", "live": "64mb", "configmap": "512mb"}]
    assert {"id": "config-drift", "severity": "warning", "message": DRIFT_LINE} in doc["findings"]
    table = run_cli("diagnose", env=env)
    assert "live maxmemory 64mb, ConfigMap 512mb" in " ".join(table.stdout.split())


def test_cli_without_coordinates_or_cluster_is_null_never_an_error(
    drifted: Env, tmp_path: Path
) -> None:
    missing = tmp_path / "no-kubeconfig"
    for kubernetes in (False, True):
        env = _cli_env(tmp_path, drifted, kubeconfig=missing, kubernetes=kubernetes)
        result = run_cli("diagnose", "--json", env=env)
        assert result.code == 0, result
        doc = json.loads(result.stdout)
        assert doc["drift"] is None
        (note,) = [f for f in doc["findings"] if f["id"] == "config-drift-unchecked"]
        assert note["message"].startswith("live settings not compared with the persisted")


def _snapshot(settings: dict[str, str], persistence: dict[str, str] | None = None) -> Snapshot:
    """A healthy hand-built snapshot at maxmemory 64mb with these CONFIG values."""
    return replace(snap(maxmemory=64 * MIB, settings=settings), persistence=persistence or {})
