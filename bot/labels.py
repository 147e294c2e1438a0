"""Target labels (``env: prod``, ``team: payments``): their shape, checked once.

Labels filter ``/redis-mem status``, route alerts (``routes:`` in the targets file,
``bot.config``) and end a target's lines. Their characters are those of a DNS label
in lower case, so a label is safe to show whole in any message or log line.
"""

from __future__ import annotations

import re
from typing import Any

LABEL_PATTERN = re.compile(r"[a-z0-9_.-]{1,63}")
MAX_LABELS = 16
LABEL_RULE = "keys and values are 1-63 of a-z 0-9 _ . - (quote numbers: '1')"


def check_labels(value: Any) -> dict[str, str]:
    """A target's (or a route's) labels as given, else ValueError (one line, no value)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("must be a mapping such as {env: prod, team: payments}")
    if len(value) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels (got {len(value)})")
    for key, item in value.items():
        if not (isinstance(key, str) and LABEL_PATTERN.fullmatch(key)):
            raise ValueError(f"label names: {LABEL_RULE}")
        if not (isinstance(item, str) and LABEL_PATTERN.fullmatch(item)):
            raise ValueError(f"label {key}: {LABEL_RULE}")
    return dict(value)
