"""The approval sweep: expire requests nobody decided, end executions whose process is gone,
and bring every message up to date; and the same for executions at start-up."""

from __future__ import annotations

import logging

from slack_sdk import WebClient

from bot.approvals.service import RemediationService
from bot.errors import RedisMemError
from bot.slack.listeners.approvals import refresh_messages
from bot.slack.redelivery import redeliver

log = logging.getLogger(__name__)

SWEEP_SECONDS = 30


def expire_and_refresh(*, service: RemediationService, client: WebClient) -> int:
    """Mark pending requests past their expiry as expired and executions with a stale
    heartbeat as interrupted (audited), re-render their messages, then redeliver every
    final state a message still lags behind (``redelivery.py``).

    Returns how many expired. An audit outage is logged and retried at the next
    sweep: the request stays pending, and an approval click on it is refused as
    expired anyway (the service checks the time itself).
    """
    try:
        expired = service.expire_due()
    except RedisMemError as err:
        log.warning("could not expire approval requests: %s", err.message)
        expired = []
    refresh_messages(client, expired, service)
    redeliver(service=service, client=client)
    return len(expired)


def recover_interrupted(*, service: RemediationService, client: WebClient) -> int:
    """At ``serve`` start-up: end as interrupted (audited) what a process that is gone left
    executing (``RemediationService.recover_interrupted``), then update those messages.

    Returns how many. Never raises: an audit outage is logged, and the periodic sweep
    ends the same requests once their heartbeat is stale. The messages go through the
    redelivery (one quick attempt each, no retries): Slack being down must not delay the
    start, and the sweep tries again with its backoff.
    """
    try:
        interrupted = service.recover_interrupted()
    except RedisMemError as err:
        log.warning("could not end the executions left by a previous process: %s", err.message)
        return 0
    for request in interrupted:
        log.warning(
            "request %s (%s on %s) interrupted", request.id, request.action_id, request.target
        )
    if interrupted:
        redeliver(service=service, client=client)
    return len(interrupted)
