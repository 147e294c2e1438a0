"""Alertmanager's webhook payload (version 4), read strictly enough to refuse in one line.

Alertmanager posts a JSON object per notification of a group::

    {"version": "4", "groupKey": "{}:{alertname=\\"X\\"}", "status": "firing",
     "receiver": "bot", "groupLabels": {...}, "commonLabels": {...},
     "commonAnnotations": {...}, "externalURL": "...", "truncatedAlerts": 0,
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
                 "startsAt": "...", "endsAt": "...", "generatorURL": "...",
                 "fingerprint": "..."}]}

Unknown fields are ignored (a newer Alertmanager may add some); a missing or mistyped
field we read is refused, naming the field and never its value.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bot.limits import echo

WEBHOOK_VERSION = "4"
MAX_ALERTS = 1000  # Alertmanager's max_alerts is 0 (all) by default; a group this big is a bug
MAX_GROUP_KEY = 10_000
GROUP_HASH_CHARS = 16  # what audit rows and the footer show of a group key's hash

Status = Literal["firing", "resolved"]


class PayloadError(ValueError):
    """The body is not a version-4 Alertmanager webhook payload; the message is one line."""


class WebhookAlert(BaseModel):
    """One alert of the group."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    status: Status
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime | None = Field(None, alias="startsAt")
    # Alertmanager sends 0001-01-01T00:00:00Z for "no end yet".
    ends_at: datetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL")
    fingerprint: str = Field("", max_length=64)

    @property
    def name(self) -> str:
        """The ``alertname`` label (``?`` when Alertmanager was given none)."""
        return self.labels.get("alertname") or "?"

    @property
    def severity(self) -> str:
        """The ``severity`` label, lower case (``""`` when unset)."""
        return self.labels.get("severity", "").strip().lower()

    @property
    def summary(self) -> str:
        """``annotations.summary``, else ``annotations.description`` (``""`` when neither)."""
        return self.annotations.get("summary") or self.annotations.get("description") or ""


class WebhookPayload(BaseModel):
    """One notification of one alert group."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1, max_length=MAX_GROUP_KEY)
    status: Status
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    truncated_alerts: int = Field(0, ge=0, alias="truncatedAlerts")
    alerts: list[WebhookAlert] = Field(min_length=1, max_length=MAX_ALERTS)

    @property
    def group_hash(self) -> str:
        """A short stable name of the group (its key may be long and hold label values)."""
        return group_hash(self.group_key)

    def stored(self) -> dict[str, Any]:
        """JSON-safe form, as Alertmanager spelled it (``parse_payload`` reads it back)."""
        return self.model_dump(mode="json", by_alias=True)


def group_hash(group_key: str) -> str:
    """SHA-256 of the group key in hex: the row's key (``short`` is what people see)."""
    return hashlib.sha256(group_key.encode("utf-8", "surrogatepass")).hexdigest()


def short(hashed: str) -> str:
    """The first GROUP_HASH_CHARS digits of a group's hash (audit rows, the footer)."""
    return hashed[:GROUP_HASH_CHARS]


def parse_payload(body: bytes) -> WebhookPayload:
    """The payload in ``body`` (UTF-8 JSON); PayloadError with one line otherwise.

    The version is checked before the shape, so a version-3 sender hears about the
    version rather than about a field it lacks.
    """
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise PayloadError("body is not UTF-8") from None
    except (ValueError, RecursionError):  # ValueError: bad JSON, or an int of 4,300 digits
        raise PayloadError("body is not JSON") from None
    return payload_from(data)


def payload_from(data: Any) -> WebhookPayload:
    """The payload in parsed JSON ``data``; PayloadError with one line otherwise."""
    if not isinstance(data, dict):
        raise PayloadError("body is not a JSON object")
    version = data.get("version")
    if version is None:
        raise PayloadError(f"no webhook version (this bot reads version {WEBHOOK_VERSION})")
    if version != WEBHOOK_VERSION:
        shown = echo(version) if isinstance(version, str) else type(version).__name__
        raise PayloadError(
            f"unsupported webhook version '{shown}' (this bot reads version {WEBHOOK_VERSION})"
        )
    try:
        return WebhookPayload.model_validate(data)
    except ValidationError as err:
        raise PayloadError(f"not an Alertmanager webhook payload: {first_problem(err)}") from None


def first_problem(err: ValidationError) -> str:
    """``alerts.0.labels: Input should be a valid dictionary`` (never the value)."""
    first = err.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"
