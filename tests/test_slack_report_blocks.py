"""The report message: an SRE's words for each figure, and Slack's limits for 100 targets."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from bot.diagnosis.capacity import plan_capacity
from bot.reports.model import (
    AlertFigures,
    Forecast,
    Outlook,
    Report,
)
from bot.slack.blocks.common import HEADER_TEXT_MAX, MAX_BLOCKS, SECTION_TEXT_MAX
from bot.slack.blocks.report import NO_CHART, NO_SAMPLES, report_message
from tests.report_support import (
    HEAD,
    UNTIL,
    make_alert,
    make_fix,
    make_live,
    make_report,
    make_target,
)
from tests.slackcheck import all_text, rebuilt


def rendered(report: Report, **kwargs: Any) -> list[dict[str, Any]]:
    """The message's blocks as Slack receives them, parsed back by slack_sdk."""
    message = report_message(report, **kwargs)
    return rebuilt([block.to_dict() for block in message.blocks])


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    """Slack's hard limits: 50 blocks, 3,000 characters a section, 150 a header."""
    assert len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_TEXT_MAX
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_TEXT_MAX


def section_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def test_100_targets_fit_one_message_worst_ten_in_full_the_rest_one_line_each() -> None:
    report = make_report(100)
    blocks = rendered(report)
    assert_within_limits(blocks)
    texts = section_texts(blocks)
    names = [t.target for t in report.targets]
    full = [text for text in texts if "*Memory*" in text]
    assert len(full) == 10
    # Worst first: the ten full sections are the report's first ten, in its order.
    assert [next(n for n in names if f"*{n}*" in text) for text in full] == names[:10]
    rest = "\n".join(text for text in texts if "*Memory*" not in text)
    assert "*90 more targets*" in rest
    for name in names[10:]:
        assert f"*{name}*:" in rest  # one summary line each: "name: 42% · ok"
    assert "🟢 *store-099*: 10% · ok" in rest
    assert rest.index("store-010") < rest.index("store-099")


def test_huge_names_and_histories_still_fit_with_a_count_of_what_is_left_out() -> None:
    fixes = tuple(make_fix("x", summary="s" * 3000) for _ in range(40))
    rules = {f"rule-{i}-" + "r" * 80: i + 1 for i in range(30)}
    targets = tuple(
        make_target(
            f"{'n' * 300}-{index:03d}",
            ratio=0.95 - index * 0.005,
            fixes=fixes,
            alerts=AlertFigures(fired=rules, firing_seconds=3600.0),
            live=make_live("x", error="e" * 5000),
        )
        for index in range(100)
    )
    blocks = rendered(make_report(targets=targets), full=40)
    assert_within_limits(blocks)
    text = all_text(blocks)
    assert "more" in text
    assert HEAD.anchor in text  # the tail survives whatever the middle holds


def test_a_target_in_full_in_an_sres_words() -> None:
    target = make_target(
        "sessions-eu",
        ratio=0.93,
        evicted_keys=1204,
        fixes=(make_fix("sessions-eu"),),
        alerts=AlertFigures(
            fired={"memory-critical": 2, "evictions": 1},
            firing_seconds=9000.0,
            open=(make_alert("sessions-eu", open_=True),),
        ),
        live=make_live("sessions-eu"),
        forecast=Forecast(outlook=Outlook.ALREADY),
    )
    text = section_texts(rendered(make_report(targets=(target,))))[0]
    assert "🔴 *sessions-eu* — critical" in text
    assert "now 476.2 MB (93% of 512.0 MB)" in text
    assert "peak 476.2 MB (93%)" in text and "min 380.9 MB (74%)" in text
    assert "MB/hour" in text and "already above 90%" in text
    assert "1,204 in the window" in text
    assert "*Keys* 10,110 now (+110)" in text
    assert "400 of 1,000 sampled (40%)" in text and "(`ttl-leak`)" in text
    assert "3 fired (`memory-critical` ×2, `evictions` ×1)" in text
    assert "firing 2.5h" in text and "1 still open (`memory-critical` since" in text
    assert "requested by <@U0ALICE>, approved by <@U0BOB>: ✅ executed" in text


@pytest.mark.parametrize(
    ("forecast", "words"),
    [
        (
            Forecast(Outlook.REACHES, ratio_90_at=UNTIL + timedelta(hours=5.2), hours_left=5.2),
            "reaches 90% at Tue 01 Dec 14:12 (in 5.2 h)",
        ),
        (Forecast(Outlook.BEYOND), "more than 30 days"),
        (Forecast(Outlook.NOT_RISING), "not rising"),
        (Forecast(Outlook.ALREADY), "already above 90%"),
        (Forecast(Outlook.UNKNOWN), "no forecast"),
    ],
)
def test_each_forecast_outlook_has_its_words(forecast: Forecast, words: str) -> None:
    report = make_report(targets=(make_target("prod", forecast=forecast),))
    assert words in all_text(rendered(report))


def test_times_are_in_the_reports_timezone() -> None:
    forecast = Forecast(Outlook.REACHES, ratio_90_at=UNTIL + timedelta(hours=5), hours_left=5.0)
    target = make_target("prod", forecast=forecast)
    report = make_report(targets=(target,), timezone="Europe/Paris")
    text = all_text(rendered(report))
    assert "reaches 90% at Tue 01 Dec 15:00 (in 5.0 h)" in text  # 14:00 UTC is 15:00 CET
    assert "Window Mon 30 Nov 10:00 → Tue 01 Dec 10:00 CET (Europe/Paris)" in text


def test_a_target_without_samples_says_so_and_the_message_has_no_chart() -> None:
    report = make_report(2, points=0)
    message = report_message(report)
    text = all_text(rebuilt([b.to_dict() for b in message.blocks]))
    assert NO_SAMPLES in text
    assert NO_CHART in text
    assert "*Memory*" not in text


def test_the_audit_head_closes_the_message_with_the_full_anchor_in_a_code_span() -> None:
    blocks = rendered(make_report(3))
    last = blocks[-1]["text"]["text"]
    assert f"Audit trail head:* seq 1234, hash {HEAD.hash[:12]}…" in last
    assert f"`{HEAD.seq}:{HEAD.hash}`" in last
    empty = all_text(rendered(replace(make_report(1), audit_head=None)))
    assert "the trail is empty" in empty


def test_the_fallback_text_is_one_line() -> None:
    message = report_message(make_report(100))
    assert "\n" not in message.text
    assert message.text == (
        "Redis memory report (24h): 100 targets, worst store-000 critical at 95%"
    )


def test_the_header_names_the_window_and_a_lone_target() -> None:
    report = make_report(targets=(make_target("prod"),), window=timedelta(days=7))
    header = rendered(report)[0]["text"]["text"]
    assert header == "📊 Redis memory report — last 7d · prod"


def test_the_capacity_line_is_the_measured_plan_against_maxmemory_now() -> None:
    plan = replace(
        plan_capacity(users=18_000, sessions_per_user=1, session_size=4096),
        current_maxmemory=512 * 1024**2,
    )
    live = make_live("prod", capacity=plan)
    text = all_text(rendered(make_report(targets=(make_target("prod", live=live),))))
    assert "*Capacity* maxmemory 512mb is " in text and "x what the measured sessions need" in text


def test_a_failed_live_diagnosis_is_one_line_and_the_history_stays() -> None:
    live = make_live("prod", error="Redis unreachable: connection refused")
    text = section_texts(rendered(make_report(targets=(make_target("prod", live=live),))))[0]
    assert "*Now* ⚠ no live diagnosis: Redis unreachable: connection refused" in text
    assert "*Memory* now" in text and "Sessions without TTL" not in text
