"""Listener modules; ``register_all`` is the one place that registers them on the app."""

from __future__ import annotations

from slack_bolt import App

from bot.slack.deps import SlackDeps
from bot.slack.listeners import alerts, approvals, cancel, fix_requests, slash

# Each module exposes register(app, deps); add new listener modules here.
LISTENER_MODULES = (slash, fix_requests, approvals, cancel, alerts)


def register_all(app: App, deps: SlackDeps) -> None:
    """Register every listener module's handlers on ``app``."""
    for module in LISTENER_MODULES:
        module.register(app, deps)
