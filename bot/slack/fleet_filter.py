"""``/redis-mem status [glob | label=value ...]``: which targets a status shows.

Pure (no Slack import). A word without ``=`` is a name glob (``prod-*``, fnmatch,
case-sensitive); ``key=value`` is a label that must be on the target with that value.
Several words AND together. A word of any other shape is one UsageError line, and so
is a filter no target matches (naming the filter only: a hundred known names would
not fit a line). A word the scrubber would hide (``--password x``, ``token=x``) is
refused without being repeated: the filter is shown in the header and audited.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from bot.audit.scrub import scrub_words
from bot.config import Target
from bot.errors import UsageError
from bot.labels import LABEL_PATTERN
from bot.limits import MAX_GLOB_CHARS, echo

STATUS_USAGE = "status [glob | label=value ...]"
# What a target name may hold (bot.config.TARGET_NAME_PATTERN) plus fnmatch's * ? [ ] !.
_GLOB = re.compile(r"[A-Za-z0-9_.\-*?\[\]!]+")


@dataclass(frozen=True)
class FleetFilter:
    """Name globs and labels; a target is shown when it matches every one."""

    globs: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        """No word given: every target."""
        return not self.globs and not self.labels

    def matches(self, target: Target) -> bool:
        """Every glob matches the name and every label is on the target."""
        return all(fnmatchcase(target.name, glob) for glob in self.globs) and all(
            target.labels.get(key) == value for key, value in self.labels
        )

    def select(self, targets: Mapping[str, Target]) -> list[Target]:
        """The matching targets in the targets file's order."""
        return [target for target in targets.values() if self.matches(target)]

    def text(self) -> str:
        """The filter as typed (validated words only: safe to show whole)."""
        return " ".join([*self.globs, *(f"{key}={value}" for key, value in self.labels)])


def parse_filter(args: Sequence[str]) -> FleetFilter:
    """The filter words of ``status``; UsageError (one line) for a word of another shape."""
    globs: list[str] = []
    labels: list[tuple[str, str]] = []
    # In context: the word after "--password" is a secret although it looks like a glob.
    for position, (word, scrubbed) in enumerate(zip(args, scrub_words(args), strict=True)):
        if scrubbed != word:
            raise UsageError(
                f"status: word {position + 1} looks like a secret and is not shown"
                f" (usage: {STATUS_USAGE})"
            )
        key, sep, value = word.partition("=")
        if sep:
            if not (LABEL_PATTERN.fullmatch(key) and LABEL_PATTERN.fullmatch(value)):
                raise UsageError(
                    f"status: a label filter is key=value, each 1-63 of a-z 0-9 _ . - "
                    f"(got '{echo(word)}'; usage: {STATUS_USAGE})"
                )
            labels.append((key, value))
            continue
        if len(word) > MAX_GLOB_CHARS or not _GLOB.fullmatch(word):
            raise UsageError(
                f"status: a name glob is at most {MAX_GLOB_CHARS} letters, digits, _ . - "
                f"and * ? [ ] ! (got '{echo(word)}'; usage: {STATUS_USAGE})"
            )
        globs.append(word)
    return FleetFilter(globs=tuple(globs), labels=tuple(labels))


def select_targets(fleet: FleetFilter, targets: Mapping[str, Target]) -> list[Target]:
    """The targets the filter keeps; UsageError "no target matches ..." when none."""
    chosen = fleet.select(targets)
    if not chosen:
        raise UsageError(f"status: no target matches {fleet.text()}")
    return chosen
