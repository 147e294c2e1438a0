"""Sign a Slack request body as Slack does (HMAC-SHA256, version v0)."""

from __future__ import annotations

import hashlib
import hmac
import time


def signature(*, secret: str, timestamp: str, body: str) -> str:
    """``v0=<hex>`` over ``v0:<timestamp>:<body>``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(*, secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers of a form-encoded Slack request signed with ``secret`` at ``timestamp`` (now)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(secret=secret, timestamp=ts, body=body),
    }


def button_click_payload(
    *,
    action_id: str,
    value: str,
    response_url: str,
    user: tuple[str, str] = ("U0ALICE", "alice"),
    channel: str = "C0OPS",
    ts: str | None = "1700000000.000001",
    trigger_id: str = "1337.43",
) -> dict[str, object]:
    """A ``block_actions`` payload: ``user`` clicks a button on message ``ts`` in ``channel``."""
    return {
        "type": "block_actions",
        "team": {"id": "T0FAKE", "domain": "fake"},
        "user": {"id": user[0], "username": user[1], "name": user[1], "team_id": "T0FAKE"},
        "api_app_id": "A0APP",
        "channel": {"id": channel},
        "container": {"type": "message", "message_ts": ts, "channel_id": channel},
        "message": {"type": "message", "ts": ts, "text": "…"},
        "trigger_id": trigger_id,
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b1",
                "value": value,
                "action_ts": "1700000001.0",
            }
        ],
    }
