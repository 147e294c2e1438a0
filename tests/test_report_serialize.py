"""The report's JSON (a contract) and its terminal table, from Report objects built directly.

No arithmetic is checked here (bot/reports/figures.py has its own tests): these faces
must show the figures they are given, under the names the contract fixes.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from rich.console import Console

from bot.diagnosis.capacity import plan_capacity
from bot.presenters.report import audit_head_line, render_report
from bot.reports.model import AlertFigures, Forecast, Outlook, Report
from bot.reports.serialize import report_json
from bot.reports.window import window_text
from tests.report_support import (
    HEAD,
    MB,
    UNTIL,
    make_alert,
    make_fix,
    make_live,
    make_report,
    make_target,
)

CONTRACT_TOP = {"generated_at", "since", "audit_head", "targets"}
CONTRACT_TARGET = {"target", "samples", "memory", "forecast", "evicted_keys", "keys", "alerts",
                   "fixes"}  # fmt: skip
CONTRACT_FIX = {"at", "action", "target", "outcome", "requester", "approver", "summary"}


def _full_report() -> Report:
    """Two targets: one critical with everything (alerts, fixes, a forecast, a live view),
    one quiet without a live view."""
    busy = make_target(
        "payments",
        ratio=0.86,
        evicted_keys=1_234,
        forecast=Forecast(
            outlook=Outlook.REACHES, ratio_90_at=UNTIL + timedelta(hours=5), hours_left=5.0
        ),
        alerts=AlertFigures(
            fired={"memory-critical": 2, "evictions": 1},
            firing_seconds=5400.0,
            open=(make_alert("payments", open_=True),),
        ),
        fixes=(make_fix("payments"), make_fix("payments", outcome="error", requester=None)),
        live=make_live("payments"),
    )
    quiet = make_target("search", ratio=0.2)
    return make_report(targets=(busy, quiet), timezone="Europe/Paris")


def test_json_has_the_contract_keys_with_the_given_figures() -> None:
    report = _full_report()
    doc = json.loads(json.dumps(report_json(report)))  # JSON-safe all the way down
    assert doc.keys() >= CONTRACT_TOP
    assert doc["generated_at"] == "2026-12-01T09:00:00Z"
    assert doc["since"] == "2026-11-30T09:00:00Z"
    assert doc["audit_head"] == {"seq": HEAD.seq, "hash": HEAD.hash, "anchor": HEAD.anchor}
    assert [t["target"] for t in doc["targets"]] == ["payments", "search"]
    busy = doc["targets"][0]
    assert busy.keys() >= CONTRACT_TARGET
    target = report.targets[0]
    assert busy["samples"] == target.samples == 12
    memory = target.memory
    assert busy["memory"]["now_ratio"] == memory.now_ratio
    assert busy["memory"]["peak_ratio"] == memory.peak_ratio
    assert busy["memory"]["min_ratio"] == memory.min_ratio
    assert busy["memory"]["trend_bytes_per_hour"] == memory.trend_bytes_per_hour
    assert busy["memory"]["now_bytes"] == memory.now_bytes
    assert busy["forecast"] == {
        "ratio_90_at": "2026-12-01T14:00:00Z",  # UTC in JSON, whatever the report's zone
        "hours_left": 5.0,
        "outlook": "reaches",
    }
    assert busy["evicted_keys"] == 1_234
    assert busy["keys"] == {"now": target.keys.now, "change": target.keys.change}
    assert busy["alerts"]["fired"] == {"memory-critical": 2, "evictions": 1}
    assert busy["alerts"]["firing_seconds"] == 5400.0
    assert [a["rule"] for a in busy["alerts"]["open"]] == ["memory-critical"]
    assert len(busy["fixes"]) == 2 and all(f.keys() >= CONTRACT_FIX for f in busy["fixes"])
    assert busy["fixes"][0]["approver"] == "U0BOB" and busy["fixes"][0]["action"] == "set-ttl"
    assert busy["fixes"][0]["requester"] == "U0ALICE" and busy["fixes"][1]["requester"] is None
    assert busy["fixes"][0]["at"] == "2026-12-01T07:00:00Z"
    assert busy["live"]["without_ttl"] == 400 and busy["live"]["scenarios"][0]["id"] == "ttl-leak"
    assert doc["window"] == window_text(timedelta(hours=24)) and doc["timezone"] == "Europe/Paris"


def test_json_of_an_empty_trail_and_a_target_without_samples() -> None:
    report = make_report(targets=(make_target("new", points=0),), audit_head=None)
    doc = report_json(report)
    assert doc["audit_head"] is None
    (new,) = doc["targets"]
    assert new["samples"] == 0
    assert new["memory"]["now_ratio"] is None and new["memory"]["trend_bytes_per_hour"] is None
    assert new["forecast"]["ratio_90_at"] is None and new["forecast"]["hours_left"] is None
    assert new["keys"] == {"now": None, "change": None}
    assert new["alerts"]["fired"] == {} and new["fixes"] == [] and new["live"] is None


def test_json_carries_the_capacity_line_and_plan() -> None:
    measured = plan_capacity(users=18_000, sessions_per_user=1, session_size=10_000)
    plan = replace(measured, users=None, sessions_per_user=None, current_maxmemory=512 * MB)
    target = make_target("payments", live=make_live("payments", capacity=plan))
    doc = report_json(make_report(targets=(target,)))
    capacity = doc["targets"][0]["capacity"]
    assert capacity["line"] == target.capacity_line and capacity["line"].startswith("maxmemory")
    assert capacity["plan"]["sessions"] == 18_000


def _text(report: Report, width: int = 200) -> str:
    """What ``print_report`` shows, on a console of ``width`` columns."""
    console = Console(width=width, record=True, color_system=None)
    console.print(render_report(report))
    console.print(audit_head_line(report), markup=False, soft_wrap=True)
    return console.export_text()


def test_the_table_shows_every_target_worst_first_and_the_audit_head() -> None:
    text = _text(_full_report())
    assert text.index("payments") < text.index("search")
    row = next(line for line in text.splitlines() if "payments" in line and "86%" in line)
    # now / peak / min, the trend in MB/h, the forecast in the report's zone (Paris: UTC+1)
    assert "86%/86%/69%" in row
    assert "12-01 15:00 (5h)" in row
    assert "1,234" in row and "400 (40%)" in row
    assert "3/1.5h/1" in row
    assert "payments: fix set-ttl ok at 2026-12-01 08:00" in text
    assert "requested by unknown" in text  # the request's row is not in the trail
    assert "payments: scenarios now: ttl-leak" in text
    assert "payments: memory-critical firing since 2026-12-01 07:00" in text
    assert text.rstrip().splitlines()[-1] == f"audit head: {HEAD.seq}:{HEAD.hash}"


def test_the_forecast_words_and_an_empty_trail() -> None:
    targets = tuple(
        make_target(name, forecast=Forecast(outlook=outlook))
        for name, outlook in (("a", Outlook.BEYOND), ("b", Outlook.NOT_RISING),
                              ("c", Outlook.ALREADY), ("d", Outlook.UNKNOWN))
    )  # fmt: skip
    text = _text(make_report(targets=targets, audit_head=None))
    rows = [line.split(maxsplit=1) for line in text.splitlines()]
    lines = {row[0]: row[1] for row in rows if row and row[0] in {"a", "b", "c", "d"}}
    assert "> 30 days" in lines["a"] and "not rising" in lines["b"]
    assert "at 90% now" in lines["c"] and "n/a" in lines["d"]
    assert "audit head: none (the audit trail is empty)" in text


def test_the_audit_head_is_never_wrapped_on_a_narrow_terminal() -> None:
    text = _text(make_report(), width=40)
    assert f"audit head: {HEAD.anchor}" in text.splitlines()


def test_without_samples_or_maxmemory() -> None:
    nolimit = make_target("cache", ratio=0.5)
    nolimit = replace(
        nolimit, memory=replace(nolimit.memory, now_ratio=None, peak_ratio=None, min_ratio=None)
    )
    text = _text(make_report(targets=(make_target("new", points=0), nolimit)))
    assert "no samples" in text
    assert "(no limit)" in text and " MB/" in text


def test_markup_in_names_and_summaries_is_text() -> None:
    target = make_target("[bold]x[/bold]", fixes=(make_fix("t", summary="[/red]"),))
    text = _text(make_report(targets=(target,)))
    assert "[bold]x[/bold]" in text
