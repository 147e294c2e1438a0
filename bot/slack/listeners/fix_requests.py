"""Fix-request buttons (``redis_mem.request.<action-id>``): acknowledged until approvals land."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.slack.deps import SlackDeps

REQUEST_ACTION = re.compile(r"redis_mem\.request\..+")
NOT_YET = "Fix requests arrive in a coming release: follow the runbook for `{action}` meanwhile."


def register(app: App, deps: SlackDeps) -> None:
    """Ack the buttons so Slack shows no error, and tell the clicker why nothing happens."""

    @app.action(REQUEST_ACTION)
    def on_fix_request(ack: Ack, action: dict[str, Any], respond: Respond) -> None:
        ack()
        name = str(action.get("action_id", "")).removeprefix("redis_mem.request.")
        respond(text=NOT_YET.format(action=name), response_type="ephemeral", replace_original=False)
