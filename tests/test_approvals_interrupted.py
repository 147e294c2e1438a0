"""Requests left EXECUTING by a process that is gone are ended INTERRUPTED, never a live one's.

In process: a process "dies" mid-action (its progress callback raises a BaseException,
which nothing in the bot catches, as a SIGKILL would stop it between two batches) on a
real redis-server and a real audit database; another service, as the restarted process
or as another replica, decides from the stored executor and heartbeat. Then the real
thing: ``redis-mem serve`` SIGKILLed in the middle of a key action, and restarted.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from bot.approvals.liveness import ExecutorId, Liveness, restarted_here, stale
from bot.approvals.model import ApprovalRequest, RequestState
from tests.approvals_support import Rig
from tests.conftest import RedisFactory
from tests.dbfixtures import db_engine, db_url  # noqa: F401  (rig_db: SQLite and PostgreSQL)
from tests.fakeslack import FakeSlack
from tests.faults_support import (
    APPROVERS,
    FaultyServe,
    header,
    keys_with_ttl,
    seed_sessions,
    serve_env,
)
from tests.running_support import expire_request, killed_mid_action, paused, service_as, with_ttl
from tests.slackcheck import wait_until

pytest_plugins = ("tests.remediation_support", "tests.approvals_support")

POD_A = ExecutorId(host="redis-mem-7d9f-a", pid=1, boot="a" * 32)
POD_A_AGAIN = ExecutorId(host="redis-mem-7d9f-a", pid=1, boot="b" * 32)  # same pod, restarted
POD_B = ExecutorId(host="redis-mem-7d9f-b", pid=1, boot="c" * 32)


def test_a_restart_on_the_same_pod_ends_the_request_at_once_with_its_progress(
    rig_db: Rig,
) -> None:
    rig = rig_db
    request_id = killed_mid_action(rig, service_as(rig, POD_A))
    left = rig.store.get(request_id)
    assert left is not None and left.executor_host == POD_A.host
    assert left.executor_boot == POD_A.boot and left.heartbeat_at == rig.clock.now
    changed = with_ttl(rig, 3000)
    assert 0 < changed < 3000
    # The callback died after the store, before the next batch: the stored counts are exact.
    assert left.progress_changed == changed
    assert left.progress == f"{changed:,} keys changed ({changed:,} scanned)"

    restarted = service_as(rig, POD_A_AGAIN)  # same pod, same pid 1 (a container restart)
    (ended,) = restarted.recover_interrupted()  # no time passed: at once

    assert ended.state is RequestState.INTERRUPTED
    assert ended == restarted.get(request_id)
    assert ended.error == (
        f"interrupted: its bot process ({POD_A.host} pid 1) was restarted; at least "
        f"{changed:,} keys were changed ({changed:,} scanned) by its last progress report; "
        "what ran after that report is unknown: check the store before running it again"
    )
    assert ended.result is not None and ended.result["keys_changed_at_least"] == changed
    assert ended.progress == left.progress
    last = rig.rows(request_id)[-1]
    assert rig.actions(request_id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.interrupted",
    ]
    assert last.actor == "scheduler" and last.outcome == "interrupted"
    assert last.parameters["keys_changed_at_least"] == changed
    assert last.parameters["executor"] == f"{POD_A.host} pid 1"
    # Its message is due for the redelivery (final state, message showing executing).
    assert [lag.request.id for lag in restarted.messages.lagging()] == [request_id]
    assert restarted.recover_interrupted() == [] and restarted.expire_due() == []  # once
    assert with_ttl(rig, 3000) == changed  # nothing ran since


def test_a_replica_with_a_fresh_heartbeat_is_never_marked(rig_db: Rig) -> None:
    rig = rig_db
    running = service_as(rig, POD_A)
    other = service_as(rig, POD_B)
    request_id = expire_request(rig).id
    with paused(running, request_id) as held:
        assert other.recover_interrupted() == []
        # Time passes; the running process's heartbeat keeps up (its thread, every 20 ms).
        rig.clock.advance(minutes=5)
        wait_until(lambda: rig.store.get(request_id).heartbeat_at == rig.clock.now)  # type: ignore[union-attr]
        assert other.expire_due() == [] and other.recover_interrupted() == []
        # A second bot on the same host (another pid that is alive) is not "restarted" either.
        same_host = ExecutorId(POD_A.host, pid=2, boot="d" * 32)
        alive = service_as(rig, same_host, liveness=Liveness(pid_alive=lambda pid: True))
        assert alive.recover_interrupted() == []
        held.release.set()
    done = held.final()
    assert done.state is RequestState.SUCCEEDED, done.error
    assert "remediation.interrupted" not in rig.actions(request_id)
    assert with_ttl(rig, 3000) == 3000


def test_another_replica_ends_it_once_its_heartbeat_is_stale(rig: Rig) -> None:
    request_id = killed_mid_action(rig, service_as(rig, POD_A))
    other = service_as(rig, POD_B)
    assert other.recover_interrupted() == []  # another host, heartbeat fresh: maybe alive
    rig.clock.advance(seconds=44)
    assert other.expire_due() == []
    rig.clock.advance(seconds=2)
    (ended,) = other.expire_due()
    assert ended.id == request_id and ended.state is RequestState.INTERRUPTED
    assert ended.error is not None
    assert ended.error.startswith(
        f"interrupted: its bot process ({POD_A.host} pid 1) stopped its heartbeat at 04:00:00 UTC"
    )
    assert rig.actions(request_id)[-1] == "remediation.interrupted"


def test_a_heartbeat_refreshed_in_between_wins_the_conditional_update(rig_db: Rig) -> None:
    rig = rig_db
    request_id = killed_mid_action(rig, service_as(rig, POD_A))
    rig.clock.advance(minutes=1)
    stale_before = rig.clock.now - timedelta(seconds=45)
    # The executor refreshes just before the sweeper's UPDATE (it had read the row stale).
    assert rig.store.beat(request_id, boot=POD_A.boot, at=rig.clock.now)
    assert not rig.store.interrupt(request_id, boot=POD_A.boot, stale_before=stale_before)
    assert not rig.store.interrupt(request_id, boot=POD_B.boot, stale_before=None)  # not its
    assert rig.store.get(request_id).state is RequestState.EXECUTING  # type: ignore[union-attr]


def test_a_live_execution_whose_row_was_taken_stops_before_its_next_batch(rig: Rig) -> None:
    running = service_as(rig, POD_A)
    # A replica that wrongly believes POD_A's process gone (a pid check fooled, say).
    fooled = service_as(rig, POD_A_AGAIN, liveness=Liveness(pid_alive=lambda pid: False))
    request_id = expire_request(rig).id
    with paused(running, request_id) as held:
        (ended,) = fooled.recover_interrupted()
        at_least = ended.progress_changed
    final = held.final()
    assert final == running.get(request_id)
    assert final.state is RequestState.INTERRUPTED  # the first end stays
    # The running process saw the row taken at its next batch: nothing more ran after it.
    assert with_ttl(rig, 3000) == at_least
    assert rig.actions(request_id) == [
        "remediation.requested",
        "remediation.approved",
        "remediation.interrupted",
        "remediation.failed",  # what really ran here, in the trail
        "remediation.verified",
    ]
    ran = rig.rows(request_id)[3]
    assert ran.parameters["keys_changed"] == at_least
    assert ran.parameters["state"].endswith(
        "another process ended this request as interrupted while it ran here"
    )


def test_liveness_rules() -> None:
    request = ApprovalRequest(
        id="f" * 32,
        action_id="expire-keys-without-ttl",
        target="prod",
        params={},
        preview={},
        requester="U1",
        requester_name=None,
        state=RequestState.EXECUTING,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert not restarted_here(request, POD_A)  # no executor stored (before 0005)
    assert not stale(request, request.created_at + timedelta(days=1))  # no heartbeat: not ours
    mine = replace(request, **POD_A.columns())
    assert not restarted_here(mine, POD_A)  # our own boot: running here
    assert restarted_here(mine, POD_A_AGAIN)  # same pid 1: that process is us now
    assert not restarted_here(mine, POD_B)  # another pod
    other_pid = ExecutorId(POD_A.host, pid=7, boot="e" * 32)
    assert restarted_here(mine, other_pid, alive=lambda pid: False)
    assert not restarted_here(mine, other_pid, alive=lambda pid: True)


# ---- The real thing: serve SIGKILLed mid-action, then restarted --------------------------------

KILL_KEYS = 20_000
SLOW_RATE = "1000"  # keys/s: 20 s for the whole action, 100-key batches


def test_serve_killed_mid_action_is_interrupted_at_restart_with_its_progress(
    tmp_path: Path,
    fake_slack: FakeSlack,
    redis_factory: RedisFactory,
    db_url: str,  # noqa: F811
    db_engine: Engine,  # noqa: F811  (migrated: serve refuses a PostgreSQL behind head)
) -> None:
    server = redis_factory()
    seed_sessions(server.url, KILL_KEYS)
    env = serve_env(fake_slack, tmp_path, database_url=db_url, targets={"t": server.url})
    env["REDIS_MEM_FIX_RATE"] = SLOW_RATE
    bot = FaultyServe(fake=fake_slack, env=env, log=tmp_path / "serve.log").start()
    try:
        request_id, ts = bot.request_fix("t")
        bot.approve(request_id, ts, user=APPROVERS[0])
        # Wait for a stored progress report with keys changed, then kill: no clean-up runs.
        wait_until(lambda: (bot.request(request_id).progress_changed or 0) > 0, timeout=30)
        assert bot.proc is not None
        bot.proc.kill()
        bot.proc.wait(timeout=10)
        left = bot.request(request_id)
        assert left.state is RequestState.EXECUTING
        at_least = left.progress_changed or 0
        changed = keys_with_ttl(server.url, KILL_KEYS)
        assert 0 < at_least <= changed < KILL_KEYS  # killed mid-way; the last second unknown

        bot.drop_engine()
        bot.start()  # the same host, a new process: it ends the request before serving
        ended = bot.request(request_id)
        assert ended.state is RequestState.INTERRUPTED, ended
        assert ended.progress_changed == at_least
        assert ended.error is not None and "was restarted; at least" in ended.error
        assert f"at least {at_least:,} keys were changed" in ended.error
        assert bot.actions(request_id) == [
            "remediation.requested",
            "remediation.approved",
            "remediation.interrupted",
        ]
        # Its message shows it (the start-up redelivery), with the keys changed so far.
        wait_until(lambda: header(bot.updates(ts)[-1]).startswith("💥 Interrupted"), timeout=20)
        assert f"at least {at_least:,}" in str(bot.updates(ts)[-1].params["blocks"])
        assert keys_with_ttl(server.url, KILL_KEYS) == changed  # nothing resumed it
        assert bot.stop() == 0
    finally:
        bot.close()
    assert _tracebacks(bot.output()) == []


def _tracebacks(log: str) -> list[str]:
    """The log records that carry a traceback (a restart within one check interval once
    divided by zero in the eviction-rate rule: samples at one instant)."""
    return [r for r in log.split("\n20") if "Traceback" in r]
