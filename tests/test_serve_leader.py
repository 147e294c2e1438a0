"""Two ``redis-mem serve`` replicas, one leader: one alert message, and a failover that
neither re-posts nor loses it.

Both replicas are the real console script on one PostgreSQL schema and one fake Slack;
leadership is a Lease on the fake Kubernetes API (KUBECONFIG points at it) or the
PostgreSQL advisory lock (no Kubernetes). A real redis-server crosses 80%: exactly one
message; the leader is SIGKILLed; the follower takes over (bounded polling, within the
lease duration plus the retry period plus start-up slack) and its rounds update the same
message to critical, then resolved. Each round time is checked by exactly one replica.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.kube.access import LEASE_NAME
from tests.conftest import RedisFactory
from tests.dbfixtures import pg_url
from tests.fakekube import NAMESPACE, FakeKube
from tests.fakeslack import FakeSlack
from tests.health_support import session_store, set_ratio
from tests.redisserver import RedisServer, free_port
from tests.serveproc import bot_env
from tests.slackcheck import wait_until
from tests.test_serve_health import RULES, Serve, header, posts, updates

__all__ = ["pg_url"]  # the fixture

LEASE_SECONDS = 3.0  # renew deadline 2 s, retry 0.4 s (REDIS_MEM_LEASE_SECONDS)
RETRY_SECONDS = LEASE_SECONDS * 2 / 15
STARTUP_SLACK = 10.0  # two cores shared with other test workers: room for a slow round
CHANNEL = "C0ALERTS"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # before every sample
_LEADER_LINE = re.compile(r"^redis_mem_leader (\S+)$", re.MULTILINE)


@dataclass
class Cluster:
    """What both replicas share, and how each is told to elect."""

    mode: str
    env: dict[str, str]
    kube: FakeKube | None


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: fake, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: fake, user: {token: test-token}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake}}]\n"
        "current-context: fake\n"
    )
    return path


@pytest.fixture(params=["database", "kubernetes"])
def cluster(
    request: pytest.FixtureRequest, pg_url: str, fake_slack: FakeSlack, tmp_path: Path
) -> Iterator[Cluster]:
    engine = make_engine(pg_url)
    upgrade(engine)  # PostgreSQL is checked, never migrated, by serve
    engine.dispose()
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    env = bot_env(
        fake_slack,
        tmp_path,
        secret="serve-leader-secret",
        DATABASE_URL=pg_url,
        REDIS_MEM_TARGETS_FILE=str(tmp_path / "targets.yml"),
        REDIS_MEM_RULES_FILE=str(rules),
        REDIS_MEM_CHECK_INTERVAL="1",
        REDIS_MEM_CHECK_TIMEOUT="1",
        REDIS_MEM_REPEAT_INTERVAL="0",
        REDIS_MEM_CHANNEL=CHANNEL,
        REDIS_MEM_LEASE_SECONDS=str(LEASE_SECONDS),
        KUBERNETES_SERVICE_HOST="",
    )
    env.pop("KUBECONFIG", None)
    kube = None
    if request.param == "kubernetes":
        kube = FakeKube().start()
        env.update(
            KUBECONFIG=str(_kubeconfig(tmp_path / "kubeconfig", kube.url)),
            POD_NAMESPACE=NAMESPACE,
            REDIS_MEM_LEADER_ELECTION="auto",  # KUBECONFIG is set: the Lease
        )
    else:
        env["REDIS_MEM_LEADER_ELECTION"] = "database"
    yield Cluster(request.param, env, kube)
    if kube is not None:
        kube.stop()


def _replica(cluster: Cluster, fake: FakeSlack, tmp_path: Path, name: str) -> Serve:
    env = {**cluster.env, "PORT": str(free_port()), "POD_NAME": name}
    return Serve(fake=fake, env=env, log=tmp_path / f"{name}.log")


def leader_value(serve: Serve) -> float | None:
    """``redis_mem_leader`` on the replica's /metrics (None: not answering)."""
    try:
        text = serve.http.get(f"{serve.url}/metrics").text
    except httpx.TransportError:
        return None
    match = _LEADER_LINE.search(text)
    return float(match.group(1)) if match else None


def _kill(serve: Serve) -> None:
    assert serve.proc is not None
    os.kill(serve.proc.pid, signal.SIGKILL)
    serve.proc.wait(timeout=10)


def _write_targets(env: dict[str, str], prod: RedisServer) -> None:
    targets = {"targets": [{"name": "prod", "redis_url": prod.url}]}
    Path(env["REDIS_MEM_TARGETS_FILE"]).write_text(yaml.safe_dump(targets))


def _updated(fake: FakeSlack, ts: str, word: str) -> bool:
    return any(word in header(c) for c in updates(fake, ts))


def test_two_replicas_alert_once_and_the_follower_takes_over_without_reposting(
    cluster: Cluster,
    fake_slack: FakeSlack,
    redis_factory: RedisFactory,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    prod = session_store(redis_factory, ttl=None)
    _write_targets(cluster.env, prod)
    a = _replica(cluster, fake_slack, tmp_path, "bot-a").start()
    b = _replica(cluster, fake_slack, tmp_path, "bot-b")
    try:
        wait_until(lambda: leader_value(a) == 1.0, timeout=STARTUP_SLACK)
        b.start()
        wait_until(lambda: leader_value(b) == 0.0, timeout=STARTUP_SLACK)
        assert b.http.get(f"{b.url}/readyz").status_code == 200  # followers stay ready
        if cluster.kube is not None:
            lease = cluster.kube.get("leases", LEASE_NAME)
            assert lease is not None and lease["spec"]["holderIdentity"] == "bot-a"

        set_ratio(prod, 0.85)
        [post] = fake_slack.wait_for("chat.postMessage", timeout=30)
        assert "WARNING" in header(post)
        wait_until(lambda: a.open_alert("prod").message_ts is not None)
        ts = a.open_alert("prod").message_ts
        assert ts is not None
        a.rounds_pass("prod", count=3)
        assert len(posts(fake_slack)) == 1  # the follower posted nothing
        assert leader_value(b) == 0.0

        _kill(a)
        killed = time.monotonic()
        wait_until(lambda: leader_value(b) == 1.0, timeout=LEASE_SECONDS + RETRY_SECONDS + 5)
        took = time.monotonic() - killed
        record_property("takeover_seconds", round(took, 2))  # README's figure (--junitxml)

        # The new leader's rounds carry the same alert on: escalate, then resolve, in place.
        set_ratio(prod, 0.95)
        wait_until(
            lambda: any("CRITICAL" in header(c) for c in updates(fake_slack, ts)), timeout=30
        )
        set_ratio(prod, 0.4)
        wait_until(
            lambda: any("RESOLVED" in header(c) for c in updates(fake_slack, ts)), timeout=30
        )
        assert len(posts(fake_slack)) == 1, [header(c) for c in posts(fake_slack)]

        # Exactly one replica checked each round (two leaders would store two samples).
        times = [s.at for s in b.store.recent_samples(since=EPOCH)["prod"]]
        assert len(times) == len(set(times))
        output = b.stop()
        assert "Traceback" not in output and "Traceback" not in a.output()
        assert "this replica leads" in output
    finally:
        for serve in (a, b):
            if serve.alive():
                assert serve.proc is not None
                serve.proc.kill()
                serve.proc.wait(timeout=10)
            if serve._engine is not None:
                serve._engine.dispose()
    if cluster.kube is not None:
        lease = cluster.kube.get("leases", LEASE_NAME)
        assert lease is not None
        # b released on SIGTERM: nobody holds it, and a follower would take it at once.
        assert lease["spec"].get("holderIdentity") in (None, "")
        assert lease["spec"]["leaseTransitions"] == 1
