"""Approver user groups resolved through Slack's ``usergroups.users.list``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.errors import Refused

log = logging.getLogger(__name__)

# Membership is cached briefly: a burst of clicks costs one API call (Tier 2 rate
# limit), and someone removed from the group loses approval within a minute.
CACHE_SECONDS = 60.0


class SlackGroupResolver:
    """``GroupResolver`` over the Slack Web API, with a short per-group cache."""

    def __init__(
        self,
        client: WebClient,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def members(self, group_id: str) -> frozenset[str]:
        """User ids in the group; ``Refused`` (one line) when Slack cannot say."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(group_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        users = self._fetch(group_id)
        with self._lock:
            self._cache[group_id] = (now, users)
        return users

    def _fetch(self, group_id: str) -> frozenset[str]:
        try:
            response = self._client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as err:
            error = err.response.get("error") or "unknown error"
            log.warning("usergroups.users.list %s failed: %s", group_id, error)
            raise Refused(f"cannot check approver group {group_id} in Slack ({error})") from None
        except OSError as err:  # Slack unreachable: refuse rather than guess
            log.warning("usergroups.users.list %s failed: %s", group_id, err)
            raise Refused(f"cannot check approver group {group_id}: Slack unreachable") from None
        return frozenset(str(user) for user in response.get("users") or [])
