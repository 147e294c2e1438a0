"""``redis-mem serve`` with a cluster target: one shard past 80% posts one alert naming it.

The real console script in a subprocess (1 s check interval, 1 s ``for``s), a real
3-primary cluster, the fake Slack Web API over HTTP. Waiting is bounded polling.
"""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import yaml

from bot.audit.engine import make_engine
from bot.health.store import SqlHealthStore
from bot.shards import subject
from tests.cluster_health_support import SMALL, cluster_target, fill, owner
from tests.conftest import ClusterFactory
from tests.fakeslack import FakeSlack
from tests.serveproc import ServeProcess, bot_env
from tests.slackcheck import wait_until

RULES = {
    "rules": {
        "memory-warning": {"for": "1s"},
        "store-down": {"for": "1s"},
        **{
            rule: {"enabled": False}
            for rule in (
                "memory-critical",
                "eviction-rate",
                "connections-exhausted",
                "memory-forecast",
            )
        },
    }
}


def test_serve_posts_the_full_shards_alert_naming_the_shard(
    fake_slack: FakeSlack, cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = cluster_factory(*SMALL)
    target = cluster_target(cluster)
    hot, url = owner(target, "session:{hot}:0")
    fill(url, 0.85)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(RULES))
    entry = {"name": "sessions", "mode": "cluster", "seeds": cluster.seed_urls}
    (tmp_path / "targets.yml").write_text(yaml.safe_dump({"targets": [entry]}))
    env = bot_env(
        fake_slack,
        tmp_path,
        secret="serve-cluster-secret",
        REDIS_MEM_TARGETS_FILE=str(tmp_path / "targets.yml"),
        REDIS_MEM_RULES_FILE=str(tmp_path / "rules.yml"),
        REDIS_MEM_CHECK_INTERVAL="1",
        REDIS_MEM_CHECK_TIMEOUT="1",
        REDIS_MEM_CHANNEL="C0ALERTS",
    )
    serve = ServeProcess(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    engine = make_engine(env["DATABASE_URL"])
    try:
        [post] = fake_slack.wait_for("chat.postMessage", timeout=30)
        hot_subject = subject("sessions", hot.name)
        assert hot_subject in str(post.params["blocks"][0]["text"]["text"])
        store = SqlHealthStore(engine)
        wait_until(lambda: bool(store.open_alerts()), timeout=10)
        [alert] = store.open_alerts()
        assert (alert.target, alert.rule) == (hot_subject, "memory-warning")
        # Every subject's samples are stored, the cluster's own under the target's name.
        stored = store.recent_samples(since=datetime(2000, 1, 1, tzinfo=UTC))
        assert {"sessions", hot_subject} <= set(stored) and len(stored) == 4
    finally:
        engine.dispose()
        assert serve.proc is not None
        serve.proc.send_signal(signal.SIGTERM)
        serve.proc.wait(timeout=20)
    assert serve.proc.returncode == 0, serve.output()
