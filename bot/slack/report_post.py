"""Post a report: the message with chat.postMessage, then its chart in the message's thread.

The message is the report; the chart only illustrates it. So once the message is
posted, nothing about the chart (drawing it, or Slack refusing the upload) undoes it
or raises: one thread reply and one log line say the chart is missing. A report with
no samples has no chart (the message says so) and nothing is uploaded. Rate limits
and 5xx are retried by the client's own handlers (bot/slack/retry.py), not here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.errors import RedisMemError
from bot.reports.model import Report
from bot.reports.window import window_text
from bot.slack.blocks.common import Message, clip
from bot.slack.blocks.report import local, report_message
from bot.slack.publish import FALLBACK_ERRORS
from bot.slack.retry import CallFailure

log = logging.getLogger(__name__)

RenderPng = Callable[[Report], bytes | None]


def default_render_png(report: Report) -> bytes | None:
    """bot.reports.chart.render_png, imported when a chart is drawn (matplotlib is heavy)."""
    from bot.reports.chart import render_png

    return render_png(report)


class SlackReportPublisher:
    """``bot.reports.ports.ReportPublisher`` for Slack."""

    def __init__(self, client: WebClient, *, render_png: RenderPng | None = None) -> None:
        """``client`` carries the retry handlers; ``render_png`` draws the chart (None: the
        report has nothing to draw)."""
        self._client = client
        self._render_png = render_png or default_render_png

    def publish(
        self, report: Report, *, channel: str, message: Message | None = None
    ) -> str | None:
        """Post ``message`` (default: the report's) in ``channel``, then the chart in its
        thread; the message's ts. RedisMemError (one line) when Slack refused the message."""
        shown = message or report_message(report)
        try:
            response = self._client.chat_postMessage(
                channel=channel, text=shown.text, blocks=shown.blocks
            )
        except (SlackApiError, OSError) as err:
            raise RedisMemError(unposted(CallFailure.of(err), channel=channel)) from None
        ts = response.get("ts")
        if ts is None:  # nothing to thread the chart under
            log.warning("chat.postMessage of the report in %s answered no ts", channel)
            return None
        # Slack answers with the channel's id (a name or a user id was given): uploads need it.
        posted_in = str(response.get("channel") or channel)
        if report.has_samples:
            self._attach_chart(report, channel=posted_in, ts=str(ts))
        return str(ts)

    def _attach_chart(self, report: Report, *, channel: str, ts: str) -> None:
        """Draw and upload the chart in the thread; a failure is one reply and one log line."""
        try:
            png = self._render_png(report)
        except Exception:  # a chart bug must not lose the posted report; the log has it
            log.exception("the report's chart could not be drawn")
            self._reply(
                channel=channel, ts=ts, text="⚠ the chart could not be drawn (see the bot's log)"
            )
            return
        if png is None:
            return
        try:
            self._client.files_upload_v2(
                channel=channel,
                thread_ts=ts,
                file=png,
                filename=chart_filename(report),
                title=chart_title(report),
                initial_comment=None,
            )
        except (SlackClientError, OSError) as err:
            why = upload_failure(err)
            log.warning("the report's chart could not be uploaded in %s: %s", channel, why)
            self._reply(channel=channel, ts=ts, text=f"⚠ the chart could not be uploaded ({why})")

    def _reply(self, *, channel: str, ts: str, text: str) -> None:
        """One line in the report's thread; a log line when even that fails."""
        try:
            self._client.chat_postMessage(channel=channel, thread_ts=ts, text=text)
        except (SlackApiError, OSError) as err:
            log.warning(
                "could not reply in the report's thread in %s: %s",
                channel,
                CallFailure.of(err).error,
            )


def unposted(failure: CallFailure, *, channel: str) -> str:
    """``could not post the report in C123: invite the bot to this channel``."""
    if failure.error in FALLBACK_ERRORS:
        why = "invite the bot to this channel"
    else:
        why = answered(failure)
    return f"could not post the report in {channel}: {why}"


def answered(failure: CallFailure) -> str:
    """``Slack answered ratelimited``, or ``no answer from Slack (…)`` when none came."""
    if failure.status is None:
        return f"no answer from Slack ({failure.error})"
    return f"Slack answered {failure.error}"


def upload_failure(err: SlackClientError | OSError) -> str:
    """Why an upload failed, in one short line (Slack's code when it answered one)."""
    if isinstance(err, SlackApiError | OSError):
        failure = CallFailure.of(err)
        if failure.error == "missing_scope":
            return "the bot needs the files:write scope"
        return answered(failure)
    # slack_sdk's own refusals (an upload URL that answered non-200, a malformed answer).
    return clip(str(err).splitlines()[0], 200) if str(err) else type(err).__name__


def chart_filename(report: Report) -> str:
    """``redis-mem-report-2026-12-01.png`` (the report's date in its timezone)."""
    day = local(report.generated_at, report.zone, "%Y-%m-%d")
    return f"redis-mem-report-{day}.png"


def chart_title(report: Report) -> str:
    """``Redis memory, % of maxmemory — last 24h``."""
    return f"Redis memory, % of maxmemory — last {window_text(report.window)}"
