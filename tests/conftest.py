"""Shared fixtures: real redis-server processes on free loopback ports."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, settings

from bot.redisproc_cluster import RedisClusterProcs
from tests.fakeslack import METHODS_DIR_ENV, FakeSlack
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
ClusterFactory = Callable[..., RedisClusterProcs]

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
def cluster_factory() -> Iterator[ClusterFactory]:
    """Start real Redis Clusters (``RedisClusterProcs``: N primaries, slots spread by
    ``redis-cli --cluster create``); all are stopped after the test."""
    started: list[RedisClusterProcs] = []

    def start(*args: str, primaries: int = 3, password: str | None = None) -> RedisClusterProcs:
        cluster = RedisClusterProcs(*args, primaries=primaries, password=password)
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.stop()


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


# Every Web API method the fake Slack serves during the session, from every xdist worker:
# the controller makes the directory before it starts the workers (they inherit the
# variable), and checks what they noted once they are done (tests/test_slack_scopes.py).
_METHODS_DIR = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """On the controller (or the only process): where the fakes note their methods."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller's directory
        return
    directory = Path(tempfile.mkdtemp(prefix="fakeslack-methods-"))
    os.environ[METHODS_DIR_ENV] = str(directory)
    config.stash[_METHODS_DIR] = directory


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run, one line each, on a method the manifest's scopes do not cover."""
    directory = session.config.stash.get(_METHODS_DIR, None)
    if directory is None:
        return
    from tests.test_slack_scopes import recorded_problems

    problems = recorded_problems(directory)
    if not problems:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    title = "fails the run: Slack methods the app manifest's scopes do not cover"
    if reporter is not None:
        reporter.write_sep("=", title, red=True)
    for line in problems:
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(f"{title}: {line}", file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the directory (also after --help or --collect-only, which never finish)."""
    directory = config.stash.get(_METHODS_DIR, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
