"""Executions held mid-way for the interrupted and cancel tests: a "process" that dies
between two batches, and one paused inside a progress report until the test releases it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from bot.approvals.liveness import ExecutorId, Liveness
from bot.approvals.model import ApprovalRequest, RequestState
from bot.approvals.service import RemediationService
from tests.approvals_support import APPROVER, REQUESTER, Rig, build_service
from tests.remediation_support import load_sessions

FAST = Liveness(heartbeat=0.02, cancel_poll=0.0)  # beats every 20 ms; reads its row every batch


class Died(BaseException):
    """The process stops here: nothing in the bot catches a BaseException."""


def service_as(rig: Rig, me: ExecutorId, **overrides: object) -> RemediationService:
    """Another service (process or replica) on the rig's parts, as executor ``me``."""
    return build_service(rig, executor=me, liveness=overrides.pop("liveness", FAST), **overrides)


def expire_request(rig: Rig, keys: int = 3000) -> ApprovalRequest:
    """``keys`` sessions without TTL and a request to expire them, its message attached."""
    load_sessions(rig.env.client, keys, ttl=None)
    request = rig.service.request(
        actor=REQUESTER,
        action_id="expire-keys-without-ttl",
        target_name=None,
        raw_params={"ttl_seconds": "86400"},
        channel="C0OPS",
    )
    rig.service.attach_message(request.id, channel="C0OPS", ts="1700000000.000100")
    return request


def with_ttl(rig: Rig, keys: int) -> int:
    """How many of the first ``keys`` sessions have a TTL now (read from the real Redis)."""
    client = rig.env.client
    return sum(1 for i in range(keys) if int(client.ttl(f"session:{i}")) > 0)


def die_at(report: int) -> Callable[[ApprovalRequest], None]:
    """A progress callback that kills the "process" at its ``report``-th progress line."""
    seen = []

    def progress(request: ApprovalRequest) -> None:
        if request.progress:
            seen.append(request.progress)
            if len(seen) == report:
                raise Died

    return progress


def killed_mid_action(rig: Rig, service: RemediationService, keys: int = 3000) -> str:
    """An expire approved on ``service`` whose process dies at its third progress report."""
    request = expire_request(rig, keys)
    with pytest.raises(Died):
        service.approve(request_id=request.id, approver=APPROVER, progress=die_at(3))
    left = rig.store.get(request.id)
    assert left is not None and left.state is RequestState.EXECUTING
    return request.id


@dataclass
class Paused:
    """An execution held inside its first progress report; ``release`` lets it go on."""

    request_id: str
    release: threading.Event
    outcome: list[ApprovalRequest]

    def final(self) -> ApprovalRequest:
        """What ``approve`` returned (after the context ended)."""
        assert self.outcome, "the execution raised"
        return self.outcome[0]


@contextmanager
def paused(service: RemediationService, request_id: str) -> Iterator[Paused]:
    """``approve`` in a thread, held inside its first progress report until released."""
    reached, release = threading.Event(), threading.Event()
    held = Paused(request_id, release, [])

    def progress(req: ApprovalRequest) -> None:
        if req.progress and not reached.is_set():
            reached.set()
            assert release.wait(30)

    def run() -> None:
        held.outcome.append(
            service.approve(request_id=request_id, approver=APPROVER, progress=progress)
        )

    worker = threading.Thread(target=run)
    worker.start()
    assert reached.wait(30)
    try:
        yield held
    finally:
        release.set()
        worker.join(30)
