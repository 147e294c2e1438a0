"""Block Kit presenters: one module per message kind, pure functions of domain objects.

Each presenter returns a ``Message`` (blocks plus the fallback ``text`` Slack shows
in notifications); blocks are built with ``slack_sdk.models.blocks`` so Slack's
limits are checked when the message is serialised.
"""
