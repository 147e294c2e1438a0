"""Remediation: the runbook's fixes as previewable, approvable, verifiable actions.

``redisconf`` edits one ``redis.conf`` directive and keeps every other line.
"""
