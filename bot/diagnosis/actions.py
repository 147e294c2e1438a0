"""The remediation actions as the diagnosis knows them: one entry per fix, declared once.

An entry says what a fix is called (id, title, short button label), where the runbook
describes it, how urgent it is against the others, and which scenarios recommend it. The
engine ranks from it, the scenarios list their fixes from it, the Slack buttons take their
labels from it, and each action class (bot/remediation/actions) takes its id, title and
runbook reference from it: nothing else repeats these. Pure data: the diagnosis is the
lowest layer, so this module imports no action machinery (the classes import it).

Adding a fix: one ``ActionInfo`` here, its class (``info = ACTIONS["<id>"]``) and one line
in ``bot/remediation/catalogue.py``; the catalogue refuses to build if the two disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ActionInfo:
    """One fix as declared once.

    urgency: lower is more urgent; the diagnosis lists its fixes in this order.
    recommended_for: the scenario ids that may recommend it (a scenario can still withhold
    it when its condition does not hold, e.g. activedefrag already on).
    home: the scenario whose own runbook answer it is (listed there before borrowed fixes).
    mitigation: above the mitigation ratio it comes first, whatever the scenarios say.
    reachable_otherwise: for a fix no scenario recommends, how people reach it (a sentence).
    cancellable: while it runs, its message shows a Cancel button (it stops between batches).
    not_on_cluster: why it must not run on a Redis Cluster target ("": it may); a cluster's
    diagnosis does not offer it, and the action refuses it in one line.
    """

    id: str
    title: str
    runbook: str
    urgency: int
    recommended_for: tuple[str, ...] = ()
    button_label: str = ""  # short label for a narrow Slack button; "" shows the title
    home: str | None = None
    mitigation: bool = False
    reachable_otherwise: str = ""
    cancellable: bool = False
    not_on_cluster: str = ""

    @property
    def label(self) -> str:
        """What its Slack button says: the short label, else the title."""
        return self.button_label or self.title


class ActionRegistry:
    """The declared fixes, in contract order (the order ``CATALOGUE`` lists them)."""

    def __init__(self, entries: Iterable[ActionInfo]) -> None:
        self._by_id: dict[str, ActionInfo] = {}
        for entry in entries:
            _check_entry(entry, seen=self._by_id)
            self._by_id[entry.id] = entry
        urgencies = [e.urgency for e in self._by_id.values()]
        if len(set(urgencies)) != len(urgencies):
            raise ValueError("two actions share an urgency: the ranking would be ambiguous")

    def __iter__(self) -> Iterator[ActionInfo]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, action_id: object) -> bool:
        return action_id in self._by_id

    def __getitem__(self, action_id: str) -> ActionInfo:
        try:
            return self._by_id[action_id]
        except KeyError:
            raise KeyError(f"no action {action_id!r} is declared") from None

    def get(self, action_id: str) -> ActionInfo | None:
        """The entry, or None for an id this bot does not know."""
        return self._by_id.get(action_id)

    @property
    def ids(self) -> tuple[str, ...]:
        """Every action id, in contract order."""
        return tuple(self._by_id)

    def by_urgency(self) -> tuple[ActionInfo, ...]:
        """Every entry, most urgent first."""
        return tuple(sorted(self, key=lambda e: e.urgency))

    def fixes(self, scenario_id: str, *, without: Iterable[str] = ()) -> tuple[str, ...]:
        """The fixes ``scenario_id`` recommends: its own first, then borrowed, by urgency.

        ``without``: fixes the scenario withholds now; each must be one it recommends
        (ValueError otherwise: a typo would silently withhold nothing).
        """
        withheld = set(without)
        candidates = [e for e in self.by_urgency() if scenario_id in e.recommended_for]
        unknown = withheld - {e.id for e in candidates}
        if unknown:
            raise ValueError(f"{scenario_id} cannot withhold {sorted(unknown)}: not its fixes")
        kept = [e for e in candidates if e.id not in withheld]
        return tuple(e.id for e in sorted(kept, key=lambda e: e.home != scenario_id))

    def mitigations(self) -> tuple[str, ...]:
        """The fixes that come first above the mitigation ratio, most urgent first."""
        return tuple(e.id for e in self.by_urgency() if e.mitigation)


def _check_entry(entry: ActionInfo, *, seen: dict[str, ActionInfo]) -> None:
    if entry.id in seen:
        raise ValueError(f"action {entry.id!r} is declared twice")
    if entry.home is not None and entry.home not in entry.recommended_for:
        raise ValueError(f"action {entry.id!r}: home {entry.home!r} is not in recommended_for")
    if not (entry.recommended_for or entry.mitigation or entry.reachable_otherwise):
        raise ValueError(
            f"action {entry.id!r} is recommended by no scenario: declare reachable_otherwise"
        )


# Urgency, most urgent first: stop failing writes, stop the leak, make room, then the
# slower application changes, then fragmentation (which needs a restart).
ACTIONS = ActionRegistry(
    (
        ActionInfo(
            "raise-maxmemory",
            "Raise maxmemory",
            "Scenario 1, option A",
            urgency=30,
            recommended_for=("too-many-sessions", "large-sessions"),
            home="too-many-sessions",
            # Each primary's own limit, sized from its own used memory, and a pod patch that
            # rolls the Redis pods together: one server's fix, not a cluster's.
            not_on_cluster=(
                "maxmemory is each primary's own limit and the pod memory patch rolls every"
                " Redis pod together; raise it per primary by hand, or add shards"
            ),
        ),
        ActionInfo(
            "shorten-session-ttl",
            "Shorten the session TTL",
            "Scenario 1, option B",
            urgency=40,
            recommended_for=("too-many-sessions", "stale-sessions"),
            button_label="Shorten session TTL",
            home="too-many-sessions",
        ),
        ActionInfo(
            "limit-concurrent-sessions",
            "Limit concurrent sessions per user",
            "Scenario 1, option C",
            urgency=60,
            recommended_for=("too-many-sessions",),
            button_label="Limit concurrent sessions",
            home="too-many-sessions",
        ),
        ActionInfo(
            "expire-keys-without-ttl",
            "Set a TTL on session keys that have none",
            "Scenario 2, step 4",
            urgency=20,
            recommended_for=("ttl-leak", "eviction-policy"),
            button_label="Expire keys without TTL",
            home="ttl-leak",
            cancellable=True,
        ),
        ActionInfo(
            "restart-redis",
            "Restart Redis (delete its pods)",
            "Scenario 4, step 1",
            urgency=90,
            recommended_for=("fragmentation",),
            button_label="Restart Redis",
            home="fragmentation",
            # One server's restart; for a cluster, every shard down at once (and, without
            # persistence, every primary empty).
            not_on_cluster=(
                "it deletes every Redis pod the selector matches at once, which takes all"
                " shards down together; restart one node at a time after failing it over, by hand"
            ),
        ),
        ActionInfo(
            "enable-activedefrag",
            "Enable active defragmentation",
            "Scenario 4, step 2",
            urgency=80,
            recommended_for=("fragmentation",),
            button_label="Enable active defrag",
            home="fragmentation",
        ),
        ActionInfo(
            "set-eviction-policy",
            "Set the eviction policy",
            "Scenario 5 (and Diagnosis step 4)",
            urgency=10,
            recommended_for=("eviction-policy",),
            button_label="Set eviction policy",
            home="eviction-policy",
        ),
        ActionInfo(
            "enable-sliding-window",
            "Enable sliding-window session expiry",
            "Scenario 6",
            urgency=50,
            recommended_for=("stale-sessions",),
            button_label="Enable sliding window",
            home="stale-sessions",
        ),
        ActionInfo(
            "evict-idle-sessions",
            "Evict the idlest sessions",
            "Immediate mitigation",
            urgency=70,
            recommended_for=("stale-sessions",),
            button_label="Evict idle sessions",
            mitigation=True,
            cancellable=True,
        ),
    )
)
