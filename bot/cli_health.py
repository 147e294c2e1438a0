"""What ``redis-mem check``, ``watch`` and ``demo`` do, kept apart from argument parsing.

Each function returns the process exit code; expected failures raise RedisMemError
subclasses, which ``bot.cli.main`` prints as one line with exit code 2. Heavy modules
(SQLAlchemy, redis, the health service) are imported inside the functions: the CLI
starts fast for every other command.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.text import Text

from bot.clikit import EXIT_CRITICAL, EXIT_OK, print_json, record_cli, warn
from bot.config import Settings, Target
from bot.diagnosis.model import Diagnosis, Severity
from bot.errors import RedisMemError
from bot.presenters.terminal import stdout_console
from bot.targets_file import load_targets, pick_target

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from bot.health.service import TargetCheck


def chosen_targets(settings: Settings, name: str | None) -> dict[str, Target]:
    """Every configured target, or only ``name`` (TargetNotFound when there is none)."""
    targets = load_targets(settings)
    if name is None:
        return targets
    target = pick_target(targets, name)
    return {target.name: target}


# check ------------------------------------------------------------------------------------


def check_command(*, target: str | None, as_json: bool) -> int:
    """``redis-mem check``: every rule evaluated once now; exit 1 when a critical one holds."""
    from bot.wiring import history_engine

    settings = Settings.load()
    engine, no_history = history_engine(settings)
    # A trail that cannot be read is neither created nor written: check stays read-only.
    audit = _CommandAudit(settings, "command.check", target=target, enabled=no_history is None)
    try:
        checks, warning = _run_check(settings, engine=engine, target=target)
    except RedisMemError as err:
        audit.record("error", err.message, quiet=True)
        raise
    finally:
        engine.dispose()
    if no_history is not None:
        warning = f"no stored history used, check not audited: {no_history}"
    if warning:
        warn(warning)
    outcome, summary = check_outcome(checks)
    audit.record(outcome.value, summary)
    _show_check(checks, as_json=as_json)
    return EXIT_CRITICAL if outcome is Severity.CRITICAL else EXIT_OK


class _CommandAudit:
    """The ``record_cli`` row of one command, its parameters fixed once."""

    def __init__(
        self,
        settings: Settings,
        action: str,
        *,
        target: str | None,
        parameters: dict[str, Any] | None = None,
        enabled: bool = True,
    ) -> None:
        self._settings = settings
        self._action = action
        self._target = target
        self._parameters = parameters or {"target": target}
        self._enabled = enabled

    def record(self, outcome: str, summary: str, *, quiet: bool = False) -> None:
        """Write the row (``quiet``: no warning line when the trail is down)."""
        if self._enabled:
            record_cli(
                self._settings,
                action=self._action,
                outcome=outcome,
                summary=summary,
                target=self._target,
                parameters=self._parameters,
                quiet=quiet,
            )


def _run_check(
    settings: Settings, *, engine: Engine, target: str | None
) -> tuple[list[TargetCheck], str | None]:
    from bot.wiring import health_service

    targets = chosen_targets(settings, target)
    # check_now stores nothing and audits nothing: the audit sink is never written.
    service = health_service(settings, engine=engine, targets=targets)
    try:
        return service.check_now()
    finally:
        service.close()


def check_outcome(checks: Sequence[TargetCheck]) -> tuple[Severity, str]:
    """The worst severity whose condition holds now (``for`` aside), and the audit summary
    naming every rule that holds."""
    held = [(c.target, o) for c in checks for o in c.outcomes if o.reading.holds]
    if not held:
        return Severity.OK, f"ok: no rule holds on {', '.join(c.target for c in checks)}"
    worst = max((o.rule.config.severity for _, o in held), key=lambda s: s.rank)
    named = ", ".join(f"{target} {o.rule.id} {o.status}" for target, o in held)
    return worst, f"{worst.value}: {named}"


def _checked_at(checks: Sequence[TargetCheck]) -> datetime:
    return min(check.sample.at for check in checks)


def _show_check(checks: Sequence[TargetCheck], *, as_json: bool) -> None:
    from bot.health.serialize import check_to_dict
    from bot.presenters.health import render_check
    from bot.presenters.terminal import print_renderable

    if as_json:
        print_json(check_to_dict(checks, checked_at=_checked_at(checks)))
    else:
        print_renderable(render_check(checks, checked_at=_checked_at(checks)))


# watch ------------------------------------------------------------------------------------


def watch_command(*, target: str | None, rounds: int | None) -> int:
    """``redis-mem watch``: check rounds in the foreground, one line per alert event.

    Ends after ``rounds`` rounds, or at Ctrl-C (exit 0 either way).
    """
    from bot.presenters.health import TerminalNotifier, print_line, watch_header
    from bot.wiring import watch_checks

    settings = Settings.load()
    params: dict[str, Any] = {"target": target, "rounds": rounds}
    audit = _CommandAudit(settings, "command.watch", target=target, parameters=params)
    try:
        targets = chosen_targets(settings, target)
        checks = watch_checks(settings, targets=targets, notifier=TerminalNotifier())
    except RedisMemError as err:
        audit.record("error", err.message, quiet=True)
        raise
    try:
        audit.record("ok", f"watching {', '.join(targets)} every {settings.check_interval}s")
        header = watch_header(
            targets=targets,
            rules=checks.service.rules,
            interval=settings.check_interval,
            repeat_interval=settings.repeat_interval,
        )
        print_line(Text(header, style="bold"))
        for done, _ in enumerate(checks.paced(), start=1):
            if rounds is not None and done >= rounds:
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a foreground watch ends: no traceback, exit 0
    finally:
        checks.close()
    return EXIT_OK


# demo -------------------------------------------------------------------------------------


def demo_command(*, as_json: bool) -> int:
    """``redis-mem demo``: each runbook scenario in a throwaway redis-server, diagnosed, then
    the alert life cycle (pending, firing, escalated, reminder, resolved) in another."""
    from bot.demo_alerts import ALERT_SCENARIO, run_alert_demo
    from bot.health.serialize import event_to_dict
    from bot.presenters.health import TerminalNotifier, print_line

    settings = Settings.load()
    results: list[dict[str, Any]] = []
    seen = _diagnosis_demos(settings, results, as_json=as_json)
    if not as_json:
        stdout_console().rule(f"demo store: {ALERT_SCENARIO}")

    def narrate(line: str) -> None:
        print_line(Text(f"-- {line}", style="dim"))

    events = run_alert_demo(
        notifier=None if as_json else TerminalNotifier(),
        narrate=(lambda _: None) if as_json else narrate,
    )
    seen.append(f"{ALERT_SCENARIO}=" + ">".join(e.kind.value for e in events))
    results.append({"demo_scenario": ALERT_SCENARIO, "events": [event_to_dict(e) for e in events]})
    record_cli(
        settings, action="command.demo", outcome="ok", summary="demo stores: " + ", ".join(seen)
    )
    if as_json:
        print_json(results)
    return EXIT_OK


def _diagnosis_demos(
    settings: Settings, results: list[dict[str, Any]], *, as_json: bool
) -> list[str]:
    """Run the diagnosis scenarios, showing each (or adding it to ``results``); their verdicts."""
    from bot.demo import run_demo
    from bot.diagnosis.serialize import diagnosis_to_dict
    from bot.presenters.terminal import print_renderable, render_diagnosis
    from bot.wiring import probe_for

    seen: list[str] = []

    def show(scenario: str, diagnosis: Diagnosis) -> None:
        seen.append(f"{scenario}={diagnosis.severity.value}")
        if as_json:
            results.append({"demo_scenario": scenario, **diagnosis_to_dict(diagnosis)})
            return
        stdout_console().rule(f"demo store: {scenario}")
        print_renderable(render_diagnosis(diagnosis))

    run_demo(on_result=show, probe_for=probe_for(settings), thresholds=settings.thresholds)
    return seen
