"""The approval sweep: expire requests nobody decided, and bring every message up to date."""

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
    """Mark pending requests past their expiry as expired (audited), re-render their messages,
    then redeliver every final state a message still lags behind (``redelivery.py``).

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
