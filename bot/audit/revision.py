"""The audit schema revision the code needs, known without reading the migrations folder.

A module of its own, free of SQLAlchemy and Alembic: every CLI command compares the
database with it before writing (``bot.audit.migrate``, ``bot.audit.sqlite_append``).
"""

from __future__ import annotations

# The newest revision in migrations/versions. A new migration must bump it:
# tests/test_audit_migrations.py holds it to Alembic's own head.
HEAD_REVISION = "0007"
VERSION_TABLE = "alembic_version"  # Alembic's default (migrations/env.py keeps it)
