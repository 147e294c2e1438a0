"""``redis-mem serve`` as a subprocess: the real console script, its log, signed HTTP in."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx

from tests.clirun import REDIS_MEM, clean_env
from tests.fakeslack import FakeSlack
from tests.redisserver import free_port
from tests.slackcheck import wait_until
from tests.slacksign import signed_headers


@dataclass
class ServeProcess:
    """Start with ``start()`` (waits for ``/healthz``); ``env`` holds PORT and the secret."""

    fake: FakeSlack
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    def start(self) -> Self:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [REDIS_MEM, "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_until(self._healthy, timeout=30)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text()

    def post_signed(self, body: str) -> httpx.Response:
        """POST ``body`` to ``/slack/events`` signed with the bot's SLACK_SIGNING_SECRET."""
        headers = signed_headers(secret=self.env["SLACK_SIGNING_SECRET"], body=body)
        return self.http.post(f"{self.url}/slack/events", content=body, headers=headers)

    def _healthy(self) -> bool:
        assert self.alive(), self.output()
        try:
            return self.http.get(f"{self.url}/healthz").status_code == 200
        except httpx.TransportError:
            return False


def bot_env(fake: FakeSlack, tmp_path: Path, *, secret: str, **settings: str) -> dict[str, str]:
    """The clean environment of a test's ``serve``: the fake Slack, its signing ``secret``,
    SQLite in ``tmp_path``, a free PORT and small diagnoses; ``settings`` add or override."""
    defaults = {
        "SLACK_BOT_TOKEN": "xoxb-serve-test",
        "SLACK_SIGNING_SECRET": secret,
        "SLACK_API_URL": fake.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
        "PORT": str(free_port()),
        "REDIS_MEM_SAMPLE_SIZE": "100",
    }
    return clean_env(**{**defaults, **settings})
