"""Write audit entries as JSON lines or CSV, one row at a time (constant memory)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

from bot.audit.canonical import canonical_json
from bot.audit.store import StoredEntry

COLUMNS = (
    "id", "seq", "at", "actor", "actor_name", "source", "target", "action", "parameters",
    "outcome", "summary", "request_id", "channel", "message_ts", "prev_hash", "hash",
)  # fmt: skip
FORMATS = ("jsonl", "csv")


def write_jsonl(entries: Iterable[StoredEntry], out: TextIO) -> int:
    """One JSON object per line; returns the number of rows written."""
    count = 0
    for entry in entries:
        out.write(json.dumps(entry.as_dict(), ensure_ascii=False) + "\n")
        count += 1
    return count


def write_csv(entries: Iterable[StoredEntry], out: TextIO) -> int:
    """CSV with a header row; parameters as canonical JSON. Returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for entry in entries:
        data = entry.as_dict()
        data["parameters"] = canonical_json(data["parameters"])
        writer.writerow([data[name] for name in COLUMNS])
        count += 1
    return count
