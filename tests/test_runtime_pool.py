"""The bounded pool behind every ack: slots, busy, stop, and no job lost silently."""

from __future__ import annotations

import logging
import threading

import pytest

from bot.runtime.pool import BoundedPool, Foreground
from tests.slackcheck import wait_until


def test_the_pool_hands_out_workers_plus_queue_slots_then_none() -> None:
    pool = BoundedPool(workers=2, queue=3)
    slots = [pool.reserve() for _ in range(5)]
    assert all(slot is not None for slot in slots)
    assert pool.reserve() is None and pool.taken == 5
    assert slots[0] is not None
    slots[0].release()
    slots[0].release()  # twice is once
    assert pool.taken == 4 and pool.reserve() is not None
    pool.stop()


def test_a_finished_job_frees_its_slot_even_when_it_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = BoundedPool(workers=1, queue=0)
    slot = pool.reserve()
    assert slot is not None and pool.reserve() is None

    def broken() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="bot.runtime.pool"):
        slot.run(broken, what="a broken job")
        wait_until(lambda: pool.taken == 0)
    assert "a broken job failed" in caplog.text and "ValueError: boom" in caplog.text
    with pytest.raises(RuntimeError):
        slot.run(broken, what="again")
    pool.stop()


def test_stop_tells_the_queued_jobs_and_lets_the_running_one_finish() -> None:
    pool = BoundedPool(workers=1, queue=2)
    release, started = threading.Event(), threading.Event()
    ran: list[str] = []
    told: list[str] = []

    def running() -> None:
        started.set()
        release.wait(10)
        ran.append("running")

    for name, job in (("running", running), ("q1", lambda: ran.append("q1")),
                      ("q2", lambda: ran.append("q2"))):  # fmt: skip
        slot = pool.reserve()
        assert slot is not None
        slot.run(job, what=name, dropped=lambda name=name: told.append(name))
        started.wait(10)
    stopper = threading.Thread(target=pool.stop)
    stopper.start()
    wait_until(lambda: sorted(told) == ["q1", "q2"])
    assert pool.reserve() is None  # stopping: nothing new
    release.set()
    stopper.join(10)
    assert ran == ["running"] and pool.taken == 0


def test_a_slot_reserved_before_stop_is_told_when_it_runs_after() -> None:
    pool = BoundedPool(workers=1, queue=0)
    slot = pool.reserve()
    assert slot is not None
    pool.stop()
    told: list[str] = []
    slot.run(lambda: told.append("ran"), what="late", dropped=lambda: told.append("dropped"))
    assert told == ["dropped"] and pool.taken == 0


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError):
        BoundedPool(workers=0, queue=1)


def test_a_job_starts_only_once_the_acks_in_flight_are_done() -> None:
    acks = Foreground(max_wait=30)  # longer than the test: only the ack's end releases it
    pool = BoundedPool(workers=1, queue=0, after=acks)
    ran = threading.Event()
    with acks.acking():
        slot = pool.reserve()
        assert slot is not None
        slot.run(ran.set, what="work")
        assert not ran.wait(0.2)  # held while the ack is in flight
    assert ran.wait(10)
    pool.stop()


def test_a_flood_of_acks_delays_a_job_by_max_wait_at_most() -> None:
    acks = Foreground(max_wait=0.05)
    pool = BoundedPool(workers=1, queue=0, after=acks)
    ran = threading.Event()
    with acks.acking():  # never ends before the job has run
        slot = pool.reserve()
        assert slot is not None
        slot.run(ran.set, what="work")
        assert ran.wait(10)
    pool.stop()
