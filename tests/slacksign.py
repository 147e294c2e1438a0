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
