"""Terminal presenters: the CLI's rendering of domain objects (Slack has its own in bot/slack)."""
