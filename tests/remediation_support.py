"""Shared set-up for the remediation tests: a real redis-server, the fake Kubernetes API
server driven by the real client, and the real diagnosis pipeline.

Keys are aged with DUMP + RESTORE ... IDLETIME (never by sleeping).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis

from bot.config import Target, Thresholds
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import Diagnosis
from bot.kube.cluster import KubeCluster
from bot.redisinfo.ops import LiveRedisOps
from bot.redisinfo.probe import LiveRedisProbe
from bot.remediation.model import ActionContext, RemediationLimits
from tests.conftest import RedisFactory
from tests.fakekube import NAMESPACE, REDIS_CONF, FakeKube, running_fake_kube
from tests.redisserver import RedisServer

NOW = datetime(2026, 11, 29, 4, 0, tzinfo=UTC)
PAYLOAD = "x" * 900  # ~1 KB sessions
# The runbook's redis.conf, with the maxmemory the test Redis really runs with.
CONF_16MB = REDIS_CONF.replace("maxmemory 512mb", "maxmemory 16mb")


def fixed_clock() -> datetime:
    """A fixed time for rollout restarts (tests never read the wall clock)."""
    return NOW


@dataclass
class Env:
    """A real Redis with session keys, the seeded fake API server, and the adapters on them."""

    server: RedisServer
    client: redis.Redis
    fake: FakeKube
    cluster: KubeCluster
    ops: LiveRedisOps
    target: Target

    def diagnose(self) -> Diagnosis:
        """The real pipeline: LiveRedisProbe snapshot -> diagnose."""
        probe = LiveRedisProbe(name=self.target.name, url=self.server.url, clock=fixed_clock)
        snapshot = probe.snapshot(pattern="session:*", sample_size=1000)
        return diagnose(snapshot, Thresholds())

    def ctx(self, limits: RemediationLimits | None = None) -> ActionContext:
        """A context with a fresh diagnosis."""
        return ActionContext(
            target=self.target,
            diagnosis=self.diagnose(),
            cluster=self.cluster,
            redis=self.ops,
            limits=limits or RemediationLimits(),
            clock=fixed_clock,
        )

    def redis_conf(self) -> str:
        """The Redis ConfigMap's redis.conf as stored by the fake."""
        obj = self.fake.get("configmaps", "redis-session-config")
        assert obj is not None
        return str(obj["data"]["redis.conf"])

    def app_config(self) -> dict[str, str]:
        """The app ConfigMap's data."""
        obj = self.fake.get("configmaps", "langgraph-agent-config")
        assert obj is not None
        return dict(obj["data"])

    def deployment(self, name: str) -> dict[str, object]:
        """A Deployment as stored by the fake."""
        obj = self.fake.get("deployments", name)
        assert obj is not None
        return obj


def load_sessions(
    client: redis.Redis,
    count: int,
    *,
    start: int = 0,
    ttl: int | None = 86400,
    idle: int | None = None,
    payload: str = PAYLOAD,
) -> None:
    """``count`` session keys ``session:<i>``; with ``idle`` their idle time is set exactly."""
    pipe = client.pipeline(transaction=False)
    for i in range(start, start + count):
        pipe.set(f"session:{i}", payload, ex=ttl)
    pipe.execute()
    if idle is not None:
        age_keys(client, [f"session:{i}" for i in range(start, start + count)], idle=idle)


def age_keys(client: redis.Redis, keys: list[str], *, idle: int) -> None:
    """Set each key's idle time with DUMP + RESTORE ... REPLACE IDLETIME (keeps its TTL)."""
    raw = redis.Redis(connection_pool=client.connection_pool)
    pipe = raw.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
    replies = pipe.execute()
    pipe = raw.pipeline(transaction=False)
    for key, dumped, pttl in zip(keys, replies[::2], replies[1::2], strict=True):
        ttl = max(int(pttl), 0)
        pipe.execute_command("RESTORE", key, ttl, dumped, "REPLACE", "IDLETIME", idle)
    pipe.execute()


@pytest.fixture
def kube() -> Iterator[tuple[FakeKube, KubeCluster]]:
    """The seeded fake Kubernetes API server and a real-client KubeCluster on it."""
    with running_fake_kube() as setup:
        yield setup.fake, setup.cluster


def make_env(
    redis_factory: RedisFactory, kube: tuple[FakeKube, KubeCluster], *args: str
) -> Iterator[Env]:
    """Start a redis-server with ``args`` and wire everything."""
    server = redis_factory(*args)
    client = redis.Redis.from_url(server.url, decode_responses=True)
    fake, cluster = kube
    target = Target(name="sessions", redis_url=server.url)
    try:
        yield Env(server, client, fake, cluster, LiveRedisOps(url=server.url), target)
    finally:
        client.close()


@pytest.fixture
def env(redis_factory: RedisFactory, kube: tuple[FakeKube, KubeCluster]) -> Iterator[Env]:
    """Redis with maxmemory 16mb (allkeys-lru) and the seeded fake cluster (ConfigMap 16mb)."""
    kube[0].add_configmap("redis-session-config", {"redis.conf": CONF_16MB})
    yield from make_env(
        redis_factory, kube, "--maxmemory", "16mb", "--maxmemory-policy", "allkeys-lru"
    )


__all__ = ["CONF_16MB", "NAMESPACE", "Env", "age_keys", "env", "kube", "load_sessions", "make_env"]
