"""The ``/redis-mem`` router: subcommand word -> a validated job that produces a message.

Adding a subcommand is one line in ``SUBCOMMANDS`` plus its ``prepare`` function.
``prepare`` is quick (parse, look up the target) and raises ``UsageError``; the
job's ``run`` does the slow part (Redis) after Slack has been acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.audit.scrub import scrub_text
from bot.diagnosis.model import Diagnosis
from bot.errors import AuditUnavailable
from bot.limits import MAX_WORD_CHARS
from bot.slack.alerts_view import run_alerts
from bot.slack.blocks.audit import audit_blocks
from bot.slack.blocks.common import MAX_BLOCKS, Message
from bot.slack.blocks.diagnosis import diagnosis_message
from bot.slack.blocks.help import help_message
from bot.slack.blocks.keys import keys_message
from bot.slack.capacity import prepare_capacity
from bot.slack.deps import SlackDeps, timed_diagnosis
from bot.slack.fix import FIX_USAGE, prepare_fix, prepare_pending
from bot.slack.fleet_filter import STATUS_USAGE, parse_filter, select_targets
from bot.slack.jobs import Job, Result
from bot.slack.parsing import (
    CAPACITY_USAGE,
    parse_count,
    parse_no_args,
    parse_target,
    split_command,
)
from bot.slack.report_cmd import REPORT_USAGE, prepare_report
from bot.slack.status import run_status

Prepare = Callable[[tuple[str, ...], SlackDeps], Job]


@dataclass(frozen=True)
class Subcommand:
    """One entry of the help text and the router."""

    name: str
    usage: str
    description: str
    prepare: Prepare


def prepare_help(args: tuple[str, ...], deps: SlackDeps, *, unknown: str | None = None) -> Job:
    """The help text (also the answer to an unknown subcommand)."""
    unknown = scrub_text(unknown)[:40] if unknown else None
    note = f"unknown subcommand {unknown!r}" if unknown else None
    usages = [(sub.usage, sub.description) for sub in SUBCOMMANDS]
    message = help_message(usages=usages, targets=list(deps.diagnosis.targets), note=note)
    parameters = {"unknown": unknown} if unknown else {}
    return Job(
        subcommand="help",
        run=lambda _request: Result(message=message, outcome="ok", summary="help shown"),
        parameters=parameters,
    )


def prepare_status(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """Every target (or those a glob / label=value filter chooses), worst first."""
    fleet = parse_filter(args)
    chosen = select_targets(fleet, deps.diagnosis.targets)
    count = len(chosen)
    return Job(
        subcommand="status",
        run=lambda _request: run_status(deps, chosen, scope=fleet.text()),
        progress=f"Checking {count} target{'s' if count != 1 else ''}…",
        parameters={"filter": fleet.text()} if not fleet.empty else {},
    )


def prepare_diagnose(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """The runbook diagnosis of one target."""
    target = deps.diagnosis.target(parse_target("diagnose", args)).name
    return Job(
        subcommand="diagnose",
        run=lambda _request: diagnosis_result(timed_diagnosis(deps, target)),
        progress=f"Diagnosing *{target}*…",
        target=target,
        parameters={"target": target},
    )


def prepare_keys(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """The session-key analysis of one target."""
    target = deps.diagnosis.target(parse_target("keys", args)).name
    return Job(
        subcommand="keys",
        run=lambda _request: keys_result(timed_diagnosis(deps, target)),
        progress=f"Measuring session keys on *{target}*…",
        target=target,
        parameters={"target": target},
    )


def prepare_alerts(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """Pending rules and firing alerts of every target, posted in the channel."""
    parse_no_args("alerts", args)
    return Job(
        subcommand="alerts",
        run=lambda request: run_alerts(deps, request),
        progress="Reading the alerts…",
    )


AUDIT_DEFAULT = 10
AUDIT_MAX = MAX_BLOCKS - 2  # one section per entry, plus the header and a "more" note


def prepare_audit(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """The newest N audit entries, shown to the asker only."""
    limit = parse_count("audit", args, default=AUDIT_DEFAULT, maximum=AUDIT_MAX)
    return Job(
        subcommand="audit",
        run=lambda _request: audit_result(deps, limit),
        progress="Reading the audit trail…",
        parameters={"limit": limit},
        ephemeral=True,
    )


def audit_result(deps: SlackDeps, limit: int) -> Result:
    """Read the trail (AuditUnavailable becomes the usual one-line error)."""
    if deps.audit_reader is None:
        raise AuditUnavailable("the audit trail is not configured in this process")
    entries = deps.audit_reader.list_entries(limit=limit)
    text = f"Audit trail: latest {len(entries)} entries"
    return Result(
        message=Message(text=text, blocks=audit_blocks(entries)),
        outcome="ok",
        summary=f"{len(entries)} audit entries shown",
    )


def diagnosis_result(diagnosis: Diagnosis) -> Result:
    """Outcome is the severity; the summary names the scenarios."""
    ids = ", ".join(s.id for s in diagnosis.scenarios) or "no scenario"
    return Result(
        message=diagnosis_message(diagnosis),
        outcome=diagnosis.severity.value,
        summary=f"{diagnosis.severity.value}: {ids}",
    )


def keys_result(diagnosis: Diagnosis) -> Result:
    """The key analysis; the summary keeps the TTL-leak number."""
    ttl = diagnosis.ttl
    ratio = f"{ttl.without_ttl_ratio:.0%}" if ttl.without_ttl_ratio is not None else "n/a"
    summary = (
        f"≈{diagnosis.session_keys} session keys, "
        f"{ttl.without_ttl} of {ttl.sampled} sampled without TTL ({ratio})"
    )
    return Result(message=keys_message(diagnosis), outcome="ok", summary=summary)


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("help", "help", "this help", prepare_help),
    Subcommand(
        "status", STATUS_USAGE, "every target (or a glob, label=value), worst first", prepare_status
    ),
    Subcommand(
        "diagnose", "diagnose [target]", "runbook diagnosis with fix buttons", prepare_diagnose
    ),
    Subcommand("keys", "keys [target]", "TTLs, sizes, largest and idle session keys", prepare_keys),
    Subcommand("capacity", CAPACITY_USAGE, "the runbook's capacity formula", prepare_capacity),
    Subcommand("fix", FIX_USAGE, "request a runbook fix (a second person approves)", prepare_fix),
    Subcommand("pending", "pending", "fix requests waiting for approval", prepare_pending),
    Subcommand("alerts", "alerts", "pending and firing alerts of every target", prepare_alerts),
    Subcommand(
        "report",
        REPORT_USAGE,
        "memory, trend, forecast, alerts and fixes over a window, with a chart",
        prepare_report,
    ),
    Subcommand(
        "audit", "audit [N]", "the latest N audit entries (only you see them)", prepare_audit
    ),
)
_BY_NAME = {sub.name: sub for sub in SUBCOMMANDS}


def route(text: str, deps: SlackDeps) -> Job:
    """The job for a command text; unknown subcommands get the help.

    Raises UsageError only, for any ``text``: its length is bounded (``bot.limits``)
    before anything splits, parses or scrubs it.
    """
    line = split_command(text)
    sub = _BY_NAME.get(line.name)
    if sub is None:
        return prepare_help((), deps, unknown=line.name)
    return sub.prepare(line.args, deps)


def known_subcommand(text: str) -> str:
    """The subcommand name for metrics/audit: a known name, else ``help`` (any text)."""
    words = text[:MAX_WORD_CHARS].split(maxsplit=1)
    name = words[0].lower() if words else "help"
    return name if name in _BY_NAME else "help"
