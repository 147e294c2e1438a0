"""``redis-mem serve`` end to end: real stores cross 80% and 90%, Slack sees one message per alert.

The real console script runs in a subprocess (HTTP mode) with a 1 s check interval and
short ``for``s from a rules file; real redis-servers are moved across the thresholds
(``CONFIG SET maxmemory``), stopped with SIGSTOP and killed; the fake Slack Web API
over HTTP records what the bot posted, and signed button clicks acknowledge and snooze.
Waiting is bounded polling, never a fixed sleep through a ``for``.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
import yaml
from sqlalchemy import Engine

from bot.audit.engine import make_engine
from bot.audit.store import SqlAuditStore
from bot.audit.verify import verify_chain
from bot.health.model import Alert, RuleStatus
from bot.health.store import SqlHealthStore
from tests.conftest import RedisFactory
from tests.fakeslack import Call, FakeSlack
from tests.health_support import session_store, set_ratio
from tests.serveproc import ServeProcess, bot_env
from tests.slackcheck import wait_until
from tests.slacksign import button_click_payload

SECRET = "serve-health-secret"
CHANNEL = "C0ALERTS"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # before every sample
RULES = {
    "rules": {
        "memory-warning": {"for": "1s"},
        "memory-critical": {"for": "1s"},
        "store-down": {"for": "1s"},
        "eviction-rate": {"enabled": False},
        "connections-exhausted": {"enabled": False},
        "memory-forecast": {"enabled": False},
    }
}


@dataclass
class Serve(ServeProcess):
    """A running ``redis-mem serve`` and what it talks to."""

    _engine: Engine | None = None

    def stop(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        if self._engine is not None:
            self._engine.dispose()
        assert self.proc is None or self.proc.returncode == 0, self.log.read_text()
        return self.log.read_text()

    @property
    def engine(self) -> Engine:
        """One engine on the bot's database for the whole test (disposed by ``stop``)."""
        if self._engine is None:
            self._engine = make_engine(self.env["DATABASE_URL"])
        return self._engine

    @property
    def store(self) -> SqlHealthStore:
        return SqlHealthStore(self.engine)

    def samples(self, target: str) -> int:
        return len(self.store.recent_samples(since=EPOCH).get(target, []))

    def rounds_pass(self, target: str, count: int = 2) -> None:
        """Wait until ``count`` more checks of ``target`` were stored."""
        seen = self.samples(target)
        wait_until(lambda: self.samples(target) >= seen + count, timeout=20)

    def open_alert(self, target: str) -> Alert:
        [alert] = self.store.open_alerts(target)
        return alert

    def click(self, action_id: str, value: str, *, ts: str) -> int:
        payload = button_click_payload(
            action_id=action_id,
            value=value,
            response_url=self.fake.response_url("click"),
            channel=CHANNEL,
            ts=ts,
        )
        return self.post_signed(urlencode({"payload": json.dumps(payload)})).status_code


def _status(serve: Serve, target: str, rule: str) -> RuleStatus | None:
    state = serve.store.rule_states().get(target, {}).get(rule)
    return state.status if state else None


@pytest.fixture
def serve_env(fake_slack: FakeSlack, tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    return bot_env(
        fake_slack,
        tmp_path,
        secret=SECRET,
        REDIS_MEM_TARGETS_FILE=str(tmp_path / "targets.yml"),
        REDIS_MEM_RULES_FILE=str(rules),
        REDIS_MEM_CHECK_INTERVAL="1",
        REDIS_MEM_CHECK_TIMEOUT="1",
        REDIS_MEM_REPEAT_INTERVAL="2s",
        REDIS_MEM_CHANNEL=CHANNEL,
    )


def use_rules(env: dict[str, str], **rules: dict[str, str]) -> None:
    """Override some rules of RULES in the bot's rules file (before it starts)."""
    document = {"rules": {**RULES["rules"], **rules}}
    Path(env["REDIS_MEM_RULES_FILE"]).write_text(yaml.safe_dump(document))


def write_targets(env: dict[str, str], targets: dict[str, str]) -> None:
    entries = [{"name": name, "redis_url": url} for name, url in targets.items()]
    Path(env["REDIS_MEM_TARGETS_FILE"]).write_text(yaml.safe_dump({"targets": entries}))


def posts(fake: FakeSlack) -> list[Call]:
    """Channel messages (not thread replies)."""
    return [c for c in fake.calls_to("chat.postMessage") if not c.params.get("thread_ts")]


def replies(fake: FakeSlack, ts: str) -> list[Call]:
    return [c for c in fake.calls_to("chat.postMessage") if c.params.get("thread_ts") == ts]


def updates(fake: FakeSlack, ts: str) -> list[Call]:
    return [c for c in fake.calls_to("chat.update") if c.params.get("ts") == ts]


def header(call: Call) -> str:
    return str(call.params["blocks"][0]["text"]["text"])


@pytest.fixture
def serve(fake_slack: FakeSlack, serve_env: dict[str, str], tmp_path: Path) -> Iterator[Serve]:
    running = Serve(fake=fake_slack, env=serve_env, log=tmp_path / "serve.log")
    yield running
    running.stop()


def test_a_store_crossing_80_then_90_percent_is_one_message_through_its_life(
    serve: Serve, redis_factory: RedisFactory
) -> None:
    prod = session_store(redis_factory, ttl=None)
    write_targets(serve.env, {"prod": prod.url})
    # Long enough a for that the pending state outlasts serve's start-up.
    use_rules(serve.env, **{"memory-warning": {"for": "5s"}})
    set_ratio(prod, 0.85)
    serve.start()

    # Pending first: the rule holds, nothing is posted yet.
    wait_until(lambda: _status(serve, "prod", "memory-warning") is RuleStatus.PENDING)
    assert posts(serve.fake) == []
    [post] = serve.fake.wait_for("chat.postMessage")
    assert post.params["channel"] == CHANNEL
    assert "WARNING" in header(post) and "prod" in header(post)
    wait_until(lambda: serve.open_alert("prod").message_ts is not None)
    alert = serve.open_alert("prod")
    assert alert.message_ts is not None
    ts = alert.message_ts
    blocks = json.dumps(post.params["blocks"])
    assert "ttl-leak" in blocks  # the diagnosis, taken when it fired
    assert "redis_mem.request.expire-keys-without-ttl" in blocks
    assert "redis_mem.alert.ack" in blocks and "redis_mem.alert.snooze.4h" in blocks

    # 90%: the same message escalates, and a broadcast thread reply says so.
    set_ratio(prod, 0.95)
    wait_until(lambda: any("CRITICAL" in header(c) for c in updates(serve.fake, ts)))
    wait_until(lambda: any(c.params.get("reply_broadcast") for c in replies(serve.fake, ts)))
    # Reminders go in the thread every repeat interval (2 s), never in the channel.
    before = len(replies(serve.fake, ts))
    wait_until(lambda: len(replies(serve.fake, ts)) >= before + 1, timeout=20)
    assert len(posts(serve.fake)) == 1

    # Acknowledge: the message says who, and the reminders stop.
    assert serve.click("redis_mem.alert.ack", alert.id, ts=ts) == 200
    wait_until(lambda: serve.open_alert("prod").acknowledged_by == "U0ALICE")
    wait_until(lambda: "U0ALICE" in json.dumps(updates(serve.fake, ts)[-1].params["blocks"]))
    wait_until(lambda: any(c.params["text"].startswith("👀") for c in replies(serve.fake, ts)))
    quiet = len(replies(serve.fake, ts))
    serve.rounds_pass("prod", count=4)  # twice the repeat interval
    assert len(replies(serve.fake, ts)) == quiet  # no reminder after the acknowledgement

    # Memory falls: resolved, in place, with how long it lasted.
    set_ratio(prod, 0.4)
    wait_until(lambda: any("RESOLVED" in header(c) for c in updates(serve.fake, ts)))
    assert len(posts(serve.fake)) == 1
    output = serve.stop()
    assert "Traceback" not in output
    engine = serve.engine
    actions = [e.action for e in SqlAuditStore(engine).list_entries(limit=500)]
    for action in ("alert.fired", "alert.escalated", "alert.acknowledged", "alert.resolved"):
        assert action in actions, actions
    assert verify_chain(engine).ok


def test_a_restart_neither_reposts_a_firing_alert_nor_forgets_a_pending_one(
    serve: Serve, redis_factory: RedisFactory
) -> None:
    firing = session_store(redis_factory, ttl=None)
    pending = session_store(redis_factory, ttl=None)
    write_targets(serve.env, {"firing": firing.url, "pending": pending.url})
    use_rules(serve.env, **{"memory-critical": {"for": "8s"}})
    set_ratio(firing, 0.85)
    serve.start()
    wait_until(lambda: len(posts(serve.fake)) == 1)
    set_ratio(pending, 0.95)  # critical needs 8 s; warning (1 s) fires meanwhile
    wait_until(lambda: _status(serve, "pending", "memory-critical") is RuleStatus.PENDING)
    active_at = serve.store.rule_states()["pending"]["memory-critical"].active_at
    serve.stop()

    serve.start()
    serve.rounds_pass("firing", count=3)
    wait_until(lambda: serve.open_alert("pending").severity == "critical", timeout=30)
    states = serve.store.rule_states()["pending"]
    assert states["memory-critical"].active_at == active_at  # the for timer kept its start
    fired_at = states["memory-critical"].fired_at
    assert fired_at is not None and (fired_at - active_at).total_seconds() >= 8
    # One channel message per alert across the restart: firing's warning, pending's memory.
    channel_posts = [header(c) for c in posts(serve.fake)]
    assert len(channel_posts) == 2, channel_posts
    assert sum("firing" in h for h in channel_posts) == 1


def test_a_hung_store_and_a_dead_one_page_while_the_others_keep_being_checked(
    serve: Serve, redis_factory: RedisFactory
) -> None:
    prod = session_store(redis_factory, ttl=None)
    hung = redis_factory()
    dead = redis_factory()
    write_targets(serve.env, {"prod": prod.url, "hung": hung.url, "dead": dead.url})
    serve.start()
    serve.rounds_pass("hung", count=1)
    with hung.paused():
        dead.stop()
        set_ratio(prod, 0.85)
        wait_until(lambda: len(posts(serve.fake)) >= 3, timeout=30)
        assert len(posts(serve.fake)) == 3
        # The healthy store kept being checked every second while the hung one timed out.
        serve.rounds_pass("prod", count=3)
        hung_alert = serve.open_alert("hung")
        assert hung_alert.rule == "store-down" and "no answer within 1 s" in hung_alert.detail
        assert "connection refused" in serve.open_alert("dead").detail
    texts = " ".join(header(c) for c in posts(serve.fake))
    assert "hung" in texts and "dead" in texts and "prod" in texts, texts


def test_slack_rate_limits_and_outages_delay_a_post_but_never_lose_or_double_it(
    serve: Serve, redis_factory: RedisFactory
) -> None:
    prod = session_store(redis_factory, ttl=None)
    write_targets(serve.env, {"prod": prod.url})
    serve.fake.fail_http("chat.postMessage", status=429, times=1, retry_after=1)
    serve.fake.fail_http("chat.postMessage", status=503, times=4)  # beyond the call's retries
    set_ratio(prod, 0.85)
    serve.start()
    wait_until(lambda: len(serve.fake.accepted("chat.postMessage")) >= 1, timeout=40)
    serve.rounds_pass("prod", count=3)
    accepted = [c for c in serve.fake.accepted("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(accepted) == 1
    statuses = [c.status for c in serve.fake.calls_to("chat.postMessage")]
    assert 429 in statuses and 503 in statuses
    assert serve.open_alert("prod").message_ts is not None
