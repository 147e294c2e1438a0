"""A Sentinel target against a real primary, replica and three sentinels, through the real
wiring: checks, diagnoses and a fix before and after a real ``SENTINEL FAILOVER``.

The two data nodes are told apart by their maxmemory (CONFIG SET is not replicated):
whatever a check or a diagnosis reports, the node it read is the one it names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import redis
from rich.console import Console
from sqlalchemy import Engine

from bot.approvals.model import Actor, RequestState
from bot.audit.store import SqlAuditStore
from bot.config import Settings, Target
from bot.diagnosis.model import Diagnosis
from bot.diagnosis.serialize import diagnosis_to_dict
from bot.errors import RedisUnavailable
from bot.health.service import HealthService
from bot.health.store import SqlHealthStore
from bot.presenters.terminal import render_diagnosis
from bot.redisinfo.sampler import LiveSampleSource
from bot.slack.blocks.diagnosis import diagnosis_message
from bot.wiring import diagnosis_service, health_service, private_health_engine, remediation_service
from tests.remediation_support import load_sessions
from tests.sentinel_support import MASTER, SentinelSetup, sentinel_setup  # noqa: F401

MB = 1024**2
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
REQUESTER = Actor("U0REQUEST", "rita")
APPROVER = Actor("U0APPROVE", "alice")


class Clock:
    """Moved by hand: one check round per minute."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def settings() -> Settings:
    return Settings(REDIS_MEM_CHECK_TIMEOUT=2, REDIS_MEM_APPROVERS="U0APPROVE")


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=2)


@pytest.fixture
def engine() -> Iterator[Engine]:
    built = private_health_engine()
    yield built
    built.dispose()


@pytest.fixture
def sized(sentinel_setup: SentinelSetup) -> SentinelSetup:  # noqa: F811
    """The primary at maxmemory 64mb, the replica at 48mb, sessions without TTL on them."""
    with client(sentinel_setup.primary.url) as primary:
        primary.config_set("maxmemory", str(64 * MB))
        load_sessions(primary, 300, ttl=None)
    with client(sentinel_setup.replica.url) as replica:
        replica.config_set("maxmemory", str(48 * MB))
    return sentinel_setup


def address(setup: SentinelSetup, which: str) -> str:
    server = setup.primary if which == "primary" else setup.replica
    return f"127.0.0.1:{server.port}"


def round_at(service: HealthService, clock: Clock, minute: int) -> tuple[bool, int | None, str]:
    clock.now = T0 + timedelta(minutes=minute)
    [check] = service.run_round().checks
    return check.sample.reachable, check.sample.maxmemory, check.sample.error or ""


def rendered(d: Diagnosis) -> str:
    console = Console(file=StringIO(), width=200)
    console.print(render_diagnosis(d))
    out = console.file
    assert isinstance(out, StringIO)
    return out.getvalue()


def test_a_failover_between_two_checks_changes_only_the_reported_primary(
    sized: SentinelSetup, engine: Engine
) -> None:
    target = sized.target()
    targets = {"prod": target}
    clock = Clock()
    checks = health_service(settings(), engine=engine, targets=targets, clock=clock)
    diagnosis = diagnosis_service(settings(), targets)
    first_primary = address(sized, "primary")
    try:
        assert round_at(checks, clock, 0) == (True, 64 * MB, "")
        before = diagnosis.diagnose("prod")
        assert before.sentinel is not None and before.sentinel.primary == first_primary
        assert (before.target, before.maxmemory) == ("prod", 64 * MB)

        new_primary = sized.failover()

        assert new_primary == address(sized, "replica")
        assert round_at(checks, clock, 1) == (True, 48 * MB, "")
        after = diagnosis.diagnose("prod")
    finally:
        checks.close()
    assert after.sentinel is not None and after.sentinel.primary == new_primary
    assert (after.target, after.maxmemory, after.session_keys) == ("prod", 48 * MB, 300)
    # One target, one history: both checks are stored under its name, both reachable.
    history = SqlHealthStore(engine).recent_samples(since=T0 - timedelta(minutes=1))
    assert list(history) == ["prod"]
    assert [(s.at, s.reachable, s.maxmemory) for s in history["prod"]] == [
        (T0, True, 64 * MB),
        (T0 + timedelta(minutes=1), True, 48 * MB),
    ]
    # Every face names the primary it read.
    label = f"primary {new_primary} (via sentinel)"
    assert after.primary_label == label
    assert label in str(diagnosis_message(after).blocks[1].to_dict())
    assert label in rendered(after)
    assert diagnosis_to_dict(after)["sentinel"]["primary"] == new_primary


def test_the_replicas_lag_is_reported_in_findings_and_json(sized: SentinelSetup) -> None:
    d = diagnosis_service(settings(), {"prod": sized.target()}).diagnose("prod")
    replica = address(sized, "replica")
    [finding] = [f for f in d.findings if f.id == "replica-lag"]
    assert finding.message.startswith(f"replica {replica} is ")
    assert finding.message.endswith(" bytes behind (link up)")
    doc = diagnosis_to_dict(d)["sentinel"]
    assert doc["master_name"] == MASTER and doc["primary"] == address(sized, "primary")
    assert doc["sentinel"] == f"127.0.0.1:{sized.sentinels[0].port}"
    [entry] = doc["replicas"]
    assert (entry["address"], entry["link"], entry["error"]) == (replica, "up", None)
    assert isinstance(entry["lag_bytes"], int) and entry["lag_bytes"] >= 0
    plain = diagnosis_to_dict(
        diagnosis_service(settings(), {"p": Target(name="p", redis_url=sized.primary.url)})
        .diagnose("p")
    )  # fmt: skip
    assert plain["sentinel"] is None


def test_a_fix_after_a_failover_runs_on_the_new_primary(sized: SentinelSetup) -> None:
    engine = private_health_engine()
    targets = {"prod": sized.target()}
    diagnosis = diagnosis_service(settings(), targets)
    service = remediation_service(
        settings(), engine=engine, audit=SqlAuditStore(engine), diagnosis=diagnosis
    )
    new_primary = sized.server_at(sized.failover())
    try:
        request = service.request(
            actor=REQUESTER,
            action_id="expire-keys-without-ttl",
            target_name="prod",
            raw_params={"ttl_seconds": "12h"},
            channel=None,
        )
        done = service.approve(request_id=request.id, approver=APPROVER)
    finally:
        engine.dispose()
    assert done.state is RequestState.SUCCEEDED, done.error
    assert done.result is not None and done.result["keys_changed"] == 300
    with client(new_primary.url) as primary:
        assert primary.info("replication")["role"] == "master"
        assert all(primary.ttl(f"session:{i}") > 3600 for i in range(300))


def test_every_sentinel_down_is_one_line_and_store_down(
    sized: SentinelSetup, engine: Engine
) -> None:
    target = sized.target()
    ports = [s.port for s in sized.sentinels]
    sized.stop_sentinels()
    clock = Clock()
    checks = health_service(settings(), engine=engine, targets={"prod": target}, clock=clock)
    try:
        outcomes = []
        for minute in (0, 1, 2):
            clock.now = T0 + timedelta(minutes=minute)
            [check] = checks.run_round().checks
            outcomes.append({o.rule.id: o.status for o in check.outcomes}["store-down"])
    finally:
        checks.close()
    assert not check.sample.reachable
    reasons = "; ".join(f"127.0.0.1:{port} connection refused" for port in ports)
    assert check.sample.error == f"no sentinel of prod answered: {reasons}"
    assert outcomes[0] == "pending" and outcomes[-1] == "firing"
    with pytest.raises(RedisUnavailable) as err:
        diagnosis_service(settings(), {"prod": target}).diagnose("prod")
    assert str(err.value) == f"no sentinel of prod answered: {reasons}"


def test_a_sentinel_that_does_not_know_the_master_is_passed_over(
    sized: SentinelSetup,
) -> None:
    first = sized.sentinels[0]
    with first.client() as c:
        c.execute_command("SENTINEL", "REMOVE", MASTER)
    target = sized.target()
    d = diagnosis_service(settings(), {"prod": target}).diagnose("prod")
    assert d.sentinel is not None and d.sentinel.primary == address(sized, "primary")
    assert d.sentinel.sentinel == f"127.0.0.1:{sized.sentinels[1].port}"


def test_a_hung_sentinel_costs_a_share_of_the_timeout_and_the_next_one_answers(
    sized: SentinelSetup, engine: Engine
) -> None:
    clock = Clock()
    checks = health_service(
        settings(), engine=engine, targets={"prod": sized.target()}, clock=clock
    )
    try:
        with sized.sentinels[0].paused():
            reading = round_at(checks, clock, 0)
    finally:
        checks.close()
    # Read within the round's own bound (timeout 2 s + 1 s grace), or it would be late.
    assert reading == (True, 64 * MB, "")


def test_every_sentinel_hung_is_one_line_within_the_timeout(sized: SentinelSetup) -> None:
    source = LiveSampleSource(timeout=2)
    with ExitStack() as stack:
        for sentinel in sized.sentinels:
            stack.enter_context(sentinel.paused())
        with pytest.raises(RedisUnavailable) as err:
            source.read(sized.target(), at=T0)
    source.close()
    # Each gets a share of the 2 s that is left (the exact share depends on the clock).
    shares = [rf"127\.0\.0\.1:{s.port} no answer within 0\.\d+ s" for s in sized.sentinels]
    assert re.fullmatch(f"no sentinel of prod answered: {'; '.join(shares)}", err.value.message)
