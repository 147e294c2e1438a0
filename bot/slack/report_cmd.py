"""``/redis-mem report [target] [Nm|Nh|Nd]``: the channel health report, on demand.

The same report as the scheduled one (chart included), posted in the channel where it
was asked. ``prepare`` checks the words at once (a bad window or an unknown target is
the one-line ack, nothing posted); the job reads the history and the live views after
the ack, and its ``deliver`` posts the message and uploads the chart in its thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from slack_sdk import WebClient

from bot.errors import ConfigError, RedisMemError, UsageError
from bot.limits import echo
from bot.reports.model import DEFAULT_WINDOW, Report
from bot.reports.window import WINDOW_USAGE, looks_like_window, parse_window, window_text
from bot.slack.blocks.common import Message, escape
from bot.slack.blocks.report import report_message
from bot.slack.deps import SlackDeps
from bot.slack.jobs import Deliver, Job, Result
from bot.slack.report_post import SlackReportPublisher
from bot.slack.request import SlashRequest

REPORT_USAGE = "report [target] [Nm|Nh|Nd]"
NOT_CONFIGURED = "reports are not configured in this process"


def parse_report_args(args: tuple[str, ...]) -> tuple[str | None, timedelta]:
    """``[target] [window]`` in either order -> (target or None, window); UsageError."""
    if len(args) > 2:
        raise UsageError(f"report: expected at most a target and a window (usage: {REPORT_USAGE})")
    target: str | None = None
    window: timedelta | None = None
    for word in args:
        if looks_like_window(word):
            if window is not None:
                raise UsageError(f'report: two windows given (got "{echo(word)}"; {WINDOW_USAGE})')
            window = parse_window(word)
        elif target is not None:
            raise UsageError(f'report: two targets given (got "{echo(word)}"; {REPORT_USAGE})')
        else:
            target = word
    return target, window or DEFAULT_WINDOW


def prepare_report(args: tuple[str, ...], deps: SlackDeps) -> Job:
    """Validate the window and the target now; build and post the report after the ack."""
    named, window = parse_report_args(args)
    # Only a named target is looked up: none means the channel's targets (or every one),
    # not the default target.
    target = deps.diagnosis.target(named).name if named is not None else None
    scope = f" of *{escape(target)}*" if target is not None else ""
    parameters: dict[str, str] = {"window": window_text(window)}
    if target is not None:
        parameters["target"] = target
    return Job(
        subcommand="report",
        run=lambda request: report_result(deps, request, window=window, target=target),
        progress=f"Building the {window_text(window)} report{scope}…",
        target=target,
        parameters=parameters,
    )


def report_result(
    deps: SlackDeps, request: SlashRequest, *, window: timedelta, target: str | None
) -> Result:
    """The report (AuditUnavailable, ConfigError: the usual one-line error), delivered by
    the publisher in the asker's channel."""
    if deps.reports is None:
        raise ConfigError(NOT_CONFIGURED)
    # Asked in a channel that has its own targets: that channel's report, as scheduled;
    # anywhere else (a DM, an ops channel with no targets): every target.
    channels = deps.reports.channels()
    channel = request.channel_id if target is None and request.channel_id in channels else None
    report = deps.reports.build(window=window, target=target, channel=channel)
    worst = report.targets[0].severity.value if report.targets else "ok"
    count = len(report.targets)
    summary = f"{window_text(window)} report of {count} target{'s' if count != 1 else ''}"
    return Result(
        message=report_message(report),
        outcome=worst,
        summary=summary,
        deliver=deliver_report(report, channel=request.channel_id),
    )


def deliver_report(report: Report, *, channel: str | None) -> Deliver:
    """Post through SlackReportPublisher (chart in the thread); a refusal is one line."""

    def deliver(client: WebClient, message: Message, say: Callable[[str], None]) -> None:
        if channel is None:
            say("⚠ report: no channel to post in")
            return
        try:
            SlackReportPublisher(client).publish(report, channel=channel, message=message)
        except RedisMemError as err:
            say(f"⚠ report: {err.message}")

    return deliver
