"""A fake Slack Web API over real HTTP: records every call, answers like Slack.

The real ``slack_sdk.WebClient`` (``base_url=fake.api_url``) and Bolt's
``respond()`` (``response_url=fake.response_url(...)``) talk to it over a socket.
Failures are injected as Slack sends them: ``fail`` answers ``{"ok": false}`` (HTTP
200), ``fail_http`` answers an HTTP 429 with ``Retry-After`` or a 5xx, a number of
times, so the client's own retry handlers see what they would see from Slack.
"""

from __future__ import annotations

import email
import itertools
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

BOT_USER_ID = "U0BOT"
TEAM_ID = "T0FAKE"
# A directory (set by tests/conftest.py for the whole session, every xdist worker) where
# each process notes the Web API methods its fakes served: tests/test_slack_scopes.py
# checks them against the Slack app manifest's scopes when the session ends.
METHODS_DIR_ENV = "FAKESLACK_METHODS_DIR"
_noted: set[tuple[str, str]] = set()
_noted_lock = threading.Lock()


def note_method(method: str) -> None:
    """Append ``method`` and the test calling it to this process's file in
    ``$FAKESLACK_METHODS_DIR``, once per method (nothing when the variable is unset)."""
    directory = os.environ.get(METHODS_DIR_ENV)
    if not directory:
        return
    with _noted_lock:
        if (directory, method) in _noted:
            return
        _noted.add((directory, method))
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        line = "\t".join(" ".join(part.split()) for part in (method, test))
        with (Path(directory) / f"{os.getpid()}.tsv").open("a", encoding="utf-8") as out:
            out.write(line + "\n")


@dataclass(frozen=True)
class Call:
    """One request the fake received: the API method (or response_url path) and its params."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int = 200  # what the fake answered: 429/5xx when fail_http injected it
    error: str | None = None  # Slack's error code when it answered ``{"ok": false}``


@dataclass
class _Failure:
    """An injected failure of one method: Slack's error code or an HTTP status."""

    error: str | None = None
    status: int = 200
    times: int | None = None  # None: every call from now on
    retry_after: int | None = None
    when: Callable[[dict[str, Any]], bool] | None = None  # only calls whose params match


@dataclass
class FakeSlack:
    """Start with ``start()``, stop with ``stop()``; inspect ``calls`` or ``wait_for``."""

    calls: list[Call] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # method -> Slack error code
    failures: dict[str, list[_Failure]] = field(default_factory=dict)
    usergroup_users: dict[str, list[str]] = field(default_factory=dict)
    socket_url: str | None = None  # what apps.connections.open answers (tests.fakesocket)
    uploads: dict[str, bytes] = field(default_factory=dict)  # file id -> the bytes uploaded
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _file_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL is set to (slack_sdk appends the method name)."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "cmd") -> str:
        """A response_url whose posts the fake records as method ``response_url/<name>``."""
        return f"{self.base_url}/response_url/{name}"

    def fail(
        self,
        method: str,
        error: str,
        *,
        times: int | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer ``method`` with ``{"ok": false, "error": error}``: from now on, or the next
        ``times`` calls (of those whose params satisfy ``when``)."""
        if times is None and when is None:
            self.errors[method] = error
            return
        with self._lock:
            self.failures.setdefault(method, []).append(_Failure(error, times=times, when=when))

    def fail_http(
        self,
        method: str,
        *,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP ``status`` (429: with a
        ``Retry-After`` header and Slack's ``ratelimited`` body; 5xx: a plain-text page)."""
        failure = _Failure(status=status, times=times, retry_after=retry_after, when=when)
        with self._lock:
            self.failures.setdefault(method, []).append(failure)

    def _take_failure(self, method: str, params: dict[str, Any]) -> _Failure | None:
        """The injected failure this call meets (its count used up), if any."""
        with self._lock:
            for failure in self.failures.get(method, []):
                if failure.times == 0 or (failure.when is not None and not failure.when(params)):
                    continue
                if failure.times is not None:
                    failure.times -= 1
                return failure
        return None

    def start(self) -> FakeSlack:
        """Serve on a free loopback port in a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def calls_to(self, method: str) -> list[Call]:
        """The calls received so far for ``method``."""
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def wait_for(self, method: str, *, count: int = 1, timeout: float = 15.0) -> list[Call]:
        """Poll (bounded) until ``count`` calls to ``method`` arrived; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls_to(method)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        seen = [call.method for call in self.calls]
        raise AssertionError(f"no {count} call(s) to {method} within {timeout}s; saw {seen}")

    def record(self, call: Call) -> dict[str, Any]:
        """Store the call and build Slack's answer to it."""
        error = self.errors.get(call.method)
        with self._lock:
            self.calls.append(call if error is None else replace(call, error=error))
        if error is not None:
            return {"ok": False, "error": error}
        answer = _ANSWERS.get(call.method, lambda fake, params: {})(self, call.params)
        return {"ok": True, **answer}

    def answer(self, call: Call) -> tuple[int, dict[str, str], bytes]:
        """HTTP status, extra headers and body of the answer to an API call (recorded)."""
        note_method(call.method)
        failure = self._take_failure(call.method, call.params)
        if failure is None:
            return 200, {}, json.dumps(self.record(call)).encode()
        if failure.status == 200:
            with self._lock:
                self.calls.append(replace(call, error=failure.error))
            return 200, {}, json.dumps({"ok": False, "error": failure.error}).encode()
        with self._lock:
            self.calls.append(replace(call, status=failure.status))
        if failure.status == 429:  # Slack's rate limit: a JSON body and when to come back
            headers = (
                {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
            )
            return 429, headers, json.dumps({"ok": False, "error": "ratelimited"}).encode()
        return failure.status, {}, b"upstream unavailable"  # a load balancer's page, not JSON

    def accepted(self, method: str) -> list[Call]:
        """The calls of ``method`` Slack answered ``{"ok": true}``."""
        return [c for c in self.calls_to(method) if c.status == 200 and c.error is None]

    def next_ts(self) -> str:
        """A message timestamp like Slack's (unique per fake)."""
        return f"1700000000.{next(self._ts):06d}"

    def next_file_id(self) -> str:
        """A file id like Slack's (unique per fake)."""
        return f"F0FAKE{next(self._file_ids):04d}"

    def receive_upload(self, file_id: str, body: bytes, headers: dict[str, str]) -> int:
        """The upload URL's POST (raw bytes, or a multipart form): store the file's bytes
        unless a failure is injected (``fail_http("upload", status=500)``); its status."""
        call = Call(
            method="upload", params={"file_id": file_id, "length": len(body)}, headers=headers
        )
        failure = self._take_failure("upload", call.params)
        status = failure.status if failure is not None and failure.status != 200 else 200
        with self._lock:
            self.calls.append(replace(call, status=status))
            if status == 200:
                self.uploads[file_id] = _file_part(body, headers.get("content-type", ""))
        return status


def _auth_test(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": "https://fake.slack.test/",
        "team": "Fake",
        "user": "redis-mem",
        "team_id": TEAM_ID,
        "user_id": BOT_USER_ID,
        "bot_id": "B0BOT",
        "is_enterprise_install": False,
    }


def _post_message(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    ts = fake.next_ts()
    message = {"ts": ts, "text": params.get("text"), "blocks": params.get("blocks")}
    if params.get("thread_ts"):  # a thread reply, as Slack echoes it
        message["thread_ts"] = params["thread_ts"]
        message["reply_broadcast"] = bool(params.get("reply_broadcast"))
    return {"channel": params.get("channel"), "ts": ts, "message": message}


def _update(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    return {"channel": params.get("channel"), "ts": params.get("ts"), "text": params.get("text")}


def _users(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    return {"users": fake.usergroup_users.get(str(params.get("usergroup")), [])}


def _connections_open(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    # Socket Mode: the app-level token (the bearer) trades for a websocket URL.
    if fake.socket_url is None:
        return {"ok": False, "error": "not_allowed_token_type"}
    return {"url": fake.socket_url}


def _upload_url(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    # files_upload_v2, step 1: the upload URL points back at the fake (step 2 POSTs there).
    file_id = fake.next_file_id()
    return {"upload_url": f"{fake.base_url}/upload/{file_id}", "file_id": file_id}


def _complete_upload(fake: FakeSlack, params: dict[str, Any]) -> dict[str, Any]:
    # Step 3: the files (decoded by _parse_body) shared in channel_id, in thread_ts if given.
    files = params.get("files") or []
    return {"files": [{"id": f.get("id"), "title": f.get("title")} for f in files]}


_ANSWERS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "chat.postEphemeral": lambda fake, params: {"message_ts": fake.next_ts()},
    "views.open": lambda fake, params: {"view": {"id": "V0FAKE"}},
    "usergroups.users.list": _users,
    "apps.connections.open": _connections_open,
    "files.getUploadURLExternal": _upload_url,
    "files.completeUploadExternal": _complete_upload,
}


def _handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = self.path.split("?", 1)[0].strip("/")
            if path.startswith("upload/"):  # a file's bytes (files_upload_v2), not form params
                status = fake.receive_upload(path.removeprefix("upload/"), body, headers)
                self._send(status, f"OK - {len(body)}".encode(), "text/plain")
                return
            params = _parse_body(body, self.headers.get("Content-Type", ""))
            if path.startswith("response_url/"):
                fake.record(Call(method=path, params=params, headers=headers))
                self._send(200, b"ok", "text/plain")
                return
            call = Call(method=path.removeprefix("api/"), params=params, headers=headers)
            status, extra, payload = fake.answer(call)
            json_body = payload.startswith(b"{")
            self._send(status, payload, "application/json" if json_body else "text/plain", extra)

        def do_GET(self) -> None:
            # slack_sdk sends a few read methods (usergroups.users.list) as GET with a query.
            path, _, query = self.path.partition("?")
            params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            method = path.strip("/").removeprefix("api/")
            status, extra, payload = fake.answer(
                Call(method=method, params=params, headers=headers)
            )
            json_body = payload.startswith(b"{")
            self._send(status, payload, "application/json" if json_body else "text/plain", extra)

        def _send(
            self,
            status: int,
            payload: bytes,
            content_type: str,
            extra: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    return Handler


def _parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    """JSON or form params; form values that hold JSON (blocks) are decoded."""
    text = body.decode("utf-8") if body else ""
    if "json" in content_type:
        return dict(json.loads(text or "{}"))
    params: dict[str, Any] = dict(parse_qsl(text, keep_blank_values=True))
    for key in ("blocks", "attachments", "view", "files"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params


def _file_part(body: bytes, content_type: str) -> bytes:
    """The uploaded file's bytes: the body itself, or the file part of a multipart form."""
    if not content_type.startswith("multipart/"):
        return body
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.walk():
        if part.get_filename() is not None or part.get_param("name", header="content-disposition"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload
    return body
