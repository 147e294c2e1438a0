"""The scheduled channel reports: one per channel per slot, at most once.

The job ticks every ``TICK_SECONDS`` (on the leader only) and asks the schedule for the
slot due now. Each channel's report is claimed in the database before it is built
(``SlotLedger.claim``: a unique row), so a restart, a second replica or a tick that
overlaps the last one never posts it twice; a slot missed by less than the schedule's
catch-up (a restart at 09:00:30, a deploy) is still posted once. Claim-then-post makes
delivery at most once: a process killed between the claim and the post loses that
channel's report for the slot, which the ledger row shows (claimed, never posted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.audit.entry import AuditEntry, AuditSink
from bot.clock import utc_now
from bot.errors import AuditUnavailable, RedisMemError
from bot.reports.model import DEFAULT_WINDOW
from bot.reports.ports import ReportPublisher, SlotClock, SlotLedger
from bot.reports.service import ReportService

log = logging.getLogger(__name__)

TICK_SECONDS = 30


@dataclass(frozen=True)
class Posted:
    """One channel's report of a slot: its message ts, or why it was not posted."""

    channel: str
    slot: datetime
    ts: str | None = None
    error: str | None = None


class ScheduledReports:
    """Posts each channel's report at its slot."""

    def __init__(
        self,
        *,
        service: ReportService,
        ledger: SlotLedger,
        publisher: ReportPublisher,
        slots: SlotClock,
        audit: AuditSink,
        clock: Callable[[], datetime] = utc_now,
        window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        """``window``: what each scheduled report covers (the last 24 hours)."""
        self._service = service
        self._ledger = ledger
        self._publisher = publisher
        self._slots = slots
        self._audit = audit
        self._clock = clock
        self._window = window

    def run_due(self) -> list[Posted]:
        """Post the reports of the slot due now that no process has claimed yet."""
        now = self._clock()
        slot = self._slots.due_slot(now)
        if slot is None:
            return []
        posted = []
        for channel in self._service.channels():
            try:
                if not self._ledger.claim(channel=channel, slot=slot, at=now):
                    log.debug("report for %s at %s: posted already", channel, slot)
                    continue
            except AuditUnavailable as err:  # cannot know whether it was posted: next tick
                log.warning("report for %s at %s not claimed: %s", channel, slot, err.message)
                continue
            posted.append(self._post(channel, slot))
        return posted

    def run_tick(self) -> None:
        """The scheduled job: ``run_due``, with one log line per report posted."""
        for result in self.run_due():
            if result.error is None:
                log.info(
                    "channel report for %s at %s posted (ts %s)",
                    result.channel,
                    result.slot,
                    result.ts,
                )

    def _post(self, channel: str, slot: datetime) -> Posted:
        """Build, post, remember and audit one channel's report (errors are one line)."""
        try:
            report = self._service.build(window=self._window, channel=channel)
            result = Posted(channel, slot, ts=self._publisher.publish(report, channel=channel))
        except RedisMemError as err:
            log.error("scheduled report for %s at %s not posted: %s", channel, slot, err.message)
            result = Posted(channel, slot, error=err.message)
        except Exception:  # one channel's failure must not lose the others' reports
            log.exception("scheduled report for %s at %s failed", channel, slot)
            result = Posted(channel, slot, error="internal error (see the log)")
        self._remember(result)
        return result

    def _remember(self, result: Posted) -> None:
        try:
            self._ledger.posted(
                channel=result.channel, slot=result.slot, ts=result.ts, error=result.error
            )
            self._audit.record(
                AuditEntry(
                    actor="scheduler",
                    source="scheduler",
                    action="report.posted",
                    outcome="ok" if result.error is None else "error",
                    summary=(
                        f"channel report for {result.slot:%Y-%m-%d %H:%M} UTC"
                        + ("" if result.error is None else f": {result.error}")
                    ),
                    parameters={"slot": result.slot.isoformat()},
                    channel=result.channel,
                    message_ts=result.ts,
                )
            )
        except AuditUnavailable as err:
            log.warning("report for %s: outcome not stored: %s", result.channel, err.message)
