"""PostgreSQL refusing the bot's audit INSERTs in the middle of a fix, under ``redis-mem serve``.

The bot runs as a role of its own; once the fix is running (``remediation.approved`` is
written), ``REVOKE INSERT`` on the audit table. The change is applied; the request says it
was applied and that its audit rows are missing; the Slack message says "Applied, but not
recorded in the audit trail: <reason>"; /readyz answers 503. After ``GRANT INSERT`` the
missing rows are written by the next sweep, marked as recorded late, the chain verifies,
and the message says Done.
"""

from __future__ import annotations

from pathlib import Path

from bot.approvals.model import RequestState
from bot.approvals.unrecorded import BACKLOG_KEY, RECORDED_LATE_KEY
from bot.audit.engine import make_engine
from bot.audit.store import SqlAuditStore
from bot.audit.verify import verify_chain
from tests.conftest import RedisFactory
from tests.dbfixtures import pg_url  # noqa: F401 (fixture)
from tests.fakeslack import FakeSlack
from tests.faults_support import (
    APPROVERS,
    BotRole,
    FaultyServe,
    blocks_text,
    bot_role,  # noqa: F401 (fixture)
    header,
    keys_with_ttl,
    seed_sessions,
    serve_env,
)
from tests.slackcheck import wait_until

KEYS = 40_000  # 2 s at the bot's rate limit: the REVOKE lands while it runs
REFUSED = "permission denied for table audit_events"


def test_refused_inserts_mid_fix_say_applied_not_recorded_then_are_written_late(
    tmp_path: Path,
    fake_slack: FakeSlack,
    redis_factory: RedisFactory,
    bot_role: BotRole,  # noqa: F811
) -> None:
    server = redis_factory()
    seed_sessions(server.url, KEYS)
    env = serve_env(fake_slack, tmp_path, database_url=bot_role.url, targets={"prod": server.url})
    bot = FaultyServe(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    admin = make_engine(bot_role.admin_url)  # the test reads as the superuser
    audit = SqlAuditStore(admin)
    try:
        request_id, ts = bot.request_fix("prod")
        bot.approve(request_id, ts, user=APPROVERS[0])
        wait_until(lambda: bot.actions(request_id)[-1:] == ["remediation.approved"])
        bot_role.revoke_insert()
        wait_until(lambda: bot.request(request_id).state.final, timeout=30)

        done = bot.request(request_id)
        assert keys_with_ttl(server.url, KEYS) == KEYS  # applied
        assert done.state is RequestState.SUCCEEDED
        assert done.error is not None
        assert done.error.startswith("applied, but not recorded in the audit trail: audit")
        assert REFUSED in done.error
        assert done.result is not None and done.result["keys_changed"] == KEYS
        owed = [e["action"] for e in done.result[BACKLOG_KEY]["entries"]]
        assert owed == ["remediation.executed", "remediation.verified"]
        assert bot.actions(request_id) == ["remediation.requested", "remediation.approved"]
        wait_until(lambda: header(bot.updates(ts)[-1]).startswith("⚠️ Applied, not recorded"))
        text = blocks_text(bot.updates(ts)[-1])
        assert "Applied, but not recorded in the audit trail: audit database" in text
        assert REFUSED in text
        wait_until(lambda: bot.readyz() == 503)
        assert bot.told(APPROVERS[0][0]) == []  # the message says it all

        bot_role.grant_insert()
        wait_until(lambda: "remediation.verified" in bot.actions(request_id), timeout=20)
        rows = [r for r in reversed(audit.list_entries(limit=100)) if r.request_id == request_id]
        assert [r.action for r in rows] == [
            "remediation.requested",
            "remediation.approved",
            "remediation.executed",
            "remediation.verified",
        ]
        for late in rows[2:]:
            assert late.parameters["recorded_late"] is True
            assert late.parameters["occurred_at"] and late.actor == APPROVERS[0][0]
        assert rows[2].parameters["keys_changed"] == KEYS
        recorded = bot.request(request_id)
        assert recorded.error is None and recorded.result is not None
        assert BACKLOG_KEY not in recorded.result and RECORDED_LATE_KEY in recorded.result
        wait_until(lambda: header(bot.updates(ts)[-1]).startswith("✅ Done"))
        assert "recorded late" in blocks_text(bot.updates(ts)[-1])
        wait_until(lambda: bot.readyz() == 200)
        assert bot.stop() == 0
    finally:
        bot.close()
    assert verify_chain(admin).ok
    admin.dispose()
    output = bot.output()
    assert "Traceback" not in output, output
    assert output.count("was applied, but 2 audit row(s) were not recorded") == 1
    assert output.count("its missing audit rows are recorded now (late)") == 1
