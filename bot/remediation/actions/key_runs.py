"""What a key action (``keys.py``) reports: exact counts when complete, capped, failed or
cancelled, and which actions a Cancel click may stop while they run."""

from __future__ import annotations

from dataclasses import replace

from bot.diagnosis.actions import ACTIONS
from bot.remediation.actions.base import Run
from bot.remediation.model import ExecutionResult
from bot.remediation.ports import BulkProgress, BulkResult


def cancellable(action_id: str) -> bool:
    """Whether a running ``action_id`` shows a Cancel button (stops between batches), as
    its declaration says (``ActionInfo.cancellable``)."""
    info = ACTIONS.get(action_id)
    return info is not None and info.cancellable


class Tracker:
    """Remembers the last progress report, so an error mid-action still says what was done."""

    def __init__(self, forward: BulkProgress | None) -> None:
        self.scanned = 0
        self.changed = 0
        self._forward = forward

    def __call__(self, scanned: int, changed: int) -> None:
        self.scanned, self.changed = scanned, changed
        if self._forward is not None:
            self._forward(scanned, changed)


def _stopped(result: BulkResult, *, cap: int, planned: int | None = None) -> str:
    if result.stopped is None:
        return ""
    if result.stopped == "cap":
        return f"stopped at the cap of {cap:,} keys: run it again for the rest"
    if result.stopped == "stopped":  # the StopFlag: a Cancel click (or the row was taken)
        of = f" of {planned:,}" if planned is not None else ""
        return f"cancelled after {result.changed:,}{of} keys; those keys stay changed"
    return f"stopped early ({result.stopped})"


def bulk_result(
    run: Run, results: list[BulkResult], tracker: Tracker, *, cap: int, planned: int | None = None
) -> ExecutionResult:
    """Exact counts from the BulkResult; after an error, the last progress report."""
    if not results:
        return run.result(
            f"at least {tracker.changed:,} keys were changed ({tracker.scanned:,} scanned) "
            "before the error",
            keys_changed=tracker.changed,
        )
    result = results[0]
    stopped = _stopped(result, cap=cap, planned=planned)
    done = run.result(stopped, keys_changed=result.changed, bulk=result)
    return replace(done, complete=done.complete and result.stopped is None)
