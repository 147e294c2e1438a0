"""The fix-request modal: one input per action parameter, prefilled with the computed default.

``private_metadata`` carries ``{action, target, channel}`` (where to post the
approval request); the parameters come back in ``view.state.values`` keyed
by parameter name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    InputBlock,
    Option,
    PlainTextInputElement,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.approvals.model import ActionForm
from bot.errors import UsageError
from bot.remediation.params import ParamSpec
from bot.slack.blocks.common import clip, context, escape, section

FIX_MODAL = "redis_mem.fix_modal"
VALUE_ACTION = "value"  # action_id of every input element (the block id is the parameter)
TITLE_MAX = 24  # Slack's limit for a modal title
METADATA_MAX = 3000
OPTIONS_MAX = 100


@dataclass(frozen=True)
class ModalContext:
    """What the modal remembers between opening and submission (nothing secret)."""

    action: str
    target: str
    channel: str | None

    def dumps(self) -> str:
        """JSON for ``private_metadata``."""
        data = {"action": self.action, "target": self.target, "channel": self.channel}
        return json.dumps(data, separators=(",", ":"))[:METADATA_MAX]

    @classmethod
    def loads(cls, text: str | None) -> ModalContext:
        """Inverse of ``dumps``; UsageError when the metadata is not ours."""
        try:
            data = json.loads(text or "")
            return cls(
                action=str(data["action"]),
                target=str(data["target"]),
                channel=str(data["channel"]) if data.get("channel") else None,
            )
        except (ValueError, TypeError, KeyError):
            raise UsageError("this form is not one the bot opened: request the fix again") from None


def fix_modal(form: ActionForm, *, channel: str | None) -> View:
    """The request modal for ``form``: inputs prefilled, submit asks for approval."""
    meta = ModalContext(action=form.action_id, target=form.target, channel=channel)
    blocks: list[Block] = [
        section(f"*{escape(form.title)}* on *{escape(form.target)}*"),
        context("Submitting posts a preview in the channel; a listed approver must approve it."),
    ]
    blocks.extend(param_input(spec, form.defaults.get(spec.name)) for spec in form.specs)
    if not form.specs:
        blocks.append(section("This action has no parameters."))
    return View(
        type="modal",
        callback_id=FIX_MODAL,
        title=clip("Request a fix", TITLE_MAX),
        submit="Request approval",
        close="Cancel",
        private_metadata=meta.dumps(),
        blocks=blocks,
    )


def param_input(spec: ParamSpec, default: str | None) -> InputBlock:
    """A select for choices and booleans, a text input for everything else."""
    return InputBlock(
        block_id=spec.name,
        label=clip(spec.label or spec.name, 2000),
        element=_element(spec, default),
        hint=clip(spec.help, 2000) if spec.help else None,
    )


def _element(spec: ParamSpec, default: str | None) -> PlainTextInputElement | StaticSelectElement:
    values = _choices(spec)
    if not values:
        return PlainTextInputElement(action_id=VALUE_ACTION, initial_value=default or None)
    options = [Option(value=v, label=clip(v, 75)) for v in values[:OPTIONS_MAX]]
    initial = next((o for o in options if o.value == (default or "").lower()), None)
    return StaticSelectElement(action_id=VALUE_ACTION, options=options, initial_option=initial)


def _choices(spec: ParamSpec) -> tuple[str, ...]:
    if spec.kind == "choice":
        return spec.choices
    if spec.kind == "bool":
        return ("true", "false")
    return ()


def submitted_values(view: Mapping[str, Any]) -> dict[str, str]:
    """Parameter name -> submitted text (selects give their option value); blanks left out."""
    values = ((view.get("state") or {}).get("values")) or {}
    out: dict[str, str] = {}
    for block_id, actions in values.items():
        element = (actions or {}).get(VALUE_ACTION) or {}
        selected = element.get("selected_option") or {}
        text = element.get("value") if "value" in element else selected.get("value")
        if text is not None and str(text).strip():
            out[str(block_id)] = str(text)
    return out


def field_errors(specs: tuple[ParamSpec, ...], values: Mapping[str, str]) -> dict[str, str]:
    """Checks that need no I/O (syntax, ranges), per field, for ``response_action=errors``."""
    errors: dict[str, str] = {}
    for spec in specs:
        if spec.name not in values:
            continue
        try:
            spec.parse(values[spec.name])
        except UsageError as err:
            errors[spec.name] = clip(err.message, 150)
    return errors


def error_view(text: str) -> View:
    """What replaces the modal when the submission cannot be handled at all."""
    return View(
        type="modal",
        title=clip("Request a fix", TITLE_MAX),
        close="Close",
        blocks=[section(f"⚠ {escape(text)}")],
    )
