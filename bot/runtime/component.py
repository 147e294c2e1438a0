"""A long-running part of the bot, and the Runtime that starts and stops them in order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Component(Protocol):
    """Something that runs in the background between ``start()`` and ``stop()``."""

    name: str

    def start(self) -> None:
        """Start running (return at once; the work goes on in threads)."""
        ...

    def stop(self) -> None:
        """Stop; let work in flight finish where that is safe (a running fix)."""
        ...


class Runtime:
    """Starts components in order, runs the foreground part, stops them in reverse."""

    def __init__(self, components: Sequence[Component]) -> None:
        """``components``: started first to last, stopped last to first."""
        self._components = list(components)

    def run(self, foreground: Callable[[], None]) -> None:
        """Start every component, call ``foreground`` (the HTTP server), then stop them all.

        A component that fails to start stops the ones already started, then re-raises.
        """
        started: list[Component] = []
        try:
            for component in self._components:
                component.start()
                started.append(component)
            foreground()
        finally:
            for component in reversed(started):
                try:
                    component.stop()
                except Exception:  # one failing stop must not keep the others running
                    log.exception("stopping %s failed", component.name)
