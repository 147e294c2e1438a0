"""A Sentinel target whose data nodes and sentinels each require their own password."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.config import Settings, Target
from bot.errors import RedisUnavailable
from bot.redisinfo.sampler import LiveSampleSource
from bot.wiring import diagnosis_service
from tests.conftest import RedisFactory
from tests.sentinel_support import MASTER, SentinelSetup, start_sentinels

DATA_PW = "d4ta-s3cret"
SENTINEL_PW = "s3ntinel-s3cret"


@pytest.fixture
def guarded(redis_factory: RedisFactory) -> Iterator[SentinelSetup]:
    yield from start_sentinels(redis_factory, password=DATA_PW, sentinel_password=SENTINEL_PW)


def target(setup: SentinelSetup) -> Target:
    return Target(
        name="prod",
        mode="sentinel",
        master_name=MASTER,
        sentinels=tuple(s.url for s in setup.sentinels),
        password_env="PROD_PW",
        sentinel_password_env="SENTINEL_PW",
    )


def test_each_password_goes_to_its_own_nodes(
    guarded: SentinelSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROD_PW", DATA_PW)
    monkeypatch.setenv("SENTINEL_PW", SENTINEL_PW)
    prod = target(guarded)
    source = LiveSampleSource(timeout=2)
    sample = source.read(prod, at=datetime.now(UTC))
    source.close()
    assert sample.reachable and sample.maxmemory == 64 * 1024**2
    d = diagnosis_service(Settings(), {"prod": prod}).diagnose("prod")
    assert d.primary_label == f"primary 127.0.0.1:{guarded.primary.port} (via sentinel)"
    assert d.sentinel is not None
    [replica] = d.sentinel.replicas  # its offset read with the data nodes' password
    assert (replica.link, replica.error) == ("up", None) and replica.lag_bytes is not None


def test_a_wrong_sentinel_password_is_one_line_without_it(
    guarded: SentinelSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROD_PW", DATA_PW)
    monkeypatch.setenv("SENTINEL_PW", "not-the-s3cret")
    with pytest.raises(RedisUnavailable) as err:
        LiveSampleSource(timeout=2).read(target(guarded), at=datetime.now(UTC))
    reasons = "; ".join(f"127.0.0.1:{s.port} rejected the password" for s in guarded.sentinels)
    assert err.value.message == f"no sentinel of prod answered: {reasons}"
