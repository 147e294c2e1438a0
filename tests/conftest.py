"""Shared fixtures: real redis-server processes on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
import redis
from hypothesis import HealthCheck, settings

from tests.fakeslack import FakeSlack
from tests.redisserver import RedisServer, redis_server_available

# Shared fixture modules that test modules both import and load as plugins: have
# pytest rewrite their asserts at first import (else it warns and leaves them plain).
pytest.register_assert_rewrite(
    "tests.remediation_support",
    "tests.approvals_support",
    "tests.slack_remediation_support",
    "tests.slack_alert_support",
    "tests.health_support",
)

RedisFactory = Callable[..., RedisServer]

# Property-based suites: "ci" keeps the whole fuzzing budget under a minute; "fuzz"
# (HYPOTHESIS_PROFILE=fuzz) is the on-demand deep run. No deadline: the machine is noisy,
# and linear time is asserted by counting work, never by the clock.
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def redis_factory() -> Iterator[RedisFactory]:
    """Start any number of redis-servers with extra args; all are stopped after the test."""
    if not redis_server_available():
        pytest.fail(
            "redis-server is not installed; the suite needs it (apt-get install redis-server)"
        )
    started: list[RedisServer] = []

    def start(*args: str, password: str | None = None) -> RedisServer:
        server = RedisServer(*args, password=password).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def redis_server(redis_factory: RedisFactory) -> RedisServer:
    """One redis-server with maxmemory 64mb and allkeys-lru."""
    return redis_factory("--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru")


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A decoded client of ``redis_server``."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """The fake Slack Web API on a free loopback port (a module may override it)."""
    fake = FakeSlack().start()
    yield fake
    fake.stop()
