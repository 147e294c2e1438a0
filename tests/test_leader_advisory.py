"""The PostgreSQL advisory lock (bot/audit/advisory.py) on the local server.

Two claims on one schema: one wins; ending the winner's session (as SIGKILL or a
restarted server would) frees the lock for the other; two schemas elect separately.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.engine import make_url

from bot.audit.advisory import LOCK_CLASS, AdvisoryLockClaim, schema_key
from bot.errors import AuditUnavailable
from bot.runtime.election import Elector
from tests.dbfixtures import pg_url, schema_url

__all__ = ["pg_url"]  # the fixture


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _terminate_holders(url: str) -> int:
    """End every session holding one of our advisory locks on this schema (pg_terminate_backend)."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()
        assert schema is not None
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND classid = %s::oid AND objid = %s::oid",
            (LOCK_CLASS, schema_key(str(schema[0])) % 2**32),
        ).fetchall()
    return len(rows)


def test_one_claim_wins_and_a_lost_session_hands_the_lock_over(pg_url: str) -> None:
    a, b = AdvisoryLockClaim(pg_url), AdvisoryLockClaim(pg_url)
    try:
        assert a.try_acquire_or_renew() is True
        assert b.try_acquire_or_renew() is False
        assert a.try_acquire_or_renew() is True  # a renewal: its session still lives
        assert _terminate_holders(pg_url) == 1
        with pytest.raises(AuditUnavailable, match="advisory lock connection lost"):
            a.try_acquire_or_renew()  # the check sees the session gone: leadership lost
        assert b.try_acquire_or_renew() is True
        assert a.try_acquire_or_renew() is False  # a reconnects, and now b holds it
    finally:
        a.release()
        b.release()


def test_release_frees_the_lock_at_once(pg_url: str) -> None:
    a, b = AdvisoryLockClaim(pg_url), AdvisoryLockClaim(pg_url)
    try:
        ea = Elector(a, retry=0.5, fence=1.0, drop_on_failure=True)
        eb = Elector(b, retry=0.5, fence=1.0, drop_on_failure=True)
        assert ea.step() is True and eb.step() is False
        ea.stop()  # never started its thread: stop still releases
        assert not ea.is_leader()
        assert eb.step() is True
    finally:
        a.release()
        b.release()


def test_two_schemas_on_one_database_each_have_a_leader(pg_url: str) -> None:
    with schema_url(prefix="leader_other") as other:
        a, b = AdvisoryLockClaim(pg_url), AdvisoryLockClaim(other)
        try:
            assert a.try_acquire_or_renew() is True
            assert b.try_acquire_or_renew() is True
        finally:
            a.release()
            b.release()


def test_an_unreachable_server_is_one_line(pg_url: str) -> None:
    url = make_url(pg_url).set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    claim = AdvisoryLockClaim(url)
    with pytest.raises(AuditUnavailable) as caught:
        claim.try_acquire_or_renew()
    assert "\n" not in caught.value.message
    claim.release()
