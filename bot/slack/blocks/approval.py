"""The approval request message, rendered for every state of the request.

One function renders a request whatever its state, so each update (executing,
progress, result, verification, rejected, expired) is a re-render of the
stored request: the message never holds anything the server does not.
Buttons carry the request id and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
)

from bot.approvals.model import ApprovalRequest, RequestState
from bot.approvals.unrecorded import RECORDED_LATE_KEY, backlog_of
from bot.errors import UsageError
from bot.remediation.actions.key_runs import cancellable
from bot.remediation.catalogue import get_action
from bot.remediation.model import Change, RemediationLimits
from bot.slack.blocks.common import (
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    SECTION_TEXT_MAX,
    Message,
    bullet_sections,
    clip,
    context,
    escape,
    fit_middle,
    mention,
    section,
)
from bot.units import format_bytes

APPROVE_ACTION = "redis_mem.approve"
REJECT_ACTION = "redis_mem.reject"
CANCEL_ACTION = "redis_mem.cancel"  # value: the request id only, like approve/reject
BUTTONS_BLOCK = "redis_mem.approval"
CANCEL_BLOCK = "redis_mem.running"
DIFF_LINES_MAX = 30  # per change; a diff longer than that is cut with a note
CODE_BLOCK_MAX = SECTION_TEXT_MAX - 500  # room for the change line and the fences

STATE_HEAD = {
    RequestState.PENDING: "🛠 Approval needed",
    RequestState.EXECUTING: "⏳ Executing",
    RequestState.SUCCEEDED: "✅ Done",
    RequestState.FAILED: "❌ Failed",
    RequestState.REJECTED: "⛔ Rejected",
    RequestState.EXPIRED: "⌛ Expired",
    RequestState.REFUSED: "🚫 Not executed",
    RequestState.INTERRUPTED: "💥 Interrupted",
    RequestState.CANCELLED: "🛑 Cancelled",
}
# The final states that ran (part of) the change: they show the result, keys and verification.
RAN = (
    RequestState.SUCCEEDED,
    RequestState.FAILED,
    RequestState.CANCELLED,
    RequestState.INTERRUPTED,
)
RISK_MARK = {"low": "🟢", "medium": "🟠", "high": "🔴"}
UNRECORDED_HEAD = "⚠️ Applied, not recorded"  # succeeded, but its audit rows are still owed


def approval_message(request: ApprovalRequest) -> Message:
    """The request as one message: what, who, until when, the preview, and its state."""
    head: list[Block] = [
        HeaderBlock(text=clip(headline(request), HEADER_TEXT_MAX)),
        section(who_line(request)),
    ]
    tail = [*state_blocks(request), context(footer(request))]
    blocks = fit_middle(head=head, middle=preview_blocks(request), tail=tail)
    return Message(text=clip(fallback_text(request), FALLBACK_TEXT_MAX), blocks=blocks)


def headline(request: ApprovalRequest) -> str:
    """``🛠 Approval needed: Raise maxmemory on prod``."""
    title = str(request.preview.get("title") or request.action_id)
    head = STATE_HEAD[request.state]
    if request.state is RequestState.SUCCEEDED and backlog_of(request) is not None:
        head = UNRECORDED_HEAD
    return f"{head}: {title} on {request.target}"


def who_line(request: ApprovalRequest) -> str:
    """Requester, risk, runbook reference and expiry."""
    risk = str(request.preview.get("risk") or "unknown")
    runbook = escape(str(request.preview.get("runbook") or ""))
    parts = [
        f"Requested by {mention(request.requester)}",
        f"risk {RISK_MARK.get(risk, '⚪')} *{escape(risk)}*",
    ]
    if runbook:
        parts.append(f"runbook: {runbook}")
    if request.state is RequestState.PENDING:
        parts.append(f"expires {slack_time(request.expires_at)}")
    return " · ".join(parts)


def preview_blocks(request: ApprovalRequest) -> list[Block]:
    """Parameters, each concrete change (ConfigMap diffs in code blocks), and the warnings."""
    preview = request.preview
    blocks: list[Block] = []
    params = param_lines(request.action_id, request.params)
    if params:
        blocks.append(section("*Parameters*\n" + "\n".join(params)))
    blocks.extend(change_blocks(preview.get("changes") or []))
    warnings = warning_lines(preview)
    if warnings:
        blocks.extend(bullet_sections(["*Read before approving*", *warnings]))
    return blocks


def param_lines(action_id: str, params: Mapping[str, Any]) -> list[str]:
    """``• New maxmemory: `1.0 GB``` with the action's labels (raw names if unknown)."""
    try:
        shown = get_action(action_id).show_params(RemediationLimits(), dict(params))
    except (UsageError, KeyError, TypeError, ValueError):
        shown = {name: str(value) for name, value in params.items()}
    return [f"• {escape(label)}: `{escape(value)}`" for label, value in shown.items()]


def change_blocks(changes: Sequence[Mapping[str, Any]]) -> list[Block]:
    """``*What will change*`` then one line per change, each diff in a code block."""
    if not changes:
        return [section("*What will change*\nnothing: the values are already in place")]
    lines = ["*What will change*"]
    for change in changes:
        lines.append(f"• {escape(change_line(change))}")
        diff = [str(d) for d in change.get("diff") or []]
        if diff:
            lines.append(code_block(diff))
    text = "\n".join(lines)
    if len(text) <= SECTION_TEXT_MAX:
        return [section(text)]
    # Too long for one section: one per change (fit_middle keeps the buttons regardless).
    return [section(line) for line in lines]


def change_line(change: Mapping[str, Any]) -> str:
    """The stored change in ``Change.line``'s words (``where: before -> after``)."""
    return Change(
        where=str(change.get("where", "")),
        before=str(change.get("before") or ""),
        after=str(change.get("after", "")),
    ).line()


def code_block(lines: Sequence[str]) -> str:
    """A ``` block that fits one section whole (a cut block would lose its closing fence).

    Backticks inside are defused so a line cannot close the block early.
    """
    shown: list[str] = []
    size = 0
    for line in lines[:DIFF_LINES_MAX]:
        text = escape(clip(line, 200)).replace("```", "ˋˋˋ")
        if size + len(text) > CODE_BLOCK_MAX:
            break
        shown.append(text)
        size += len(text) + 1
    if len(shown) < len(lines):
        shown.append(f"… {len(lines) - len(shown)} more lines")
    body = "\n".join(shown)
    return f"```\n{body}\n```"


def warning_lines(preview: Mapping[str, Any]) -> list[str]:
    """Data loss and logged-out users first, in plain words, then the action's own warnings."""
    lines = []
    if preview.get("loses_data"):
        lines.append("🔥 *Loses data*: what this deletes or restarts cannot be brought back")
    if preview.get("logs_users_out"):
        lines.append("🚪 *Logs users out*: affected users must sign in again")
    lines.extend(f"⚠ {escape(str(w))}" for w in preview.get("warnings") or [])
    return lines


def state_blocks(request: ApprovalRequest) -> list[Block]:
    """Buttons while pending; afterwards who decided, progress, result and verification."""
    state = request.state
    if state is RequestState.PENDING:
        return [DividerBlock(), buttons(request)]
    if state is RequestState.EXECUTING:
        running: list[Block] = [DividerBlock(), section(executing_text(request))]
        if cancellable(request.action_id) and not request.cancel_requested_by:
            running.append(cancel_button(request))
        return running
    if state in RAN:
        return [DividerBlock(), *result_blocks(request)]
    return [DividerBlock(), section(closed_text(request))]


def buttons(request: ApprovalRequest) -> ActionsBlock:
    """Approve (primary; confirmed first when the risk is high) and Reject (danger)."""
    confirm = None
    if request.preview.get("risk") == "high" or request.preview.get("loses_data"):
        confirm = ConfirmObject(
            title="Approve this change?",
            text=MarkdownTextObject(
                text=clip(f"{headline(request)}. This may lose data or log users out.", 300)
            ),
            confirm="Approve",
            deny="Cancel",
        )
    approve = ButtonElement(
        text="Approve", action_id=APPROVE_ACTION, value=request.id, style="primary", confirm=confirm
    )
    reject = ButtonElement(text="Reject", action_id=REJECT_ACTION, value=request.id, style="danger")
    return ActionsBlock(block_id=BUTTONS_BLOCK, elements=[approve, reject])


def cancel_button(request: ApprovalRequest) -> ActionsBlock:
    """Cancel (danger, confirmed): the requester or an approver stops the key action."""
    confirm = ConfirmObject(
        title="Cancel this fix?",
        text=MarkdownTextObject(
            text="It stops before its next batch; the keys already changed stay changed."
        ),
        confirm="Cancel it",
        deny="Let it run",
    )
    cancel = ButtonElement(
        text="Cancel", action_id=CANCEL_ACTION, value=request.id, style="danger", confirm=confirm
    )
    return ActionsBlock(block_id=CANCEL_BLOCK, elements=[cancel])


def executing_text(request: ApprovalRequest) -> str:
    """``⏳ Approved by <@U2>: executing…`` and the latest progress line."""
    who = f"Approved by {mention(request.decided_by)}" if request.decided_by else "Approved"
    text = f"⏳ *{who}: executing…*"
    if request.progress:
        text += f"\n{escape(request.progress)}"
    if request.cancel_requested_by:
        text += f"\n🛑 Cancel requested by {mention(request.cancel_requested_by)}: stopping"
    elif cancellable(request.action_id):
        text += "\n_The requester or an approver can cancel it: it stops before its next batch._"
    return text


def closed_text(request: ApprovalRequest) -> str:
    """Rejected, cancelled, expired, or refused by the re-check: nothing ran."""
    state = request.state
    if state is RequestState.REJECTED:
        if request.decided_by and request.decided_by == request.requester:
            return f"⛔ *Cancelled by the requester* {mention(request.requester)}: nothing changed"
        return f"⛔ *Rejected by {mention(request.decided_by)}*: nothing changed"
    if state is RequestState.EXPIRED:
        return (
            f"⌛ *Expired* {slack_time(request.expires_at)} without approval: nothing changed. "
            "Request it again if it is still needed."
        )
    reason = escape(request.error or "the situation changed since the preview")
    return f"🚫 *Not executed*: {reason}. Nothing changed; request it again."


def result_blocks(request: ApprovalRequest) -> list[Block]:
    """What ran (each step), the exact state line, keys touched, then the verification."""
    result: Mapping[str, Any] = request.result or {}
    lines = [*outcome_lines(request)]
    lines.extend(step_line(step) for step in result.get("steps") or [])
    state_line = result.get("state") or request.error
    if state_line:
        lines.append(f"*State*: {escape(str(state_line))}")
    if result.get("keys_changed") is not None:
        lines.append(f"*Keys changed*: {int(result['keys_changed']):,}")
    elif result.get("keys_changed_at_least") is not None:
        at_least = int(result["keys_changed_at_least"])
        lines.append(f"*Keys changed*: at least {at_least:,} (its last progress report)")
    blocks: list[Block] = list(bullet_sections(lines, max_sections=2))
    verification = result.get("verification")
    if isinstance(verification, Mapping):
        blocks.append(section(verification_text(verification)))
    return blocks


def outcome_lines(request: ApprovalRequest) -> list[str]:
    """``✅ *Done* (approved by …)``; or that it was applied but is not in the audit trail yet."""
    ok = request.state is RequestState.SUCCEEDED
    who = f" (approved by {mention(request.decided_by)})" if request.decided_by else ""
    backlog = backlog_of(request)
    if request.state is RequestState.INTERRUPTED:
        return [f"💥 *Interrupted*: the bot process running it stopped{who}"]
    if request.state is RequestState.CANCELLED:
        by = (request.result or {}).get("cancelled_by") or request.cancel_requested_by
        lines = [f"🛑 *Cancelled* by {mention(str(by)) if by else 'request'}{who}"]
        if backlog is not None:
            lines.append(f"⚠️ Not recorded in the audit trail: {escape(backlog.reason)}")
        return lines
    if backlog is None:
        lines = [f"{'✅' if ok else '❌'} *{'Done' if ok else 'Failed'}*{who}"]
        late = (request.result or {}).get(RECORDED_LATE_KEY)
        if isinstance(late, Mapping):
            lines.append(f"📝 Its audit rows were recorded late, {_late_time(late.get('at'))}")
        return lines
    reason = escape(backlog.reason)
    owed = "the missing audit rows are written as soon as the database takes them"
    if ok:
        return [f"⚠️ Applied, but not recorded in the audit trail: {reason}{who}", f"_{owed}_"]
    return [f"❌ *Failed*{who}", f"⚠️ Not recorded in the audit trail: {reason}", f"_{owed}_"]


def _late_time(value: Any) -> str:
    try:
        return slack_time(datetime.fromisoformat(str(value)))
    except ValueError:
        return "later"


def step_line(step: Any) -> str:
    """``✅ ConfigMap: … set maxmemory 1024mb``."""
    if not isinstance(step, Mapping):
        return f"• {escape(str(step))}"
    mark = "✅" if step.get("ok") else "❌"
    detail = clip(str(step.get("detail", "")), 400)
    return f"{mark} {escape(str(step.get('name', '')))}: {escape(detail)}"


def verification_text(v: Mapping[str, Any]) -> str:
    """Memory, evictions and keys before -> after, and the verdict."""
    memory = (
        f"{format_bytes(v.get('used_memory_before'))}{ratio(v.get('usage_ratio_before'))} → "
        f"{format_bytes(v.get('used_memory_after'))}{ratio(v.get('usage_ratio_after'))}"
    )
    lines = [
        f"*Verification*: {escape(str(v.get('verdict', '')))}",
        f"• memory: {memory}",
        f"• evicted keys: {count(v.get('evicted_keys_before'))} → "
        f"{count(v.get('evicted_keys_after'))}",
        f"• keys: {count(v.get('dbsize_before'))} → {count(v.get('dbsize_after'))} "
        f"(sessions ≈ {count(v.get('session_keys_before'))} → "
        f"{count(v.get('session_keys_after'))})",
    ]
    lines.extend(f"• {escape(str(d))}" for d in v.get("details") or [])
    return "\n".join(lines)


def footer(request: ApprovalRequest) -> str:
    """Request id (for the audit trail) and when it was made."""
    made = request.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    rule = " · a listed approver other than the requester approves" if _pending(request) else ""
    return f"request `{request.id}` · requested {made}{rule}"


def fallback_text(request: ApprovalRequest) -> str:
    """Notification text."""
    return f"{headline(request)} (requested by {request.requester_name or request.requester})"


def slack_time(when: datetime) -> str:
    """A time Slack shows in the reader's time zone, with a UTC fallback."""
    utc = when.astimezone(UTC)
    return f"<!date^{int(utc.timestamp())}^{{time}}|{utc.strftime('%H:%M UTC')}>"


def ratio(value: Any) -> str:
    """`` (57%)`` or nothing."""
    return f" ({float(value):.0%})" if isinstance(value, int | float) else ""


def count(value: Any) -> str:
    """``1,204``, or ``?`` when unknown."""
    return f"{int(value):,}" if isinstance(value, int | float) else "?"


def _pending(request: ApprovalRequest) -> bool:
    return request.state is RequestState.PENDING


def pending_message(requests: Sequence[ApprovalRequest], *, now: datetime) -> Message:
    """``/redis-mem pending``: each open request with its requester and time left."""
    if not requests:
        text = "No fix requests are waiting for approval."
        return Message(text=text, blocks=[section(text)])
    lines = [f"*Waiting for approval* ({len(requests)})"]
    lines.extend(pending_line(request, now=now) for request in requests)
    text = f"{len(requests)} fix request(s) waiting for approval"
    blocks: list[Block] = [*bullet_sections(lines, max_sections=10)]
    return Message(text=text, blocks=blocks)


def pending_line(request: ApprovalRequest, *, now: datetime) -> str:
    """``• `raise-maxmemory` on *prod* by <@U1> · expires in 12 min · `abcd…```."""
    left = max(0, int((request.expires_at - now).total_seconds()))
    minutes = (left + 59) // 60
    return (
        f"• `{escape(request.action_id)}` on *{escape(request.target)}* by "
        f"{mention(request.requester)} · expires in {minutes} min · request `{request.id[:8]}`"
    )
