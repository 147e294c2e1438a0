"""The real Alertmanager (Debian ``prometheus-alertmanager``) posting to a real ``redis-mem serve``.

``amtool alert add RedisHighMemoryUsage redis_mem_target=prod severity=warning`` reaches the
bot through Alertmanager's webhook receiver (bearer token in ``http_config``): the bot posts
the alert with a fresh diagnosis and its fix buttons; Alertmanager's repeat (every 4 s
here) updates the same message; the alert expired (``--end`` in the past) resolves it.
An Alertmanager holding the wrong token is refused (401) and nothing is posted.
Skipped, saying why, where the binaries are missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import RedisFactory
from tests.health_support import session_store
from tests.redisserver import free_port
from tests.slackcheck import wait_until
from tests.test_serve_alertmanager import (
    CHANNEL,
    TOKEN,
    HeldSlack,
    Serve,
    fake_slack,  # noqa: F401  (the fixture)
    serve_env,
)

ALERTMANAGER = shutil.which("prometheus-alertmanager")
AMTOOL = shutil.which("amtool")
pytestmark = pytest.mark.skipif(
    ALERTMANAGER is None or AMTOOL is None,
    reason="the real Alertmanager is not installed: apt-get install prometheus-alertmanager",
)
SUMMARY = "Redis memory above 80% of maxmemory"


@dataclass
class Alertmanager:
    """One ``prometheus-alertmanager`` process (no gossip) and amtool pointed at it."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def amtool(self, *args: str) -> str:
        assert AMTOOL is not None
        done = subprocess.run(
            [AMTOOL, f"--alertmanager.url={self.url}", *args],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    def fire(self, *, end: datetime | None = None) -> None:
        """Raise (or, with ``end`` in the past, expire) the runbook's alert for ``prod``."""
        args = ["alert", "add", "RedisHighMemoryUsage", "redis_mem_target=prod", "severity=warning"]
        args.append(f"--annotation=summary={SUMMARY}")
        if end is not None:
            args.append(f"--end={end.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        self.amtool(*args)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


def start_alertmanager(tmp: Path, *, webhook: str, token: str) -> Alertmanager:
    """Configured as docs ORACLES.md says: group_wait 1s, group_interval 2s, repeat 4s."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "bot",
            "group_by": ["alertname", "redis_mem_target"],
            "group_wait": "1s",
            "group_interval": "2s",
            "repeat_interval": "4s",
        },
        "receivers": [
            {
                "name": "bot",
                "webhook_configs": [
                    {
                        "url": webhook,
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials": token}},
                    }
                ],
            }
        ],
    }
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    assert AMTOOL is not None and ALERTMANAGER is not None
    check = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, check=False)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    port = free_port()
    log = tmp / "alertmanager.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={path}",
                f"--storage.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    am = Alertmanager(url=f"http://127.0.0.1:{port}", proc=proc, log=log)

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx.get(f"{am.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, timeout=30)
    return am


@pytest.fixture
def serve(fake_slack: HeldSlack, tmp_path: Path, redis_factory: RedisFactory) -> Iterator[Serve]:  # noqa: F811
    prod = session_store(redis_factory, ratio=0.85, ttl=None)  # a ttl-leak: fixes to offer
    env = serve_env(fake_slack, tmp_path, prod.url, REDIS_MEM_WEBHOOK_TOKEN=TOKEN)
    running = Serve(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    yield running
    running.stop()


def unauthorized(serve: Serve) -> float:
    metrics = serve.http.get(f"{serve.url}/metrics").text
    for line in metrics.splitlines():
        if line.startswith('redis_mem_alertmanager_requests_total{outcome="unauthorized"}'):
            return float(line.split()[-1])
    raise AssertionError("no unauthorized counter in /metrics")


def header(call_blocks: list[dict[str, object]]) -> str:
    first = call_blocks[0]["text"]
    assert isinstance(first, dict)
    return str(first["text"])


def test_alertmanagers_alert_becomes_a_diagnosis_updated_then_resolved(
    serve: Serve,
    fake_slack: HeldSlack,  # noqa: F811
    tmp_path: Path,
) -> None:
    webhook = f"{serve.url}/alertmanager"
    # An Alertmanager with the wrong token: refused, nothing posted.
    wrong = start_alertmanager(tmp_path / "wrong", webhook=webhook, token="not-the-token")
    try:
        wrong.fire()
        wait_until(lambda: unauthorized(serve) >= 1, timeout=20)
    finally:
        wrong.stop()
    assert fake_slack.calls_to("chat.postMessage") == []

    am = start_alertmanager(tmp_path / "right", webhook=webhook, token=TOKEN)
    try:
        am.fire()
        [post] = fake_slack.wait_for("chat.postMessage", timeout=30)
        assert post.params["channel"] == CHANNEL
        assert header(post.params["blocks"]) == "🟡 FIRING (warning) — prod: RedisHighMemoryUsage"
        text = json.dumps(post.params["blocks"], ensure_ascii=False)
        assert SUMMARY in text and "ttl-leak" in text
        assert "redis_mem.request.expire-keys-without-ttl" in text

        # Alertmanager's repeat (4 s) re-sends the group: the same message is updated.
        [update] = fake_slack.wait_for("chat.update", timeout=30)
        assert update.params["channel"] == CHANNEL and "redis_mem.request." in json.dumps(
            update.params["blocks"]
        )
        ts = update.params["ts"]

        # Expired: Alertmanager sends the group resolved, and the message says so.
        am.fire(end=datetime.now(UTC) - timedelta(seconds=5))

        def resolved() -> bool:
            return any(
                header(c.params["blocks"]).startswith("✅ RESOLVED")
                for c in fake_slack.calls_to("chat.update")
            )

        wait_until(resolved, timeout=30)
        assert {c.params["ts"] for c in fake_slack.calls_to("chat.update")} == {ts}
        assert len(fake_slack.calls_to("chat.postMessage")) == 1
    finally:
        am.stop()
    log = serve.output()
    assert TOKEN not in log and "not-the-token" not in log
