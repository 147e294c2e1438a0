"""The check-round half of ``bench/fleet.py``: one scheduled round over the fleet, one server hung.

Imported by ``bench/fleet.py`` (run that). The round is ``HealthService.run_round`` as
``serve`` builds it (``bot.wiring.health_service``: the live sample source, the SQLite
health store, the default rules), over the same targets the status bench uses.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.audit.engine import make_engine
from bot.audit.migrate import prepare_database
from bot.config import Settings, Target
from bot.health.service import HealthService
from bot.redisproc import RedisServer
from bot.wiring import health_service


def timed_rounds(
    targets: dict[str, Target], hung: RedisServer, timeout: float
) -> tuple[float, float, int]:
    """Seconds of a healthy round, of a round with ``hung`` SIGSTOPped, and its late count."""
    with tempfile.TemporaryDirectory(prefix="redis-mem-bench-") as folder:
        url = f"sqlite:///{Path(folder) / 'audit.db'}"
        prepare_database(url)
        engine = make_engine(url)
        settings = Settings(database_url=url, check_timeout=timeout, check_interval=60)
        service = health_service(settings, engine=engine, targets=targets)
        start = datetime.now(UTC).replace(microsecond=0)
        try:
            service.run_round(start)  # warm: the kept connections open
            healthy = _timed(service, start + timedelta(minutes=1))[0]
            with hung.paused():
                slow, late = _timed(service, start + timedelta(minutes=2))
        finally:
            service.close()
            engine.dispose()
    return healthy, slow, late


def _timed(service: HealthService, at: datetime) -> tuple[float, int]:
    began = time.perf_counter()
    result = service.run_round(at)
    seconds = time.perf_counter() - began
    unreachable = sum(1 for check in result.checks if not check.sample.reachable)
    return seconds, unreachable + len(result.late)


def report(targets: dict[str, Target], hung: RedisServer, timeout: float) -> None:
    """Measure and print the check-round lines of bench/fleet.py."""
    healthy, slow, late = timed_rounds(targets, hung, timeout)
    print(f"check round, all answering:    {healthy:7.3f} s")
    print(f"check round, one server hung:  {slow:7.2f} s  = {slow / timeout:.2f}x the timeout;"
          f" {late} unreachable or late ({slow / healthy:.1f}x the healthy round)")  # fmt: skip
    verdict = "met" if slow <= timeout + 1.0 else "MISSED"
    print(f"goal: round <= timeout + 1 s = {timeout + 1:g} s: {verdict}")
