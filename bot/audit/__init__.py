"""Audit trail: append-only, hash-chained record of every command and action."""
