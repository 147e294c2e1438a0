"""One diagnosis in flight per target: concurrent askers share it, later ones do not."""

from __future__ import annotations

import threading

import pytest

from bot.config import Settings, Target
from bot.diagnosis.model import Diagnosis
from bot.errors import RedisUnavailable
from bot.services.singleflight import SingleFlight
from bot.wiring import diagnosis_service
from tests.conftest import RedisFactory
from tests.slackcheck import wait_until


def test_callers_during_a_call_share_it_and_a_caller_after_it_runs_again() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release, runs = threading.Event(), []

    def slow() -> int:
        runs.append(1)
        release.wait(10)
        return len(runs)

    answers: list[int] = []
    threads = [
        threading.Thread(target=lambda: answers.append(flight.do("prod", slow))) for _ in range(5)
    ]
    threads[0].start()
    wait_until(lambda: runs == [1])  # the leader is running
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: flight.shared == 4)
    release.set()
    for thread in threads:
        thread.join(10)
    assert answers == [1] * 5 and runs == [1]
    assert flight.do("prod", slow) == 2  # nothing cached: a new caller runs it again
    assert flight.do("stage", slow) == 3  # another key never waits for prod


def test_followers_get_a_copy_of_the_leaders_error() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    release, started = threading.Event(), threading.Event()

    def failing() -> int:
        started.set()
        release.wait(10)
        raise RedisUnavailable("prod: timed out after 5.0 s")

    errors: list[BaseException] = []

    def ask() -> None:
        try:
            flight.do("prod", failing)
        except RedisUnavailable as err:
            errors.append(err)

    leader = threading.Thread(target=ask)
    leader.start()
    started.wait(10)
    follower = threading.Thread(target=ask)
    follower.start()
    wait_until(lambda: flight.shared == 1)
    release.set()
    leader.join(10)
    follower.join(10)
    assert [str(e) for e in errors] == ["prod: timed out after 5.0 s"] * 2
    assert errors[0] is not errors[1]
    with pytest.raises(RedisUnavailable):  # and the key is free again
        flight.do("prod", failing)


def test_readers_of_a_hung_store_share_one_diagnosis(redis_factory: RedisFactory) -> None:
    server = redis_factory("--maxmemory", "16mb")
    service = diagnosis_service(
        Settings(sample_size=20), {"prod": Target(name="prod", redis_url=server.url)}
    )
    answers: list[Diagnosis] = []
    readers = [
        threading.Thread(target=lambda: answers.append(service.shared("prod"))) for _ in range(6)
    ]
    with server.paused():  # the first reader's diagnosis cannot end before all have asked
        for reader in readers:
            reader.start()
        wait_until(lambda: service.flight.shared == 5)
    for reader in readers:
        reader.join(15)
    assert len(answers) == 6 and all(answer is answers[0] for answer in answers)
    assert service.diagnose("prod") is not answers[0]  # a fix's reading is its own
