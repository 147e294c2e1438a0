"""``capacity users=N sessions=N size=SIZE``: the runbook formula, no Redis needed."""

from __future__ import annotations

from bot.diagnosis.capacity import plan_capacity
from bot.slack.blocks.capacity import capacity_message
from bot.slack.deps import SlackDeps
from bot.slack.jobs import Job, Result
from bot.slack.parsing import parse_capacity
from bot.units import format_bytes


def prepare_capacity(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """Validate and compute now (it is instant), so bad input is answered in the ack."""
    parsed = parse_capacity(args)
    plan = plan_capacity(
        users=parsed.users,
        sessions_per_user=parsed.sessions_per_user,
        session_size=parsed.session_size,
    )
    summary = (
        f"{plan.sessions} sessions x {format_bytes(plan.session_size)}: "
        f"maxmemory {plan.maxmemory_directive}, pod limit {plan.pod_memory_limit}"
    )
    result = Result(message=capacity_message(plan), outcome="ok", summary=summary)
    return Job(
        subcommand="capacity",
        run=lambda _request: result,
        progress=f"Planning capacity for {parsed.users:,} users…",
        parameters={
            "users": parsed.users,
            "sessions_per_user": parsed.sessions_per_user,
            "session_size": parsed.session_size,
        },
    )
