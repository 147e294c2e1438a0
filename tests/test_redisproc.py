"""The throwaway redis-server used by the demo, the benchmarks and the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from bot.errors import ConfigError
from tests.redisserver import RedisServer


def test_a_server_that_fails_to_start_leaves_nothing_behind() -> None:
    server = RedisServer("--maxmemory-policy", "no-such-policy")
    workdir = Path(server._dir.name)
    with pytest.raises(ConfigError, match="redis-server exited at start"):
        server.start()
    assert not workdir.exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=server.port, socket_connect_timeout=0.5).ping()


def test_password_server_answers_with_the_password() -> None:
    with RedisServer(password="pw") as server:
        assert redis.Redis.from_url(server.url).ping()
