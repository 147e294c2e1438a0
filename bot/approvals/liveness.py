"""Who executes a request, and whether that process is certainly gone.

A claim (PENDING -> EXECUTING) stores the executor's identity: ``POD_NAME`` (else the
hostname), its pid, and a random ``boot`` id drawn once per process. While the request
executes, its ``heartbeat_at`` is refreshed (``bot.approvals.running``), every
``HEARTBEAT`` at most. Another process may end it as INTERRUPTED only when that
executor is certainly gone (docs/decisions/approvals.md, "Interrupted executions"):

- **same host, another boot**, and its pid is this process's own or not alive on this
  host: a restarted container or process (the old one cannot still run: it had our pid,
  or its pid is free). Decided at start-up, at once.
- **a heartbeat older than** ``STALE_AFTER`` (several heartbeat periods): decided by the
  periodic sweep, on any replica. A live executor refreshes well within it.

Anything else (another host with a fresh heartbeat; a live pid of another process on
this host) is left alone: it may be a replica running it right now.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.approvals.model import ApprovalRequest

HEARTBEAT = timedelta(seconds=10)  # how often a running execution refreshes heartbeat_at
# Several periods: a slow database write, a GC pause or a busy SQLite lock must not make a
# live execution look dead; it also absorbs clock skew between replicas (NTP: well under 1 s).
STALE_AFTER = timedelta(seconds=45)

CANCEL_POLL_SECONDS = 0.5  # a cancel clicked on another replica is seen within this

PidAlive = Callable[[int], bool]


@dataclass(frozen=True)
class ExecutorId:
    """One process: its host (pod), pid and boot id (random, drawn once per process)."""

    host: str
    pid: int
    boot: str

    @classmethod
    def of_this_process(cls, environ: Mapping[str, str] | None = None) -> ExecutorId:
        """``POD_NAME`` (Kubernetes downward API) or the hostname, ``os.getpid()``, a new boot."""
        env = os.environ if environ is None else environ
        host = env.get("POD_NAME") or socket.gethostname() or "unknown-host"
        return cls(host=host[:253], pid=os.getpid(), boot=uuid.uuid4().hex)

    def columns(self) -> dict[str, Any]:
        """The row's executor columns (set by the claim)."""
        return {"executor_host": self.host, "executor_pid": self.pid, "executor_boot": self.boot}

    def describe(self) -> str:
        """``pod-a pid 12``."""
        return f"{self.host} pid {self.pid}"


def executor_of(request: ApprovalRequest) -> ExecutorId | None:
    """The executor a request stored at its claim; None before migration 0005."""
    if request.executor_host is None or request.executor_boot is None:
        return None
    return ExecutorId(request.executor_host, request.executor_pid or 0, request.executor_boot)


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists on this host (signal 0 checks without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to someone else
        return True
    return True


def restarted_here(request: ApprovalRequest, me: ExecutorId, alive: PidAlive = pid_alive) -> bool:
    """Its executor ran on this host under another boot and cannot still be running."""
    them = executor_of(request)
    if them is None or them.host != me.host or them.boot == me.boot:
        return False
    # Our own pid: that process is us now. A free pid: it exited. A live pid of another
    # process may be a second bot on this host (or an unrelated reuse): leave it to the
    # heartbeat, which decides the same question without guessing.
    return them.pid == me.pid or not alive(them.pid)


def stale(request: ApprovalRequest, now: datetime, after: timedelta = STALE_AFTER) -> bool:
    """Its heartbeat is older than ``after`` (no heartbeat: a row from before 0005, not ours)."""
    return request.heartbeat_at is not None and request.heartbeat_at < now - after


@dataclass(frozen=True)
class Liveness:
    """Heartbeat and cancel timings (seconds; ``stale_after`` a timedelta) and the pid check."""

    heartbeat: float = HEARTBEAT.total_seconds()
    stale_after: timedelta = STALE_AFTER
    cancel_poll: float = CANCEL_POLL_SECONDS
    pid_alive: PidAlive = pid_alive
