"""The Slack face: Bolt app factory, listeners, and Block Kit presenters."""
