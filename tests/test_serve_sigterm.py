"""``redis-mem serve`` stopped with SIGTERM while approvals wait behind running fixes.

Four real fixes run (60,000 keys each at the bot's 20,000 keys/s: 3 s at least), six more
approvals are clicked behind them, then SIGTERM: every queued approver is told in one line
that nothing ran and the request is still pending (audited), the running fixes end with
their final state and message, and the process exits 0 (a second SIGTERM included).
"""

from __future__ import annotations

from pathlib import Path

from bot.approvals.model import RequestState
from tests.conftest import RedisFactory
from tests.fakeslack import FakeSlack
from tests.faults_support import (
    APPROVERS,
    FIX,
    FaultyServe,
    header,
    keys_with_ttl,
    seed_sessions,
    serve_env,
)
from tests.slackcheck import wait_until

KEYS = 60_000
RUNNING = 4  # FIX_WORKERS
QUEUED = 6


def test_sigterm_tells_every_queued_approver_and_lets_running_fixes_finish(
    tmp_path: Path, fake_slack: FakeSlack, redis_factory: RedisFactory
) -> None:
    servers = [redis_factory() for _ in range(RUNNING)]
    for server in servers:
        seed_sessions(server.url, KEYS)
    targets = {f"t{i}": server.url for i, server in enumerate(servers)}
    env = serve_env(
        fake_slack, tmp_path, database_url=f"sqlite:///{tmp_path / 'audit.db'}", targets=targets
    )
    bot = FaultyServe(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    try:
        requests = [bot.request_fix(f"t{i % RUNNING}") for i in range(RUNNING + QUEUED)]
        running, queued = requests[:RUNNING], requests[RUNNING:]
        for (request_id, ts), user in zip(running, APPROVERS[:RUNNING], strict=True):
            bot.approve(request_id, ts, user=user)
        wait_until(lambda: all(bot.request(r).state is RequestState.EXECUTING for r, _ in running))
        for (request_id, ts), user in zip(queued, APPROVERS[RUNNING:], strict=True):
            bot.approve(request_id, ts, user=user)
        bot.sigterm()

        # Each queued approver hears, in one line, that nothing ran and what to do.
        for i, (approver, _) in enumerate(APPROVERS[RUNNING:]):
            wait_until(lambda approver=approver: bool(bot.told(approver)), timeout=20)  # type: ignore[misc]
            assert bot.told(approver) == [
                f"⚠ the bot is restarting; your approval of `{FIX}` on *t{i % RUNNING}* was not "
                "started — the request is still pending: approve it again"
            ]
        # Told at once, while the running fixes still run; a second SIGTERM does not cut them.
        assert bot.alive()
        bot.sigterm()
        assert bot.stop() == 0
    except BaseException:
        bot.close()
        raise
    output = bot.output()
    assert "Traceback" not in output, output
    assert output.count(f"shutting down: {QUEUED} queued approval(s) not started") == 1
    assert output.count("SIGTERM again: still stopping") == 1

    for request_id, _ in queued:
        assert bot.request(request_id).state is RequestState.PENDING
        assert bot.actions(request_id) == ["remediation.requested", "remediation.not_started"]
    for (request_id, ts), server in zip(running, servers, strict=True):
        done = bot.request(request_id)
        assert done.state is RequestState.SUCCEEDED, done
        assert keys_with_ttl(server.url, KEYS) == KEYS
        assert bot.actions(request_id)[1:] == [
            "remediation.approved",
            "remediation.executed",
            "remediation.verified",
        ]
        assert header(bot.updates(ts)[-1]).startswith("✅ Done")
    for approver, _ in APPROVERS[:RUNNING]:
        assert bot.told(approver) == []  # the running ones read their result on the message
    bot.close()
