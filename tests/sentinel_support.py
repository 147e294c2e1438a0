"""A real Sentinel deployment for the tests: a primary, a replica and three sentinels.

Every process is a real ``redis-server`` on a free loopback port; the sentinels run
``redis-server <conf> --sentinel`` with a config file written into its own directory (Sentinel
rewrites it, so it must be writable). Quorum 2, down-after 1 s, failover-timeout 3 s.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import redis

from bot.config import Target
from bot.errors import ConfigError
from tests.conftest import RedisFactory
from tests.redisserver import RedisServer

MASTER = "mymaster"
WAIT_SECONDS = 30.0  # a real failover takes about a second; a loaded 2-core box, more


def wait_for(condition: Callable[[], bool], *, what: str, seconds: float = WAIT_SECONDS) -> None:
    """Poll ``condition`` until true (bounded); fail the test naming ``what`` otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def pairs(reply: object) -> dict[str, str]:
    """A sentinel's state reply as a dict (redis-py parses some replies, not others)."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    assert isinstance(reply, list)
    return {str(k): str(v) for k, v in zip(reply[::2], reply[1::2], strict=True)}


class SentinelProcess(RedisServer):
    """One ``redis-server <conf> --sentinel`` monitoring ``MASTER`` on the primary's port.

    ``RedisServer``'s process life (start and wait for PING, pause, stop) with another
    command line: Sentinel reads (and rewrites) a config file in the server's directory.
    """

    def __init__(
        self,
        *,
        primary_port: int,
        password: str | None = None,
        data_password: str | None = None,
    ) -> None:
        super().__init__(password=password)
        self.conf = self.directory / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"logfile {self.directory / 'redis.log'}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 3000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
            + (f"requirepass {password}\n" if password else "")
            + (f"sentinel auth-pass {MASTER} {data_password}\n" if data_password else "")
        )

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>`` (its password goes separately: ``client``)."""
        return f"redis://127.0.0.1:{self.port}"

    def command(self, binary: str) -> list[str]:
        """Sentinel mode, from the config file."""
        return [binary, str(self.conf), "--sentinel"]

    def start(self) -> SentinelProcess:
        """Start it and wait until it answers PING; skip the test where it cannot run."""
        try:
            super().start()
        except ConfigError as err:
            pytest.skip(f"redis-server cannot run as a sentinel here: {err.message}")
        return self

    def client(self) -> redis.Redis:
        """A decoded client of this sentinel (short timeouts)."""
        return redis.Redis.from_url(
            self.url,
            password=self.password,
            decode_responses=True,
            socket_timeout=2,
            socket_connect_timeout=2,
        )

    def primary(self) -> str:
        """``host:port`` of the primary this sentinel names now."""
        with self.client() as client:
            ip, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
        return f"{ip}:{port}"


@dataclass
class SentinelSetup:
    """The primary, its replica, the sentinels and a ``mode: sentinel`` target on them."""

    primary: RedisServer
    replica: RedisServer
    sentinels: list[SentinelProcess] = field(default_factory=list)

    def target(self, name: str = "prod") -> Target:
        """The sentinel target, sentinels in start order."""
        return Target(
            name=name,
            mode="sentinel",
            sentinels=tuple(s.url for s in self.sentinels),
            master_name=MASTER,
        )

    def server_at(self, address: str) -> RedisServer:
        """The server whose ``host:port`` is ``address``."""
        for server in (self.primary, self.replica):
            if address == f"127.0.0.1:{server.port}":
                return server
        raise AssertionError(f"no server at {address}")

    def current_primary(self) -> str:
        """What the first sentinel names now."""
        return self.sentinels[0].primary()

    def failover(self) -> str:
        """``SENTINEL FAILOVER`` and wait until every sentinel names the new primary and it
        says role master; the new address. (The old primary follows it some seconds later:
        a sentinel refreshes a replica's INFO every 10 s, and nothing here waits for that.)"""
        old = self.current_primary()
        new = next(
            f"127.0.0.1:{s.port}" for s in (self.primary, self.replica)
            if f"127.0.0.1:{s.port}" != old
        )  # fmt: skip
        with self.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", MASTER)
        wait_for(lambda: all(s.primary() == new for s in self.sentinels), what="the new primary")
        wait_for(lambda: _role(self.server_at(new)) == "master", what="promotion")
        return new

    def stop_sentinels(self) -> None:
        """Every sentinel down."""
        for sentinel in self.sentinels:
            sentinel.stop()


def _role(server: RedisServer) -> str:
    with redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=2) as client:
        return str(client.info("replication")["role"])


def _replica_linked(server: RedisServer) -> bool:
    with redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=2) as client:
        info = client.info("replication")
    return bool(info["role"] == "slave" and info.get("master_link_status") == "up")


def _sentinels_ready(sentinels: list[SentinelProcess], replica_port: int) -> bool:
    """Every sentinel sees the replica, its link ok (the others are found by hello messages,
    which a forced failover and the propagation of its new configuration do not wait for)."""
    for sentinel in sentinels:
        with sentinel.client() as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", MASTER)
        states = [pairs(r) for r in replicas]
        linked = any(
            s.get("port") == str(replica_port) and s.get("master-link-status") == "ok"
            and "s_down" not in s.get("flags", "")
            for s in states
        )  # fmt: skip
        if not linked:
            return False
    return True


def start_sentinels(
    redis_factory: RedisFactory,
    *,
    password: str | None = None,
    sentinel_password: str | None = None,
) -> Iterator[SentinelSetup]:
    """Start everything, wait until the sentinels know the replica.

    ``password``: the data nodes' requirepass (and masterauth: either may become a replica);
    ``sentinel_password``: the sentinels' own requirepass.
    """
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    common = ["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]
    if password:
        common += ["--masterauth", password]
    primary = redis_factory(*common, password=password)
    replica = redis_factory(
        "--replicaof", "127.0.0.1", str(primary.port), *common, password=password
    )
    wait_for(lambda: _replica_linked(replica), what="the replica to sync")
    setup = SentinelSetup(primary, replica)
    try:
        for _ in range(3):
            sentinel = SentinelProcess(
                primary_port=primary.port, password=sentinel_password, data_password=password
            )
            setup.sentinels.append(sentinel.start())
        wait_for(
            lambda: _sentinels_ready(setup.sentinels, replica.port), what="the sentinels to agree"
        )
        yield setup
    finally:
        setup.stop_sentinels()


@pytest.fixture
def sentinel_setup(redis_factory: RedisFactory) -> Iterator[SentinelSetup]:
    """A primary, a replica and three sentinels (``MASTER``), stopped after the test."""
    yield from start_sentinels(redis_factory)


__all__ = ["MASTER", "SentinelProcess", "SentinelSetup", "sentinel_setup", "wait_for"]
