"""One declaration per fix (``bot.diagnosis.actions``): everything else derives from it.

The tenth-fix test at the end builds a throwaway fix the way a new one is added (its
``ActionInfo`` entry and its class, which the catalogue finds by that entry) and follows
it through the engine, the Slack button and the catalogue, with nothing of ours patched.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.diagnosis.actions import ACTIONS, ActionInfo, ActionRegistry
from bot.diagnosis.engine import diagnose
from bot.diagnosis.model import ACTION_IDS, SCENARIO_IDS
from bot.remediation.actions.base import Action
from bot.remediation.catalogue import CATALOGUE, build_catalogue, implementations
from bot.remediation.model import ActionContext, Change, ExecutionResult, Params
from bot.slack.blocks.diagnosis import BUTTON_LABELS, request_button
from tests.test_diagnosis import TH, sessions, snap

EVERYTHING_WRONG = snap(
    policy="volatile-lru",
    used=98 * 1024 * 1024,
    rss=300 * 1024 * 1024,
    allocator=(2.0, 150 * 1024 * 1024),
    keys=sessions(100, size=40_000, idle=9 * 3600)
    + sessions(100, ttl=-1, size=40_000, idle=9 * 3600, prefix="session:n:"),
    estimate=2_400,
    evicted=5,
)


def test_the_catalogue_implements_exactly_the_declared_actions_in_their_order() -> None:
    assert tuple(CATALOGUE) == ACTIONS.ids == ACTION_IDS
    for info in ACTIONS:
        action = CATALOGUE[info.id]
        assert action.info is info
        assert (action.id, action.title, action.runbook) == (info.id, info.title, info.runbook)


def test_every_recommendation_names_a_runbook_scenario_and_every_fix_is_reachable() -> None:
    for info in ACTIONS:
        assert set(info.recommended_for) <= set(SCENARIO_IDS), info.id
        assert info.recommended_for or info.mitigation or info.reachable_otherwise, info.id
    recommending = {s for info in ACTIONS for s in info.recommended_for}
    assert recommending == set(SCENARIO_IDS)  # every scenario has a fix to offer


def test_no_diagnosis_recommends_an_action_the_catalogue_lacks() -> None:
    d = diagnose(EVERYTHING_WRONG, TH)
    assert len(d.scenarios) >= 5
    assert set(d.recommended_actions) <= set(CATALOGUE)
    for s in d.scenarios:
        assert s.recommended_actions and set(s.recommended_actions) <= set(CATALOGUE)


def test_ranking_and_labels_come_from_the_declaration() -> None:
    urgency = [info.id for info in ACTIONS.by_urgency()]
    assert urgency[:3] == ["set-eviction-policy", "expire-keys-without-ttl", "raise-maxmemory"]
    assert ACTIONS.mitigations() == ("evict-idle-sessions",)
    assert {i.id: i.button_label for i in ACTIONS if i.button_label} == BUTTON_LABELS
    for info in ACTIONS:
        assert request_button(info.id, target="p").text.text == info.label


def test_a_scenario_lists_its_own_fixes_before_borrowed_ones() -> None:
    # Scenario 6's own answer is the sliding window; the shorter TTL is Scenario 1's.
    assert ACTIONS.fixes("stale-sessions") == (
        "enable-sliding-window",
        "shorten-session-ttl",
        "evict-idle-sessions",
    )
    assert ACTIONS.fixes("eviction-policy") == ("set-eviction-policy", "expire-keys-without-ttl")


def test_withholding_a_fix_the_scenario_does_not_recommend_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^ttl-leak cannot withhold \['restart-redi'\]"):
        ACTIONS.fixes("ttl-leak", without=("restart-redi",))


def entry(action_id: str = "compress-sessions", **changes: Any) -> ActionInfo:
    """A throwaway declaration, recommended for the TTL leak, more urgent than any other."""
    base = ActionInfo(
        action_id,
        "Compress session payloads",
        "Scenario 3",
        urgency=5,
        recommended_for=("ttl-leak",),
        button_label="Compress sessions",
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((entry(), entry()), r"^action 'compress-sessions' is declared twice$"),
        ((entry(), entry("other")), r"^two actions share an urgency"),
        ((entry(recommended_for=()),), r"recommended by no scenario: declare reachable_otherwise"),
        ((entry(home="fragmentation"),), r"home 'fragmentation' is not in recommended_for"),
    ],
)
def test_a_bad_declaration_is_refused_in_one_line(
    bad: tuple[ActionInfo, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ActionRegistry(bad)


def test_a_fix_reachable_only_by_hand_says_so() -> None:
    manual = entry(recommended_for=(), reachable_otherwise="only through /redis-mem fix")
    assert ActionRegistry((manual,)).fixes("ttl-leak") == ()


# --- a tenth fix: its entry, its class, its registration line --------------------------

TENTH = entry()
DECLARED = ActionRegistry((*ACTIONS, TENTH))


class CompressSessions(Action[None]):
    """The throwaway tenth fix: does nothing, but is a complete Action."""

    info = TENTH
    risk = "low"

    def read(self, ctx: ActionContext, params: Params) -> None:
        """Nothing to read."""

    def facts(self, ctx: ActionContext, params: Params, state: None) -> dict[str, str]:
        """No facts."""
        return {}

    def changes(
        self, ctx: ActionContext, params: Params, state: None
    ) -> tuple[tuple[Change, ...], tuple[str, ...]]:
        """No changes."""
        return (), ()

    def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        """Never run here."""
        raise NotImplementedError


def test_the_catalogue_finds_its_classes_by_their_declaration_alone() -> None:
    # No list of classes to keep: every concrete Action with an ``info`` in the actions
    # package is found; one elsewhere (this module's tenth fix) is not, unless asked for.
    found = implementations()
    assert {type(a) for a in found} == {type(a) for a in CATALOGUE.values()}
    assert len(found) == len(CATALOGUE)
    assert [type(a) for a in implementations(__name__)] == [CompressSessions]
    catalogue = build_catalogue((*found, *implementations(__name__)), DECLARED)
    assert tuple(catalogue) == (*ACTION_IDS, "compress-sessions")


def test_a_tenth_fix_takes_its_id_title_and_runbook_from_its_entry() -> None:
    fix = CompressSessions()
    assert (fix.id, fix.title, fix.runbook) == (TENTH.id, TENTH.title, TENTH.runbook)


def test_a_tenth_fix_is_recommended_by_the_engine_from_its_declaration_alone() -> None:
    leak = snap(keys=sessions(180) + sessions(20, ttl=-1, prefix="session:leak:"), estimate=40_000)
    d = diagnose(leak, TH, actions=DECLARED)
    [scenario] = d.scenarios
    assert scenario.id == "ttl-leak"
    # Most urgent (5), and ttl-leak's own fix stays first within the scenario.
    assert scenario.recommended_actions == ("expire-keys-without-ttl", "compress-sessions")
    assert d.recommended_actions == ("compress-sessions", "expire-keys-without-ttl")
    assert diagnose(leak, TH).recommended_actions == ("expire-keys-without-ttl",)


def test_a_tenth_fix_shows_a_button_with_its_label() -> None:
    button = request_button(TENTH.id, target="prod", declared=DECLARED)
    assert button.text.text == "Compress sessions"
    assert button.action_id == "redis_mem.request.compress-sessions"
    assert button.value == "prod" and button.style is None


def test_a_tenth_fix_joins_the_catalogue_with_one_registration() -> None:
    catalogue = build_catalogue((*CATALOGUE.values(), CompressSessions()), DECLARED)
    assert tuple(catalogue) == (*ACTION_IDS, "compress-sessions")
    assert isinstance(catalogue["compress-sessions"], CompressSessions)


def test_a_declaration_without_its_class_or_a_class_without_its_declaration_fails() -> None:
    with pytest.raises(ValueError, match=r"declared without a class: \['compress-sessions'\]"):
        build_catalogue(CATALOGUE.values(), DECLARED)
    with pytest.raises(ValueError, match=r"undeclared: \['compress-sessions'\]$"):
        build_catalogue((*CATALOGUE.values(), CompressSessions()), ACTIONS)
