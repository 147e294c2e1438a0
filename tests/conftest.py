"""Shared fixtures: real redis-server processes on free loopback ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

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
