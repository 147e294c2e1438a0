"""Alertmanager's notifications in, one Slack message per group out.

``receive`` runs in the HTTP request: it audits every alert, records the group (insert,
or a new revision of it) and wakes the worker; nothing slow. ``deliver_pending`` runs on
the worker (``bot.runtime.worker.WakeableWorker``): it claims each pending group, takes a
fresh diagnosis of the group's target when it fires, and posts the message, or updates
the one it posted before (a re-send, or ``resolved``). A failed delivery is retried with
a backoff; Slack's permanent refusals give that notification up (the next re-send of the
group tries again).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from bot.alertmanager.mapping import map_alert
from bot.alertmanager.model import PayloadError, WebhookPayload, payload_from, short
from bot.alertmanager.ports import (
    GroupPoster,
    GroupStore,
    GroupView,
    MappedAlert,
    Posted,
    PostError,
    StoredGroup,
)
from bot.audit.entry import AuditEntry, AuditSink
from bot.config import Target
from bot.diagnosis.model import Diagnosis
from bot.errors import AuditUnavailable, RedisMemError

log = logging.getLogger(__name__)

ACTOR = "alertmanager"
CLAIM_LEASE = timedelta(minutes=2)  # a worker that died mid-delivery is taken over after it
MAX_BACKOFF = timedelta(minutes=10)
FIRST_BACKOFF = timedelta(seconds=5)
MAX_ATTEMPTS = 12  # transient failures (~1 h of backoff); then this notification is given up
BATCH = 50  # groups per worker pass

Diagnose = Callable[[str], Diagnosis]


class AlertmanagerService:
    """Receives notifications (``receive``) and shows them in Slack (``deliver_pending``)."""

    def __init__(
        self,
        *,
        targets: Mapping[str, Target],
        default_channel: str | None,
        store: GroupStore,
        audit: AuditSink,
        poster: GroupPoster,
        diagnose: Diagnose,
        clock: Callable[[], datetime],
        on_received: Callable[[], None] = lambda: None,
        owner: str | None = None,
    ) -> None:
        """``diagnose``: a fresh diagnosis of a target (raises RedisMemError);
        ``on_received``: wakes the worker; ``owner``: this process in claims."""
        self._targets = targets
        self._default_channel = default_channel
        self._store = store
        self._audit = audit
        self._poster = poster
        self._diagnose = diagnose
        self._clock = clock
        self._on_received = on_received
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"

    # In the request -------------------------------------------------------------------

    def receive(self, payload: WebhookPayload) -> int:
        """Audit each alert and record the group; its new revision. Raises AuditUnavailable."""
        now = self._clock()
        for item in self.mapped(payload):
            self._audit.record(audit_entry(payload, item))
        revision = self._store.record(
            group_hash=payload.group_hash, group_key=payload.group_key, status=payload.status,
            payload=payload.stored(), at=now,
        )  # fmt: skip
        self._on_received()
        return revision

    def mapped(self, payload: WebhookPayload) -> tuple[MappedAlert, ...]:
        """Each alert with the target it maps to (``bot.alertmanager.mapping``)."""
        out = []
        for alert in payload.alerts:
            found = map_alert(alert.labels, self._targets)
            out.append(MappedAlert(alert=alert, target=found.target, why=found.why))
        return tuple(out)

    # On the worker --------------------------------------------------------------------

    def deliver_pending(self) -> int:
        """Deliver every due group this process can claim; how many it delivered."""
        done = 0
        try:
            hashes = self._store.pending(now=self._clock(), limit=BATCH)
        except AuditUnavailable as err:
            log.warning("Alertmanager groups not read: %s", err.message)
            return 0
        for group_hash in hashes:
            try:
                done += self.deliver(group_hash)
            except AuditUnavailable as err:  # the next pass (or wake) tries again
                log.warning("Alertmanager group %s not delivered: %s", short(group_hash), err)
        return done

    def deliver(self, group_hash: str) -> bool:
        """Claim, render, post or update one group; False when another owner has it."""
        group = self._store.claim(
            group_hash, owner=self.owner, now=self._clock(), lease=CLAIM_LEASE
        )
        if group is None:
            return False
        try:
            payload = payload_from(dict(group.payload))
        except PayloadError as err:  # a row from another version of the bot
            self._give_up(group, f"stored payload unreadable: {err}")
            return False
        view = self.view(payload, group)
        channel = self.channel_of(view.target)
        if channel is None:
            self._give_up(group, "no channel: set REDIS_MEM_CHANNEL or the target's channel")
            return False
        try:
            where = self._show(group, view, channel)
        except PostError as err:
            self._failed(group, err)
            return False
        self._store.delivered(
            group_hash, owner=self.owner, revision=group.revision, channel=where.channel,
            ts=where.ts, status=view.status, at=self._clock(),
        )  # fmt: skip
        return True

    def view(self, payload: WebhookPayload, group: StoredGroup) -> GroupView:
        """What the message shows: the alerts and, while firing, a fresh diagnosis."""
        alerts = self.mapped(payload)
        target = next((item.target for item in alerts if item.target is not None), None)
        diagnosis, error = None, None
        if target is not None and payload.status == "firing":
            try:
                diagnosis = self._diagnose(target)
            except RedisMemError as err:
                error = err.message
            except Exception:  # a bug must not cost the alert its message
                log.exception("diagnosis of %s for Alertmanager failed", target)
                error = "the diagnosis failed (see the bot's log)"
        return GroupView(
            group_hash=group.group_hash, status=payload.status, alerts=alerts, target=target,
            diagnosis=diagnosis, diagnosis_error=error, received_at=self._clock(),
            truncated_alerts=payload.truncated_alerts, external_url=payload.external_url,
        )  # fmt: skip

    def channel_of(self, target: str | None) -> str | None:
        """The target's channel, else REDIS_MEM_CHANNEL (unmapped groups: the latter)."""
        known = self._targets.get(target) if target is not None else None
        return (known.channel if known is not None else None) or self._default_channel

    def _show(self, group: StoredGroup, view: GroupView, channel: str) -> Posted:
        """Post the first time; update afterwards, except that a group firing again after
        its message showed it resolved is a new episode: a new message, where people look."""
        if group.message_ts is None or group.channel is None:
            return self._poster.post(channel, view)
        if group.shown_status == "resolved" and view.status == "firing":
            return self._poster.post(channel, view)
        return self._poster.update(Posted(group.channel, group.message_ts), view)

    def _failed(self, group: StoredGroup, err: PostError) -> None:
        attempts = group.attempts + 1
        if not err.transient or attempts >= MAX_ATTEMPTS:
            self._give_up(group, str(err))
            return
        backoff = min(FIRST_BACKOFF * 2 ** (attempts - 1), MAX_BACKOFF)
        log.warning("Alertmanager group %s: %s (retry in %s)", short(group.group_hash), err,
                    backoff)  # fmt: skip
        self._store.failed(
            group.group_hash, owner=self.owner, error=str(err), retry_at=self._clock() + backoff
        )

    def _give_up(self, group: StoredGroup, why: str) -> None:
        log.warning("Alertmanager group %s not shown: %s", short(group.group_hash), why)
        self._store.failed(
            group.group_hash, owner=self.owner, error=why, retry_at=None,
            give_up_revision=group.revision,
        )  # fmt: skip


def audit_entry(payload: WebhookPayload, item: MappedAlert) -> AuditEntry:
    """One received alert: ``alertmanager.firing``/``.resolved``, its target (or unmapped)."""
    alert = item.alert
    where = item.target or "no target"
    summary = f"Alertmanager {alert.name} {alert.status} on {where}"
    if item.target is None:
        summary += f" ({item.why})"
    return AuditEntry(
        actor=ACTOR,
        source="webhook",
        action=f"alertmanager.{alert.status}",
        outcome="ok" if item.target is not None else "unmapped",
        summary=summary[:500],
        target=item.target,
        parameters={
            "alertname": alert.name[:200],
            "severity": alert.severity[:32],
            "group": short(payload.group_hash),
            "fingerprint": alert.fingerprint,
        },
    )
