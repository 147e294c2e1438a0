"""The bot's own metrics, scraped from the real ``/metrics`` over HTTP.

- Slack API errors: the real clients of ``bot.wiring.slack_clients`` against the fake
  Slack, served beside a real Starlette app: a failed call counts once, after the
  client's retries, with its method and a bounded error;
- check outcomes and durations: a HealthService over a real redis-server and a real SQLite
  store that loses its samples table, timed by a timer the test steps;
- checks and alerts: a real ``redis-mem serve`` checking a real redis-server and a port
  nothing listens on; an alert fires and resolves; a channel Slack refuses;
- approvals: a real ``redis-mem serve`` where a fix is requested, approved, executed,
  and another rejected.

Every label value of every ``redis_mem_*`` sample is checked against its fixed set, and
no user id, user name or key name ever appears in the exposition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError
from sqlalchemy import text as text_clause

from bot.approvals.model import RequestState
from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.config import Settings, Target
from bot.health.model import EventKind
from bot.health.ports import CheckOutcome
from bot.health.rules import RULES_BY_ID, RuleBook
from bot.health.service import HealthService
from bot.health.store import SqlHealthStore
from bot.metrics import APPROVAL_STATES, ServiceMetrics
from bot.redisinfo.sampler import LiveSampleSource
from bot.slack.observed import KNOWN_ERRORS, METHOD
from bot.slack.retry import without_retries
from bot.web import create_web_app
from bot.wiring import slack_clients
from tests.asgiserver import ThreadedServer
from tests.conftest import RedisFactory
from tests.fakeslack import FakeSlack
from tests.faults_support import (
    APPROVERS,
    CHANNEL,
    REQUESTER,
    FaultyServe,
    seed_sessions,
    serve_env,
)
from tests.health_support import session_store, set_ratio
from tests.redisserver import free_port
from tests.serveproc import ServeProcess, bot_env
from tests.slackcheck import wait_until
from tests.slacksign import button_click_payload

Labels = dict[str, str]
GONE = "C0GONE"  # the channel Slack refuses (channel_not_found)
ALERTS = "C0ALERTS"
RULES = {
    "rules": {
        "memory-warning": {"for": "1s"},
        "memory-critical": {"enabled": False},
        "store-down": {"for": "1s"},
        "eviction-rate": {"enabled": False},
        "connections-exhausted": {"enabled": False},
        "memory-forecast": {"enabled": False},
    }
}


def scrape(url: str) -> str:
    """The text exposition ``GET /metrics`` answers."""
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of the exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def _slack_error(label: str) -> bool:
    return label in KNOWN_ERRORS | {"connection", "other"} or bool(
        re.fullmatch(r"http_[1-5]\d\d", label)
    )


def assert_bounded(text: str, *, targets: set[str]) -> None:
    """Every label value of the metrics added here is from its fixed set."""
    outcomes = {o.value for o in CheckOutcome}
    rules = set(RULES_BY_ID)
    kinds = {k.value for k in EventKind}
    allowed: dict[str, dict[str, Callable[[str], bool]]] = {
        "redis_mem_checks": {"target": targets.__contains__, "outcome": outcomes.__contains__},
        "redis_mem_check_duration_seconds": {"target": targets.__contains__, "le": bool},
        "redis_mem_alerts": {"rule": rules.__contains__, "state": kinds.__contains__},
        "redis_mem_slack_api_errors": {
            "method": lambda m: m == "other" or bool(METHOD.fullmatch(m)),
            "error": _slack_error,
        },
        "redis_mem_approvals": {"state": set(APPROVAL_STATES).__contains__},
    }
    for family in text_string_to_metric_families(text):
        checks = allowed.get(family.name)
        if checks is None:
            continue
        for sample in family.samples:
            assert set(sample.labels) <= set(checks), sample  # ``le``: buckets only
            for key, label in sample.labels.items():
                assert checks[key](label), sample


# Slack API errors, in process: the real clients, the real /metrics ----------------------


@pytest.fixture
def metered(fake_slack: FakeSlack) -> Iterator[tuple[ServiceMetrics, str]]:
    """The metrics on a registry served by a real app; the app's URL."""
    registry = CollectorRegistry()
    metrics = ServiceMetrics.create(registry)
    server = ThreadedServer.start(create_web_app(registry=registry))
    yield metrics, server.url
    server.stop()


def _settings(api_url: str) -> Settings:
    return Settings(
        slack_bot_token="xoxb-metrics", slack_signing_secret="metrics", slack_api_url=api_url
    )


def test_a_failed_slack_call_counts_once_after_its_retries_with_its_method_and_error(
    fake_slack: FakeSlack, metered: tuple[ServiceMetrics, str]
) -> None:
    metrics, url = metered
    clients = slack_clients(_settings(fake_slack.api_url), observer=metrics)
    errors = "redis_mem_slack_api_errors_total"

    # A 503 three times: the alert client tries three times inside one call, which fails.
    fake_slack.fail_http("chat.postMessage", status=503, times=3)
    with pytest.raises(SlackApiError):
        clients.alerts.chat_postMessage(channel=CHANNEL, text="hello")
    assert len(fake_slack.calls_to("chat.postMessage")) == 3
    text = scrape(url)
    assert value(text, errors, method="chat.postMessage", error="http_503") == 1

    # Slack's own code (HTTP 200, ok false), through the listeners' client and a copy
    # without retries; a code outside Slack's vocabulary is "other", never the text.
    fake_slack.fail("chat.update", "message_not_found", times=2)
    fake_slack.fail("chat.update", "code_from_a_hostile_proxy U0ALICE", times=1)
    for client in (clients.listeners, without_retries(clients.alerts), clients.alerts):
        with pytest.raises(SlackApiError):
            client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert len(fake_slack.calls_to("chat.update")) == 3  # codes are not retried
    # A call that works counts nothing.
    clients.alerts.chat_postMessage(channel=CHANNEL, text="fine")

    text = scrape(url)
    assert value(text, errors, method="chat.update", error="message_not_found") == 2
    assert value(text, errors, method="chat.update", error="other") == 1
    assert total(text, errors) == 4
    assert "hostile" not in text and "U0ALICE" not in text
    assert_bounded(text, targets=set())


def test_a_slack_nobody_answers_is_one_connection_error_per_call(
    metered: tuple[ServiceMetrics, str],
) -> None:
    metrics, url = metered
    nowhere = f"http://127.0.0.1:{free_port()}/api/"
    clients = slack_clients(_settings(nowhere), observer=metrics)
    with pytest.raises(OSError):
        clients.alerts.usergroups_users_list(usergroup="S0OPS")
    text = scrape(url)
    assert (
        value(
            text,
            "redis_mem_slack_api_errors_total",
            method="usergroups.users.list",
            error="connection",
        )
        == 1
    )


# Check outcomes and durations, in process: a real Redis, a real SQLite store ------------


class SteppingTimer:
    """A monotonic timer the test controls: each reading is a quarter second later."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


def test_a_check_not_stored_is_an_error_and_every_check_is_timed_by_the_timer_passed_in(
    tmp_path: Path, redis_factory: RedisFactory, metered: tuple[ServiceMetrics, str]
) -> None:
    metrics, url = metered
    engine = make_engine(f"sqlite:///{tmp_path / 'health.db'}")
    upgrade(engine)
    targets = {
        "prod": Target(name="prod", redis_url=redis_factory().url),
        "dead": Target(name="dead", redis_url=f"redis://127.0.0.1:{free_port()}/0"),
    }
    service = HealthService(
        targets=targets,
        source=LiveSampleSource(timeout=1),
        store=SqlHealthStore(engine),
        rules=RuleBook.defaults(),
        audit=SqlAuditStore(engine),
        interval=60,
        timeout=2,
        repeat_interval=timedelta(hours=1),
        max_parallel=1,  # one worker: each check reads the timer twice in a row
        observer=metrics,
        timer=SteppingTimer(),
    )
    try:
        service.run_round(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
        with engine.begin() as conn:  # the database loses the samples table: nothing stored
            conn.execute(text_clause("DROP TABLE health_samples"))
        result = service.run_round(datetime(2026, 12, 1, 10, 1, tzinfo=UTC))
        assert all(check.error is not None for check in result.checks)
    finally:
        service.close()
        engine.dispose()

    text = scrape(url)
    checks = "redis_mem_checks_total"
    assert value(text, checks, target="prod", outcome="ok") == 1
    assert value(text, checks, target="dead", outcome="unreachable") == 1
    assert value(text, checks, target="prod", outcome="error") == 1
    assert value(text, checks, target="dead", outcome="error") == 1
    seconds = "redis_mem_check_duration_seconds"
    for name in targets:
        assert value(text, f"{seconds}_count", target=name) == 2
        assert value(text, f"{seconds}_sum", target=name) == 0.5
        assert value(text, f"{seconds}_bucket", target=name, le="0.25") == 2
        assert value(text, f"{seconds}_bucket", target=name, le="0.1") == 0
    assert_bounded(text, targets=set(targets))


# Checks and alerts through a real `redis-mem serve` ------------------------------------


@pytest.fixture
def health_serve(fake_slack: FakeSlack, tmp_path: Path) -> Iterator[ServeProcess]:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    env = bot_env(
        fake_slack,
        tmp_path,
        secret="metrics-secret",
        REDIS_MEM_TARGETS_FILE=str(tmp_path / "targets.yml"),
        REDIS_MEM_RULES_FILE=str(rules),
        REDIS_MEM_CHECK_INTERVAL="1",
        REDIS_MEM_CHECK_TIMEOUT="1",
        REDIS_MEM_REPEAT_INTERVAL="1h",
        REDIS_MEM_CHANNEL=ALERTS,
    )
    serve = ServeProcess(fake=fake_slack, env=env, log=tmp_path / "serve.log")
    yield serve
    if serve.proc is not None and serve.alive():
        serve.proc.terminate()
        serve.proc.wait(timeout=20)


def test_checks_and_alerts_of_a_real_serve_are_counted_by_target_rule_and_state(
    health_serve: ServeProcess, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    prod = session_store(redis_factory, ttl=None)
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    targets = [
        {"name": "prod", "redis_url": prod.url},
        {"name": "dead", "redis_url": dead_url, "channel": GONE},
    ]
    Path(health_serve.env["REDIS_MEM_TARGETS_FILE"]).write_text(
        yaml.safe_dump({"targets": targets})
    )
    fake = health_serve.fake
    fake.fail("chat.postMessage", "channel_not_found", when=lambda p: p.get("channel") == GONE)
    set_ratio(prod, 0.85)
    serve = health_serve.start()
    checks, errors = "redis_mem_checks_total", "redis_mem_slack_api_errors_total"
    alerts = "redis_mem_alerts_total"

    def refused() -> int:
        return sum(1 for c in fake.calls_to("chat.postMessage") if c.error is not None)

    def fired_and_refused() -> bool:
        text = scrape(serve.url)
        return (
            value(text, alerts, rule="memory-warning", state="fired") == 1
            and value(text, checks, target="prod", outcome="ok") >= 2
            and value(text, checks, target="dead", outcome="unreachable") >= 2
            and refused() >= 1
            and value(text, errors, method="chat.postMessage", error="channel_not_found")
            == refused()
        )

    wait_until(fired_and_refused, timeout=30)
    text = scrape(serve.url)
    assert value(text, checks, target="dead", outcome="ok") == 0
    # Every check of a target is timed, and its bucket counts add up to its checks.
    for name in ("prod", "dead"):
        count = value(text, "redis_mem_check_duration_seconds_count", target=name)
        # The scrape races the next round by one check at most.
        assert abs(count - total(text, checks, target=name)) <= 1
        assert value(text, "redis_mem_check_duration_seconds_bucket", target=name, le="+Inf")
    # The store-down alert Slack refused was given up, not delivered: it is no alert event.
    assert value(text, alerts, rule="store-down", state="fired") == 0

    set_ratio(prod, 0.4)
    wait_until(
        lambda: value(scrape(serve.url), alerts, rule="memory-warning", state="resolved") == 1,
        timeout=30,
    )
    text = scrape(serve.url)
    assert value(text, alerts, rule="memory-warning", state="fired") == 1  # posted once
    assert_bounded(text, targets={"prod", "dead"})
    assert dead_url not in text and "127.0.0.1" not in text


# Approvals through a real `redis-mem serve` --------------------------------------------


def _reject(bot: FaultyServe, request_id: str, ts: str, *, user: tuple[str, str]) -> None:
    payload = button_click_payload(
        action_id="redis_mem.reject",
        value=request_id,
        response_url=bot.fake.response_url("click"),
        user=user,
        channel=CHANNEL,
        ts=ts,
        trigger_id="99.42.reject",
    )
    response = bot.post_signed(urlencode({"payload": json.dumps(payload)}))
    assert response.status_code == 200, response.text


def test_an_approval_flow_counts_its_states_and_no_user_or_key(
    tmp_path: Path, fake_slack: FakeSlack, redis_factory: RedisFactory
) -> None:
    server = redis_factory()
    seed_sessions(server.url, 200)
    env = serve_env(
        fake_slack,
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        targets={"prod": server.url},
    )
    bot = FaultyServe(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    approvals = "redis_mem_approvals_total"
    try:
        before = scrape(bot.url)
        assert all(value(before, approvals, state=s) == 0 for s in APPROVAL_STATES)
        assert f'{approvals}{{state="expired"}} 0.0' in before  # every state, from the start

        turned_down, ts = bot.request_fix("prod")
        _reject(bot, turned_down, ts, user=APPROVERS[1])
        wait_until(lambda: bot.request(turned_down).state is RequestState.REJECTED)
        done, ts = bot.request_fix("prod")  # the keys still have no TTL: a fix is offered again
        bot.approve(done, ts, user=APPROVERS[0])
        wait_until(lambda: bot.request(done).state is RequestState.SUCCEEDED, timeout=30)

        wait_until(lambda: value(scrape(bot.url), approvals, state="executed") == 1)
        text = scrape(bot.url)
        counts = {s: value(text, approvals, state=s) for s in APPROVAL_STATES}
        assert counts == {
            **dict.fromkeys(APPROVAL_STATES, 0.0),
            "requested": 2,
            "approved": 1,
            "executed": 1,
            "rejected": 1,
        }
        assert_bounded(text, targets={"prod"})
        for secret in (REQUESTER[0], REQUESTER[1], APPROVERS[0][0], "approver", "session:"):
            assert secret not in text
        assert bot.stop() == 0
    finally:
        bot.close()
