"""The Redis adapter against real redis-server processes: connecting, errors, INFO/CONFIG."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from bot.config import Target
from bot.errors import ConfigError, RedisMemError, RedisUnavailable
from bot.redisinfo.client import connect
from bot.redisinfo.probe import LiveRedisProbe
from bot.redisinfo.sampler import LiveSampleSource
from bot.redisinfo.snapshot import Snapshot
from tests.conftest import RedisFactory
from tests.redisserver import RedisServer, free_port

FIXED_NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def snap(url: str, *, full: bool = False, sample_size: int = 100) -> Snapshot:
    probe = LiveRedisProbe(name="sessions", url=url, clock=lambda: FIXED_NOW, timeout=2.0)
    return probe.snapshot(pattern="session:*", sample_size=sample_size, full=full)


def fill(client: redis.Redis, *, sessions: int, others: int = 0, ttl: int | None = 3600) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(sessions):
        pipe.set(f"session:{i}", "v" * 500, ex=ttl)
    for i in range(others):
        pipe.set(f"cache:{i}", "x")
    pipe.execute()


def unavailable(url: str, *, timeout: float = 2.0) -> str:
    with pytest.raises(RedisUnavailable) as caught:
        LiveRedisProbe(name="t", url=url, timeout=timeout).snapshot(
            pattern="session:*", sample_size=10
        )
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- reading a snapshot ---------------------------------------------------------------


def test_snapshot_reads_memory_stats_keyspace_and_config(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    fill(redis_client, sessions=50, others=30)
    redis_client.set("session:forever", "v")

    result = snap(redis_server.url)

    assert result.target == "sessions"
    assert result.taken_at == FIXED_NOW
    assert result.redis_version[0].isdigit()
    assert result.memory.maxmemory == 64 * 1024 * 1024
    assert result.memory.used_memory > 0
    assert result.memory.used_memory_rss > 0
    assert result.memory.mem_fragmentation_ratio > 0
    assert result.memory.maxmemory_policy == "allkeys-lru"
    assert result.maxmemory_policy == "allkeys-lru"
    assert (result.policy_source, result.config_available) == ("config", True)
    assert result.settings["maxmemory"] == str(64 * 1024 * 1024)
    assert result.settings["activedefrag"] == "no"
    assert result.settings["appendonly"] == "no"
    assert result.settings["save"] == ""
    assert "lfu-decay-time" in result.settings
    assert result.persistence["aof_enabled"] == "0"
    assert result.persistence["rdb_last_bgsave_status"] == "ok"
    assert result.dbsize == 81
    assert result.db == 0
    (db0,) = result.keyspace
    assert (db0.db, db0.keys, db0.expires) == (0, 81, 50)
    assert result.stats.evicted_keys == 0
    assert result.sample.session_keys_estimate == 51


def test_stats_count_expired_keys(redis_server: RedisServer, redis_client: redis.Redis) -> None:
    redis_client.set("session:gone", "v", px=1)
    while redis_client.exists("session:gone"):  # lazy expiry on access; ms-scale
        pass

    assert snap(redis_server.url).stats.expired_keys >= 1


def test_maxmemory_zero_means_no_limit(redis_factory: RedisFactory) -> None:
    server = redis_factory()

    result = snap(server.url)

    assert result.memory.maxmemory == 0
    assert result.maxmemory_policy == "noeviction"
    assert result.dbsize == 0


def test_renamed_config_takes_policy_from_info(redis_factory: RedisFactory) -> None:
    server = redis_factory("--maxmemory-policy", "volatile-lru", "--rename-command", "CONFIG", "")
    client = redis.Redis.from_url(server.url)
    with pytest.raises(redis.ResponseError, match="unknown command"):
        client.config_get("maxmemory")  # the rename did take effect
    client.close()

    result = snap(server.url)

    assert result.maxmemory_policy == "volatile-lru"
    assert (result.policy_source, result.config_available) == ("info", False)
    assert result.settings == {}


def test_config_denied_by_acl_takes_policy_from_info(redis_factory: RedisFactory) -> None:
    server = redis_factory("--maxmemory-policy", "allkeys-lfu")
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "bot", "on", ">botpw", "~*", "+@all", "-config")
    admin.close()

    result = snap(f"redis://bot:botpw@127.0.0.1:{server.port}/0")

    assert result.maxmemory_policy == "allkeys-lfu"
    assert (result.policy_source, result.config_available) == ("info", False)


def test_db_number_from_url(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    client = redis.Redis(port=server.port, db=3)
    fill(client, sessions=7)
    client.close()

    result = snap(f"redis://127.0.0.1:{server.port}/3")

    assert (result.db, result.dbsize, result.sample.session_keys_estimate) == (3, 7, 7)
    assert [db.db for db in result.keyspace] == [3]


def test_connect_returns_a_decoding_client(redis_server: RedisServer) -> None:
    client = connect(redis_server.url, timeout=1.0)
    try:
        client.set("k", "v")
        assert client.get("k") == "v"
    finally:
        client.close()


# --- failures: one line, no password ----------------------------------------------------


def test_unreachable_port_is_one_line() -> None:
    port = free_port()

    message = unavailable(f"redis://127.0.0.1:{port}/0")

    assert message == f"cannot reach Redis at redis://127.0.0.1:{port}/0: connection refused"


def test_wrong_password_is_reported_without_any_password(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="s3cret")
    url = f"redis://:hunter2@127.0.0.1:{server.port}/0"

    message = unavailable(url)

    assert message == f"Redis at redis://:***@127.0.0.1:{server.port}/0 rejected the password"
    assert "hunter2" not in message and "s3cret" not in message


def test_missing_password_is_reported(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="s3cret")

    message = unavailable(f"redis://127.0.0.1:{server.port}/0")

    assert "requires a password" in message
    assert "s3cret" not in message


def test_right_password_works(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="s3cret")

    assert snap(server.url).dbsize == 0


def test_password_given_to_a_server_without_one(redis_factory: RedisFactory) -> None:
    server = redis_factory()

    message = unavailable(f"redis://:hunter2@127.0.0.1:{server.port}/0")

    assert "no password set" in message and "hunter2" not in message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def test_silent_server_times_out(silent_port: int) -> None:
    message = unavailable(f"redis://:pw@127.0.0.1:{silent_port}/0", timeout=0.3)

    assert message == (
        f"cannot reach Redis at redis://:***@127.0.0.1:{silent_port}/0: no answer within 0.3 s"
    )


def test_unknown_host() -> None:
    message = unavailable("redis://no-such-host.invalid:6379/0")

    assert message.endswith("host name not found")


def test_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid Redis URL"):
        connect("http://:pw@localhost:6379/0")


# --- TLS --------------------------------------------------------------------------------


@pytest.fixture
def tls_server(redis_factory: RedisFactory, tmp_path: Path) -> tuple[int, Path]:
    """A redis-server with a TLS port and a self-signed certificate: (tls port, cert)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls_port = free_port()
    redis_factory(
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
    )  # fmt: skip
    return tls_port, cert


def test_tls_with_an_untrusted_certificate_is_one_line(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server

    message = unavailable(f"rediss://127.0.0.1:{port}/0")

    assert message.startswith(f"cannot reach Redis at rediss://127.0.0.1:{port}/0: TLS")


def test_tls_with_the_ca_works(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server

    assert snap(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}").dbsize == 0


def test_plain_client_on_a_tls_port_is_one_line(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server

    message = unavailable(f"redis://127.0.0.1:{port}/0")

    assert message.startswith(f"cannot reach Redis at redis://127.0.0.1:{port}/0: ")


@pytest.mark.parametrize("cut", ["#", "?", "/"])
def test_a_password_cut_by_an_unencoded_character_shows_no_piece_of_itself(cut: str) -> None:
    """redis-py quotes the part before an unencoded '#' as the 'port': it must not show."""
    url = f"redis://:TopSecretValue{cut}tail-secret@127.0.0.1:1/0"
    with pytest.raises(RedisMemError) as err:
        LiveSampleSource(timeout=1).read(Target(name="t", redis_url=url), at=datetime.now(UTC))
    assert "TopSecretValue" not in err.value.message
    assert "tail-secret" not in err.value.message
