"""Runbook diagnosis: six checks, the scenarios they point to, and capacity planning.

Plain Python: no Slack, Bolt, CLI or network here. Input is a
``bot.redisinfo.snapshot.Snapshot``; output is a frozen ``Diagnosis``.
"""
