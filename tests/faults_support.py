"""``redis-mem serve`` as a subprocess for the fault tests: signed HTTP in, the fake Slack out.

The real console script, a real audit database (SQLite file or a PostgreSQL schema), real
redis-servers holding session keys without TTL, and ``expire-keys-without-ttl``: a Redis-only
fix that runs at the bot's rate limit (20,000 keys/s), so 60,000 keys take 3 s at least.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
import redis
import yaml
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from bot.approvals.model import ApprovalRequest
from bot.approvals.store import ApprovalStore
from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from tests.fakeslack import Call, FakeSlack
from tests.serveproc import ServeProcess, bot_env
from tests.slackcheck import button_values, wait_until
from tests.slacksign import button_click_payload

SECRET = "faults-signing-secret"
CHANNEL = "C0OPS"
TEAM = "T0FAKE"
REQUESTER = ("U0REQUEST", "rita")
APPROVERS = tuple((f"U0APPR{i}", f"approver{i}") for i in range(10))
APPROVE = "redis_mem.approve"
FIX = "expire-keys-without-ttl"

_SEED = """
for i = 1, tonumber(ARGV[1]) do
  redis.call('SET', 'session:' .. i, 'x')
end
return tonumber(ARGV[1])
"""


def seed_sessions(url: str, count: int) -> None:
    """``count`` session keys without TTL, written inside Redis in one script."""
    client = redis.Redis.from_url(url)
    client.eval(_SEED, 0, count)
    client.close()


_WITH_TTL = """
local n = 0
for i = 1, tonumber(ARGV[1]) do
  if redis.call('TTL', 'session:' .. i) > 0 then n = n + 1 end
end
return n
"""


def keys_with_ttl(url: str, count: int) -> int:
    """How many of the first ``count`` seeded keys have a TTL now (counted inside Redis)."""
    client = redis.Redis.from_url(url)
    found = int(client.eval(_WITH_TTL, 0, count))
    client.close()
    return found


@dataclass(frozen=True)
class BotRole:
    """A PostgreSQL login role with the grants the bot needs on one migrated schema."""

    admin_url: str  # the superuser's URL on the schema
    url: str  # the same schema as the bot's role
    role: str
    schema: str

    def sql(self, statement: str) -> None:
        """Run one statement as the superuser (``{role}``/``{schema}`` filled in)."""
        libpq = make_url(self.admin_url).set(drivername="postgresql")
        with psycopg.connect(libpq.render_as_string(hide_password=False), autocommit=True) as c:
            c.execute(statement.format(role=self.role, schema=self.schema))

    def revoke_insert(self) -> None:
        """The database refuses the bot's audit INSERTs (everything else still works)."""
        self.sql('REVOKE INSERT ON "{schema}".audit_events FROM "{role}"')

    def grant_insert(self) -> None:
        self.sql('GRANT INSERT ON "{schema}".audit_events TO "{role}"')


@pytest.fixture
def bot_role(pg_url: str) -> Iterator[BotRole]:
    """``pg_url`` (tests.dbfixtures) migrated, and a role of its own for the bot."""
    engine = make_engine(pg_url)
    upgrade(engine)
    engine.dispose()
    options = str(make_url(pg_url).query["options"])
    schema = options.removeprefix("-csearch_path=")
    name = f"redis_mem_bot_{uuid.uuid4().hex[:10]}"
    url = make_url(pg_url).set(username=name, password=None).render_as_string(hide_password=False)
    role = BotRole(admin_url=pg_url, url=url, role=name, schema=schema)
    role.sql('CREATE ROLE "{role}" LOGIN')
    role.sql('GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    role.sql('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    role.sql('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA "{schema}" TO "{role}"')
    yield role
    role.sql('DROP OWNED BY "{role}"')
    role.sql('DROP ROLE "{role}"')


def serve_env(
    fake: FakeSlack, tmp_path: Path, *, database_url: str, targets: dict[str, str]
) -> dict[str, str]:
    """The bot's environment: HTTP mode, every approver in APPROVERS, no health noise."""
    targets_file = tmp_path / "targets.yml"
    entries = [{"name": name, "redis_url": url} for name, url in targets.items()]
    targets_file.write_text(yaml.safe_dump({"targets": entries}))
    return bot_env(
        fake,
        tmp_path,
        secret=SECRET,
        DATABASE_URL=database_url,
        REDIS_MEM_TARGETS_FILE=str(targets_file),
        REDIS_MEM_APPROVERS=",".join(user for user, _ in APPROVERS),
        REDIS_MEM_CHECK_INTERVAL="3600",
    )


@dataclass
class FaultyServe(ServeProcess):
    """A running ``redis-mem serve`` and the fake Slack it talks to."""

    _engine: Engine | None = None
    _triggers: int = 0
    _signalled: bool = False

    def sigterm(self) -> None:
        assert self.proc is not None
        self._signalled = True
        self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (unless already sent), wait for the exit; the exit code."""
        assert self.proc is not None
        if not self._signalled and self.alive():
            self.sigterm()
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        """Kill the process if a test left it running; drop the test's engine."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.drop_engine()

    def drop_engine(self) -> None:
        """Close the test's own connections to the bot's database (opened again on use)."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def readyz(self) -> int:
        return self.http.get(f"{self.url}/readyz").status_code

    # What the bot stored (read with the test's own engine) -----------------------------------

    def engine(self, url: str | None = None) -> Engine:
        if self._engine is None:
            self._engine = make_engine(url or self.env["DATABASE_URL"])
        return self._engine

    def request(self, request_id: str) -> ApprovalRequest:
        found = ApprovalStore(self.engine()).get(request_id)
        assert found is not None
        return found

    def actions(self, request_id: str) -> list[str]:
        rows = SqlAuditStore(self.engine()).list_entries(limit=10_000)
        return [row.action for row in reversed(rows) if row.request_id == request_id]

    # Slack in ---------------------------------------------------------------------------------

    def request_fix(self, target: str, action_id: str = FIX) -> tuple[str, str]:
        """``/redis-mem fix <action> <target>`` by REQUESTER: (request id, message ts)."""
        before = len(self._approval_posts())
        self._triggers += 1
        fields = {
            "team_id": TEAM,
            "channel_id": CHANNEL,
            "user_id": REQUESTER[0],
            "user_name": REQUESTER[1],
            "command": "/redis-mem",
            "text": f"fix {action_id} {target}",
            "api_app_id": "A0APP",
            "response_url": self.fake.response_url(),
            "trigger_id": f"{self._triggers}.42.cmd",
        }
        assert self.post_signed(urlencode(fields)).status_code == 200
        wait_until(lambda: len(self._approval_posts()) > before, timeout=20)
        post = self._approval_posts()[before]
        request_id = button_values(post.params["blocks"])[APPROVE]
        wait_until(lambda: self.request(request_id).message_ts is not None)
        return request_id, str(self.request(request_id).message_ts)

    def _approval_posts(self) -> list[Call]:
        return [
            c
            for c in self.fake.accepted("chat.postMessage")
            if APPROVE in button_values(c.params.get("blocks") or [])
        ]

    def approve(self, request_id: str, ts: str, *, user: tuple[str, str]) -> None:
        """``user`` clicks Approve on the request's message; Slack gets its 200 (the ack)."""
        self._triggers += 1
        payload = button_click_payload(
            action_id=APPROVE,
            value=request_id,
            response_url=self.fake.response_url("click"),
            user=user,
            channel=CHANNEL,
            ts=ts,
            trigger_id=f"{self._triggers}.42.click",
        )
        response = self.post_signed(urlencode({"payload": json.dumps(payload)}))
        assert response.status_code == 200, response.text

    def told(self, user: str) -> list[str]:
        """The ephemeral lines ``user`` got."""
        return [
            str(c.params.get("text"))
            for c in self.fake.calls_to("chat.postEphemeral")
            if c.params.get("user") == user
        ]

    def updates(self, ts: str) -> list[Call]:
        return [c for c in self.fake.accepted("chat.update") if c.params.get("ts") == ts]


def header(call: Call) -> str:
    """The header line of an approval message."""
    return str(call.params["blocks"][0]["text"]["text"])


def blocks_text(call: Call) -> str:
    return json.dumps(call.params["blocks"], ensure_ascii=False)
