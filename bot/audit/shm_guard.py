"""Refuse to touch a SQLite database whose WAL shared-memory file would crash the process.

In WAL mode SQLite maps ``<db>-shm`` (the wal-index) into memory and reads and writes it
as memory, even for a plain read (a reader writes its read mark there). When that file is
truncated under the mapping, or can no longer be written (``chattr +i``, a volume
remounted read-only after an I/O error, a shut-down filesystem), the kernel answers the
next access with SIGBUS: the process dies on the spot, with no exception to catch and no
log line. ``PRAGMA mmap_size=0`` does not help (it is already 0: it governs the database
file, not the wal-index), and the only mode without the mapping (``locking_mode=EXCLUSIVE``)
locks every other connection and process out of the database.

So before SQLite touches the file (a new connection, a transaction's BEGIN), ``ShmGuard``
looks at it from outside: a regular file this process may write, at least as long as the
part of it this process has mapped. Otherwise it raises ``SharedMemoryUnsafe``, an OSError
every store already turns into a one-line AuditUnavailable, and logs one line per fault
(and one when it is over). See docs/decisions/faults.md.

The file is never opened to be checked: closing any descriptor of a file drops every POSIX
lock this process holds on it, SQLite's own included.
"""

from __future__ import annotations

import logging
import os
import stat
import threading

log = logging.getLogger(__name__)

MAPS = "/proc/self/maps"
REGION = 32 * 1024  # SQLite's wal-index region: the -shm grows by whole regions


class SharedMemoryUnsafe(OSError):
    """The ``-shm`` file cannot be used safely: touching the database could kill the process."""


class ShmGuard:
    """Checks ``<database>-shm`` before each use of the database (see the module docstring)."""

    def __init__(self, database: str) -> None:
        """``database``: the SQLite file path as in the URL (relative to the current directory)."""
        self.path = os.path.abspath(database) + "-shm"
        self._problem: str | None = None
        self._safe_size = 0  # the size at the last check that passed
        self._lock = threading.Lock()

    def check(self) -> None:
        """Return when the file is safe (or absent); else log once and raise SharedMemoryUnsafe."""
        problem = self._find_problem()
        self._report(problem)
        if problem is not None:
            raise SharedMemoryUnsafe(
                f"SQLite shared-memory file {self.path} {problem}: "
                "not touching the database (SQLite would crash the bot)",
            )

    def _find_problem(self) -> str | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None  # SQLite creates it; nothing of it is mapped here
        except OSError as err:
            return f"cannot be examined ({err.strerror})"
        if not stat.S_ISREG(info.st_mode):
            return "is not a regular file"
        # os.access answers EPERM/EROFS even for root: immutable files, read-only mounts.
        if not os.access(self.path, os.W_OK, effective_ids=os.access in os.supports_effective_ids):
            return "is not writable (read-only file system, immutable file or permissions)"
        size = info.st_size
        # SQLite only grows the file, in whole regions, while this process has it mapped;
        # reading /proc/self/maps costs about a millisecond, so only a file that shrank or
        # is not made of whole regions is measured against what is mapped.
        if size < self._safe_size or size % REGION or size == 0:
            mapped = mapped_extent(self.path)
            if size < mapped:
                return f"was truncated to {size:,} bytes under the {mapped:,} this process maps"
        self._safe_size = size
        return None

    def _report(self, problem: str | None) -> None:
        with self._lock:
            if problem == self._problem:
                return
            before, self._problem = self._problem, problem
        if problem is not None:
            log.error(
                "audit database unusable: SQLite shared-memory file %s %s; refusing every "
                "database access until it is fixed",
                self.path,
                problem,
            )
        elif before is not None:
            log.warning("SQLite shared-memory file %s is usable again", self.path)


def mapped_extent(path: str, maps: str = MAPS) -> int:
    """How far into ``path`` this process has it mapped (0: not mapped, or no ``/proc``)."""
    target = os.path.realpath(path)
    extent = 0
    try:
        with open(maps, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                # start-end perms offset dev inode pathname (the pathname may hold spaces)
                fields = line.rstrip("\n").split(maxsplit=5)
                if len(fields) == 6 and fields[5] == target:
                    start, end = (int(part, 16) for part in fields[0].split("-"))
                    extent = max(extent, int(fields[2], 16) + end - start)
    except OSError:
        return 0  # not Linux: the size check is skipped, the others still run
    return extent
