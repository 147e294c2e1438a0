"""The scheduled sweep that writes the audit rows applied changes still owe, then says so.

Every few seconds: ``AuditBacklog.flush`` writes them as soon as the database takes
inserts again, and each request's message is re-rendered (no longer "not recorded").
While the database still refuses, one log line per distinct reason, not one per sweep.
"""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.approvals.backlog import AuditBacklog
from bot.errors import RedisMemError
from bot.slack.listeners.approvals import refresh_messages

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5  # "the moment the database takes inserts again", give or take a sweep


class BacklogSweep:
    """``scheduler.every(..., BacklogSweep(...), seconds=SWEEP_SECONDS)``."""

    def __init__(self, *, backlog: AuditBacklog, client: WebClient) -> None:
        """``client``: the Web API client that re-renders the requests' messages."""
        self._backlog = backlog
        self._client = client
        self._failing: str | None = None

    def __call__(self) -> int:
        """Flush once; how many requests got their rows written."""
        try:
            done = self._backlog.flush()
        except RedisMemError as err:
            if err.message != self._failing:
                log.warning("unrecorded audit rows wait for the database: %s", err.message)
            self._failing = err.message
            return 0
        self._failing = None
        for request in done:
            log.info("request %s: its missing audit rows are recorded now (late)", request.id)
        refresh_messages(self._client, done)
        return len(done)
