"""Alertmanager's webhook (``POST /alertmanager``): its alerts in Slack, with a diagnosis."""
