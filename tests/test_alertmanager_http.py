"""``POST /alertmanager`` in process: the real Starlette app under uvicorn, a real database.

The edges the subprocess tests do not reach cheaply: repeated or odd Authorization
headers, a chunked body over 1 MB (no Content-Length to refuse early), the audit
database down (503, Alertmanager retries), the throttled refusal log on a clock passed
in, and that the answer comes before any diagnosis or Slack call (both on the worker).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from bot.alertmanager.http import Webhook
from bot.alertmanager.ports import GroupView, Posted
from bot.alertmanager.service import AlertmanagerService
from bot.alertmanager.store import SqlGroupStore
from bot.audit.engine import make_engine
from bot.audit.migrate import upgrade
from bot.audit.store import SqlAuditStore
from bot.config import Target
from bot.diagnosis.model import Diagnosis
from bot.web import create_web_app
from tests.asgiserver import ThreadedServer
from tests.redisserver import free_port
from tests.test_alertmanager_payload import encoded, payload

TOKEN = "in-process-token"


@dataclass
class Counting:
    """Counts what the worker side was asked (nothing, until the worker runs)."""

    diagnoses: list[str] = field(default_factory=list)
    posts: list[GroupView] = field(default_factory=list)

    def diagnose(self, target: str) -> Diagnosis:
        self.diagnoses.append(target)
        raise AssertionError("no diagnosis in the request")

    def post(self, channel: str, view: GroupView) -> Posted:
        self.posts.append(view)
        return Posted(channel, "1.1")

    def update(self, where: Posted, view: GroupView) -> Posted:
        self.posts.append(view)
        return where


@dataclass
class Ticks:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class App:
    url: str
    counting: Counting
    ticks: Ticks
    store: SqlGroupStore

    def post(self, body: bytes, **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}/alertmanager", content=body, headers=headers, timeout=10)


def build(engine: Engine, counting: Counting, ticks: Ticks) -> ThreadedServer:
    service = AlertmanagerService(
        targets={"prod": Target(name="prod")},
        default_channel="C0ALERTS",
        store=SqlGroupStore(engine),
        audit=SqlAuditStore(engine),
        poster=counting,
        diagnose=counting.diagnose,
        clock=lambda: datetime.now(UTC),
    )
    web = create_web_app(
        registry=CollectorRegistry(),
        clock=ticks,
        webhook=Webhook(token=TOKEN, intake=service),
    )
    return ThreadedServer.start(web)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    upgrade(engine)
    counting, ticks = Counting(), Ticks()
    server = build(engine, counting, ticks)
    yield App(server.url, counting, ticks, SqlGroupStore(engine))
    server.stop()
    engine.dispose()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_answer_comes_before_any_diagnosis_or_post(app: App) -> None:
    answer = app.post(encoded(payload()), **bearer())
    assert (answer.status_code, answer.text) == (200, "ok")
    assert app.counting.diagnoses == [] and app.counting.posts == []
    assert len(app.store.pending(now=datetime.now(UTC), limit=10)) == 1


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", f"Bearer {TOKEN}"), ("Authorization", f"Bearer {TOKEN}")],
        [("Authorization", f"bearer   {TOKEN}")],  # scheme case and spaces: accepted below
        [("Authorization", TOKEN)],
        [("Authorization", f"Bearer {TOKEN[:-1]}")],
        [("Authorization", "Bearer")],
        [("Authorization", "Bearer t\u00e9st".encode().decode("latin-1"))],
    ],
)
def test_authorization_headers(app: App, headers: list[tuple[str, str]]) -> None:
    raw = [(k.encode(), v.encode("latin-1")) for k, v in headers]
    answer = httpx.post(f"{app.url}/alertmanager", content=encoded(payload()), headers=raw)
    expected = 200 if headers == [("Authorization", f"bearer   {TOKEN}")] else 401
    assert answer.status_code == expected


def test_a_chunked_body_over_1_mb_is_refused_without_reading_it_all(app: App) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB offered, 1 MiB + a chunk read
            yield b" " * 65536

    answer = httpx.post(f"{app.url}/alertmanager", content=chunks(), headers=bearer(), timeout=10)
    assert (answer.status_code, answer.text) == (400, "body over 1 MB")
    # A declared length over the limit is refused before a byte of the body is read.
    host, port = app.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + f"\r\nContent-Length: {2 * 1024 * 1024}\r\n\r\n{{}}".encode()
        )
        status_line = conn.recv(4096).split(b"\r\n")[0]
    assert status_line == b"HTTP/1.1 400 Bad Request"
    assert app.store.pending(now=datetime.now(UTC), limit=10) == []


def test_refusals_are_logged_once_per_reason_per_minute(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.alertmanager.http")
    for _ in range(5):
        assert app.post(encoded(payload()), **bearer("nope-nope")).status_code == 401
    assert app.post(b"{", **bearer()).status_code == 400
    app.ticks.now += 61
    assert app.post(encoded(payload())).status_code == 401
    lines = [r.getMessage() for r in caplog.records if "Alertmanager" in r.getMessage()]
    assert lines == [
        "refused Alertmanager request from 127.0.0.1: missing or wrong bearer token",
        "refused Alertmanager request from 127.0.0.1: body is not JSON",
        "refused Alertmanager request from 127.0.0.1: missing or wrong bearer token; "
        "4 more not logged since the last such line",
    ]
    assert not any("nope-nope" in line for line in lines)


def test_the_audit_database_down_is_503_and_one_line(caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x")
    counting = Counting()
    server = build(engine, counting, Ticks())
    try:
        answer = httpx.post(
            f"{server.url}/alertmanager", content=encoded(payload()), headers=bearer(), timeout=10
        )
    finally:
        server.stop()
        engine.dispose()
    assert (answer.status_code, answer.text) == (503, "audit database unavailable, retry")
    assert counting.posts == []
    [line] = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    assert "\n" not in line and "unavailable while" in line
