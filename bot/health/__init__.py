"""Scheduled health checks: samples, alert rules with Prometheus ``for`` semantics, alerts.

Pure domain (no Slack, no SQL, no Redis client) except ``store``/``tables``, the
SQLAlchemy adapter. See docs/decisions/health-checks.md.
"""
