"""Approval-gated remediation: request -> approve/reject/expire -> execute -> verify, all audited.

See docs/decisions/approvals.md for the state machine and why it is shaped so.
"""
