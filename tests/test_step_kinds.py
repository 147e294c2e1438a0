"""Step kinds, not step labels, decide what a result says (renaming a label is safe)."""

from __future__ import annotations

from bot.errors import RedisMemError
from bot.remediation.actions.base import Run
from bot.remediation.model import StepKind


def _fail() -> str:
    raise RedisMemError("refused")


def test_checks_are_left_out_and_unattempted_steps_are_said_so_whatever_their_labels() -> None:
    run = Run("an-action")
    run.step("verify resourceVersion", lambda: "unchanged", kind=StepKind.CHECK)
    run.step("set it live", lambda: "live x 1 -> 2", kind=StepKind.LIVE)
    run.step("write the file", _fail)
    run.step("roll the pod", lambda: "never", kind=StepKind.POD)
    result = run.result()
    assert result.state == (
        "live x 1 -> 2; write the file NOT changed (refused); "
        "roll the pod NOT changed (not attempted)"
    )
    assert run.failed is not None and run.failed.kind is StepKind.CHANGE
    assert [s.name for s in run.of_kind(StepKind.LIVE)] == ["set it live"]
    assert [s.attempted for s in result.steps] == [True, True, True, False]


def test_a_step_that_says_not_attempted_itself_is_still_an_attempt() -> None:
    run = Run("an-action")

    def odd() -> str:
        raise RedisMemError("not attempted")

    run.step("ConfigMap", odd)
    assert run.result().steps[0].attempted
