"""SQLite's WAL shared-memory file made unusable under a running ``redis-mem serve``.

In WAL mode SQLite maps ``<db>-shm`` into memory; once that file is truncated or can no
longer be written, the next database access used to kill the bot with SIGBUS and no log
line. Now the click is answered with one line, the log has one line, nothing runs, the
bot stays up (not ready), and it works again as soon as the file is usable again.

Two real ways to break the file: ``chattr +i`` (immutable: refused even to root, as a
read-only remount would be; needs CAP_LINUX_IMMUTABLE) and truncation (what a second
writer that believes it is alone, or a careless ``: > audit.db-shm``, does).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.approvals.model import RequestState
from tests.conftest import RedisFactory
from tests.fakeslack import FakeSlack
from tests.faults_support import (
    APPROVERS,
    FaultyServe,
    header,
    keys_with_ttl,
    seed_sessions,
    serve_env,
)
from tests.slackcheck import wait_until

KEYS = 200


def _chattr(flag: str, path: Path) -> bool:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, check=False)
    return done.returncode == 0


def _immutable(shm: Path) -> Callable[[], None]:
    if not _chattr("+i", shm):
        pytest.skip("chattr +i is not available here (needs CAP_LINUX_IMMUTABLE and ext4/xfs)")
    return lambda: None if _chattr("-i", shm) else pytest.fail("chattr -i failed")


def _truncated(shm: Path) -> Callable[[], None]:
    size = shm.stat().st_size
    os.truncate(shm, 0)
    # Zeros of the right size: SQLite rebuilds the wal-index from the WAL itself.
    return lambda: os.truncate(shm, size)


@pytest.mark.parametrize("breaking", [_immutable, _truncated], ids=["immutable", "truncated"])
def test_an_unusable_shm_file_is_a_one_line_answer_not_a_crash(
    tmp_path: Path,
    fake_slack: FakeSlack,
    redis_factory: RedisFactory,
    breaking: Callable[[Path], Callable[[], None]],
) -> None:
    server = redis_factory()
    seed_sessions(server.url, KEYS)
    database = tmp_path / "audit.db"
    env = serve_env(
        fake_slack, tmp_path, database_url=f"sqlite:///{database}", targets={"prod": server.url}
    )
    bot = FaultyServe(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    approver = APPROVERS[0]
    try:
        request_id, ts = bot.request_fix("prod")
        bot.drop_engine()  # the test's own connections must not map the file it breaks
        repair = breaking(Path(f"{database}-shm"))
        try:
            bot.approve(request_id, ts, user=approver)
            wait_until(lambda: bool(bot.told(approver[0])), timeout=20)
            [line] = bot.told(approver[0])
            assert line.startswith("⚠ approve: audit database sqlite:///"), line
            # The reason ends the line; a long temp path (pytest-xdist) may clip its last words.
            assert "audit.db-shm" in line and "not touching" in line
            assert "\n" not in line
            assert bot.alive(), bot.output()
            assert bot.http.get(f"{bot.url}/healthz").status_code == 200
            wait_until(lambda: bot.readyz() == 503)
            assert keys_with_ttl(server.url, KEYS) == 0  # nothing ran
        finally:
            repair()

        wait_until(lambda: bot.readyz() == 200)
        bot.approve(request_id, ts, user=approver)
        wait_until(lambda: bot.request(request_id).state is RequestState.SUCCEEDED, timeout=30)
        wait_until(lambda: header(bot.updates(ts)[-1]).startswith("✅ Done"))
        assert keys_with_ttl(server.url, KEYS) == KEYS
        assert bot.stop() == 0
    finally:
        bot.close()
    output = bot.output()
    assert "Traceback" not in output and "Fatal Python error" not in output, output
    assert output.count("audit database unusable: SQLite shared-memory file") == 1, output
    assert output.count("is usable again") == 1
    assert bot.actions(request_id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.executed",
        "remediation.verified",
    ]
    bot.close()
