"""``status``: diagnose the chosen targets at once, each within its own time.

A hundred targets (docs/decisions/fleet.md): the diagnoses run on at most
``STATUS_PARALLEL`` threads, a bound shared by every ``status`` in the process (a
semaphore: four people asking at once still hold 16 Redis connections, not 64), and
the answer is ready when all are in or at ``timeout + GRACE_SECONDS``, whichever comes
first. A hung store (SIGSTOPped: TCP accepts, nothing answers) costs its own timeout
and shows as "no answer in Ns"; it never delays the others' lines. Several targets
may be databases of one redis-server: they are interleaved server by server (a hung
server does not take every worker at once), and once one of them failed after the
whole timeout, the others not yet started say so at once instead of waiting again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from urllib.parse import urlsplit

from bot.config import Target
from bot.errors import RedisMemError
from bot.slack.blocks.status import TargetStatus, status_message
from bot.slack.deps import SlackDeps, timed_diagnosis
from bot.slack.jobs import Result

log = logging.getLogger(__name__)

STATUS_PARALLEL = 16  # diagnoses at once, every status of the process together
GRACE_SECONDS = 1.0  # the answer waits this much beyond the per-target timeout
_SLOTS = threading.BoundedSemaphore(STATUS_PARALLEL)

Diagnose = Callable[[Target], TargetStatus]


def run_status(deps: SlackDeps, targets: Sequence[Target] | None = None, scope: str = "") -> Result:
    """Every chosen target's severity; an unreachable or hung one is a line, not a failure."""
    chosen = list(targets) if targets is not None else list(deps.diagnosis.targets.values())
    timeout = deps.settings.check_timeout
    rows = gather(chosen, lambda target: target_status(deps, target), timeout=timeout)
    return Result(
        message=status_message(rows, scope=scope), outcome=worst(rows), summary=summary(rows)
    )


def gather(
    targets: Sequence[Target],
    diagnose: Diagnose,
    *,
    timeout: float,
    slots: threading.BoundedSemaphore = _SLOTS,
    parallel: int = STATUS_PARALLEL,
) -> list[TargetStatus]:
    """``diagnose`` each target concurrently (at most ``parallel`` at once, each holding
    one of ``slots``); by ``timeout + GRACE_SECONDS`` the ones still out are lines saying so."""
    deadline = time.monotonic() + timeout + GRACE_SECONDS
    started: set[str] = set()
    hung: dict[str, str] = {}  # server -> the target that found it silent

    def task(target: Target) -> TargetStatus:
        server = server_of(target)
        if not slots.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            return late(target, timeout, started=False)
        try:
            if server in hung:
                why = f"no answer in {timeout:g}s (its server did not answer {hung[server]})"
                return TargetStatus(name=target.name, error=why, labels=target.labels)
            started.add(target.name)
            begun = time.monotonic()
            row = diagnose(target)
            if row.diagnosis is None and server and time.monotonic() - begun >= timeout:
                hung.setdefault(server, target.name)
            return row
        finally:
            slots.release()

    pool = ThreadPoolExecutor(
        max_workers=max(1, min(parallel, len(targets))), thread_name_prefix="redis-mem-status"
    )
    futures = {target.name: pool.submit(task, target) for target in interleaved(targets)}
    wait(futures.values(), timeout=max(deadline - time.monotonic(), 0.0))
    # Never wait for a hung one: its thread ends at its own socket timeout.
    pool.shutdown(wait=False, cancel_futures=True)
    return [
        future.result() if future.done() and not future.cancelled() else
        late(target, timeout, started=target.name in started)
        for target, future in ((t, futures[t.name]) for t in targets)
    ]  # fmt: skip


def server_of(target: Target) -> str:
    """``host:port`` (or the socket path) of a standalone target; "" when unknown."""
    if target.mode != "standalone":
        return ""  # its redis_url does not name the server it reads
    try:
        parts = urlsplit(target.redis_url)
        return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"
    except ValueError:
        return ""


def interleaved(targets: Sequence[Target]) -> list[Target]:
    """One target of each server in turn: ``a0 b0 c0 a1 b1 c1 ...``."""
    by_server: dict[str, list[Target]] = {}
    for target in targets:
        by_server.setdefault(server_of(target), []).append(target)
    queues = list(by_server.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def late(target: Target, timeout: float, *, started: bool) -> TargetStatus:
    """The line of a target without an answer at the deadline."""
    why = f"no answer in {timeout:g}s" + ("" if started else " (not reached: every worker busy)")
    return TargetStatus(name=target.name, error=why, labels=target.labels)


def target_status(deps: SlackDeps, target: Target) -> TargetStatus:
    """One target's diagnosis, or the one-line reason it could not be read."""
    try:
        diagnosis = timed_diagnosis(deps, target.name)
        return TargetStatus(name=target.name, diagnosis=diagnosis, labels=target.labels)
    except RedisMemError as err:
        return TargetStatus(name=target.name, error=err.message, labels=target.labels)
    except Exception:  # one broken target must not hide the others
        log.exception("status: diagnosis of %s failed", target.name)
        error = "internal error (see the bot's log)"
        return TargetStatus(name=target.name, error=error, labels=target.labels)


def worst(rows: list[TargetStatus]) -> str:
    """The worst severity seen, or ``error`` when no target could be read."""
    severities = [row.diagnosis.severity for row in rows if row.diagnosis is not None]
    if not severities:
        return "error"
    return max(severities, key=lambda s: s.rank).value


def summary(rows: list[TargetStatus], *, most: int = 20) -> str:
    """``prod critical, stage ok, cache unreachable`` (the first ``most``, then a count)."""
    parts = [
        f"{row.name} {row.diagnosis.severity.value if row.diagnosis else 'unreachable'}"
        for row in rows[:most]
    ]
    if len(rows) > most:
        parts.append(f"and {len(rows) - most} more")
    return ", ".join(parts)
