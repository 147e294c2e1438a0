"""The status message: a hundred targets in one message, worst first.

Slack refuses a message beyond 50 blocks or a section beyond 3,000 characters. So
every target that is not ok gets its full line (packed into as few sections as fit,
at most ``NOT_OK_CHARS`` in all: what does not fit is named in one "and N more not
ok" line), and the healthy targets one summary line per group: the ``env`` label, else
the name's prefix before its first ``-`` (``🟢 42 ok in prod: 31-78% of maxmemory``).
A closing context line counts each severity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from slack_sdk.models.blocks import Block, HeaderBlock

from bot.diagnosis.model import Diagnosis, Severity
from bot.slack.blocks.common import (
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    MAX_BLOCKS,
    SECTION_TEXT_MAX,
    SEVERITY_MARK,
    Message,
    bullet_sections,
    clip,
    context,
    escape,
    gauge,
    memory_phrase,
    section,
)
from bot.units import format_bytes

# The full lines of the targets that are not ok, in all: Slack documents no limit on a
# message's total text, but refuses very long ones (msg_blocks_too_long); ~80 lines.
NOT_OK_CHARS = 12_000
GROUP_SECTIONS = 3  # healthy groups: ~45 lines a section
NAMES_CHARS = SECTION_TEXT_MAX - 100  # the "and N more not ok: ..." names
NO_ANSWER = "⚫"
# Worst first: critical, then unreachable (no diagnosis at all), warning, ok.
_TIER = {Severity.CRITICAL: 0, Severity.WARNING: 2, Severity.OK: 3}
UNREACHABLE_TIER = 1


@dataclass(frozen=True)
class TargetStatus:
    """One target's quick state: its diagnosis, or the one-line reason it has none."""

    name: str
    diagnosis: Diagnosis | None = None
    error: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Diagnosed and healthy."""
        return self.diagnosis is not None and self.diagnosis.severity is Severity.OK

    @property
    def group(self) -> str:
        """The ``env`` label, else the name before its first ``-``."""
        return self.labels.get("env") or self.name.split("-", 1)[0]


def rank(row: TargetStatus) -> tuple[int, float, str]:
    """Sort key, worst first: tier, then the fuller store, then the name."""
    if row.diagnosis is None:
        return (UNREACHABLE_TIER, 0.0, row.name)
    ratio = row.diagnosis.usage_ratio
    return (_TIER[row.diagnosis.severity], -(ratio or 0.0), row.name)


def status_message(rows: Sequence[TargetStatus], *, scope: str = "") -> Message:
    """The targets in one message within Slack's limits, worst first (module docstring).

    ``scope``: the filter that chose them (``prod-* env=prod``), shown in the header."""
    ordered = sorted(rows, key=rank)
    bad = [row for row in ordered if not row.ok]
    good = [row for row in ordered if row.ok]
    count = f"{len(rows)} target{'s' if len(rows) != 1 else ''}"
    title = f"Redis memory — {count}" + (f" matching {scope}" if scope else "")
    blocks: list[Block] = [HeaderBlock(text=clip(title, HEADER_TEXT_MAX))]
    room = MAX_BLOCKS - len(blocks) - 1 - (GROUP_SECTIONS if good else 0)  # 1: the counts
    blocks.extend(not_ok_sections(bad, max_sections=room))
    if good:
        blocks.extend(bullet_sections(group_lines(good), max_sections=GROUP_SECTIONS))
    blocks.append(context(counts_line(ordered)))
    text = "; ".join(fallback_part(row) for row in ordered)
    return Message(text=clip(f"Redis memory: {text}", FALLBACK_TEXT_MAX), blocks=blocks)


def not_ok_sections(rows: Sequence[TargetStatus], *, max_sections: int) -> list[Block]:
    """Full lines packed into sections while they fit; then one line naming the rest."""
    lines = [status_line(row) for row in rows]
    chunks, shown = pack(lines, budget=NOT_OK_CHARS, max_sections=max(max_sections - 1, 1))
    blocks: list[Block] = [section(chunk) for chunk in chunks]
    rest = rows[shown:]
    if rest:
        blocks.append(section(more_line(rest)))
    return blocks


def pack(lines: Sequence[str], *, budget: int, max_sections: int) -> tuple[list[str], int]:
    """As many whole lines as fit ``max_sections`` sections and ``budget`` characters:
    the sections' texts and how many lines they hold."""
    chunks: list[list[str]] = []
    size = used = 0
    for line in lines:
        line = clip(line, SECTION_TEXT_MAX)
        if used + len(line) > budget:
            break
        if chunks and size + 1 + len(line) <= SECTION_TEXT_MAX:
            chunks[-1].append(line)
            size += 1 + len(line)
        elif len(chunks) < max_sections:
            chunks.append([line])
            size = len(line)
        else:
            break
        used += len(line) + 1
    return ["\n".join(chunk) for chunk in chunks], sum(len(chunk) for chunk in chunks)


def more_line(rows: Sequence[TargetStatus]) -> str:
    """``and 12 more not ok: a, b, c, …`` (as many names as fit one section)."""
    head = f"_and {len(rows)} more not ok:_ "
    names: list[str] = []
    size = len(head)
    for row in rows:
        name = escape(row.name)
        if size + len(name) + 2 > NAMES_CHARS:
            names.append("…")
            break
        names.append(name)
        size += len(name) + 2
    return head + ", ".join(names)


def group_lines(rows: Sequence[TargetStatus]) -> list[str]:
    """One line per group of healthy targets, the largest group first."""
    groups: dict[str, list[Diagnosis]] = {}
    for row in rows:
        if row.diagnosis is not None:
            groups.setdefault(row.group, []).append(row.diagnosis)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [group_line(name, diagnoses) for name, diagnoses in ordered]


def group_line(group: str, diagnoses: Sequence[Diagnosis]) -> str:
    """``🟢 42 ok in prod: 31-78% of maxmemory`` (and how many have no limit)."""
    ratios = sorted(d.usage_ratio for d in diagnoses if d.usage_ratio is not None)
    parts = []
    if ratios:
        low, high = f"{ratios[0]:.0%}", f"{ratios[-1]:.0%}"
        parts.append(f"{low if low == high else low.rstrip('%') + '-' + high} of maxmemory")
    unlimited = [d.used_memory for d in diagnoses if d.usage_ratio is None]
    if unlimited:
        low, high = format_bytes(min(unlimited)), format_bytes(max(unlimited))
        used = low if low == high else f"{low}-{high}"
        parts.append(f"{len(unlimited)} without a maxmemory limit ({used} used)")
    mark = SEVERITY_MARK[Severity.OK]
    return f"{mark} {len(diagnoses)} ok in *{escape(group)}*: {', '.join(parts)}"


def status_line(row: TargetStatus) -> str:
    """``🔴 *prod* `▓▓▓▓▓▓▓▓▓░ 93%` 476.0 MB / 512.0 MB · evicted 1,204 · ttl-leak · env=prod``."""
    suffix = labels_suffix(row.labels)
    if row.diagnosis is None:
        reason = escape(row.error or "unknown error")
        return f"{NO_ANSWER} *{escape(row.name)}* unreachable: {reason}{suffix}"
    d = row.diagnosis
    limit = format_bytes(d.maxmemory) if d.maxmemory else "no limit"
    scenarios = ", ".join(s.id for s in d.scenarios) or "no scenario"
    primary = f" · {d.primary_label}" if d.primary_label else ""  # a Sentinel target's node
    return (
        f"{SEVERITY_MARK[d.severity]} *{escape(row.name)}* `{gauge(d.usage_ratio)}` "
        f"{format_bytes(d.used_memory)} / {limit} · evicted {d.evicted_keys:,} · {scenarios}"
        f"{primary}{suffix}"
    )


def labels_suffix(labels: Mapping[str, str]) -> str:
    """`` · env=prod team=payments`` (labels are validated: a-z 0-9 _ . -), or nothing."""
    if not labels:
        return ""
    return " · " + " ".join(f"{key}={value}" for key, value in sorted(labels.items()))


def counts_line(rows: Sequence[TargetStatus]) -> str:
    """``🔴 3 critical · ⚫ 25 unreachable · 🟡 5 warning · 🟢 67 ok``."""
    counts = {"critical": 0, "unreachable": 0, "warning": 0, "ok": 0}
    for row in rows:
        counts[row.diagnosis.severity.value if row.diagnosis else "unreachable"] += 1
    marks = {
        "critical": SEVERITY_MARK[Severity.CRITICAL],
        "unreachable": NO_ANSWER,
        "warning": SEVERITY_MARK[Severity.WARNING],
        "ok": SEVERITY_MARK[Severity.OK],
    }
    return " · ".join(f"{marks[word]} {n} {word}" for word, n in counts.items() if n)


def fallback_part(row: TargetStatus) -> str:
    """``prod critical (93% of 512.0 MB)`` for the notification text."""
    if row.diagnosis is None:
        return f"{row.name} unreachable"
    d = row.diagnosis
    memory = memory_phrase(used=d.used_memory, maxmemory=d.maxmemory, ratio=d.usage_ratio)
    return f"{row.name} {d.severity.value} ({memory})"
