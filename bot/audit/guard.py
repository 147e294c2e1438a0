"""Fail-closed wrapper for changes: no audit record, no change.

Not used by the approval flow (``bot.approvals`` orders its own audit rows, see
docs/decisions/approvals.md); kept as the small API for future writers that
change things outside it, such as a scheduler job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TypeVar

from bot.audit.entry import AuditEntry, AuditSink

T = TypeVar("T")


def audited_change(
    sink: AuditSink,
    entry: AuditEntry,
    change: Callable[[], T],
    *,
    done_action: str | None = None,
    failed_action: str | None = None,
) -> T:
    """Record ``entry`` (e.g. ``remediation.requested``), run ``change``, record the result.

    If the first record raises ``AuditUnavailable`` the change never runs. After
    the change, ``<prefix>.executed`` or ``<prefix>.failed`` is recorded (prefix:
    the entry's action up to its last dot). A failure to record the outcome
    raises AuditUnavailable even though the change ran: the caller must report it.
    """
    with audited(sink, entry, done_action=done_action, failed_action=failed_action):
        return change()


@contextmanager
def audited(
    sink: AuditSink,
    entry: AuditEntry,
    *,
    done_action: str | None = None,
    failed_action: str | None = None,
) -> Iterator[None]:
    """Context-manager form of ``audited_change``: the block runs only if the record succeeded."""
    prefix = entry.action.rsplit(".", 1)[0]
    sink.record(entry)
    try:
        yield
    except Exception as err:
        reason = f"{type(err).__name__}: {err}".splitlines()[0][:300]
        sink.record(
            replace(
                entry,
                action=failed_action or f"{prefix}.failed",
                outcome="error",
                summary=f"{entry.summary} -- failed: {reason}",
            )
        )
        raise
    sink.record(replace(entry, action=done_action or f"{prefix}.executed", outcome="ok"))
