"""A fake Slack Socket Mode server: a tiny RFC 6455 websocket server over a real socket.

``FakeSlack`` answers ``apps.connections.open`` with ``FakeSocket.url``; slack_sdk's
built-in ``SocketModeClient`` then connects here, gets Slack's ``hello``, and the
test pushes envelopes (``send_envelope``) and reads the client's acks
(``wait_for_ack``). Plain ``ws://`` on loopback: slack_sdk uses no TLS off port 443.

Only what Socket Mode uses is implemented: unfragmented text, ping/pong and
close frames; the server's frames are unmasked, the client's masked.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


@dataclass
class FakeSocket:
    """Start with ``start()``, stop with ``stop()``; one fake app-level connection at a time."""

    received: list[dict[str, Any]] = field(default_factory=list)  # text frames from the bot
    handshakes: list[str] = field(default_factory=list)  # request lines of the upgrades
    _listener: socket.socket | None = None
    _conns: list[socket.socket] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _send_lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        """What ``apps.connections.open`` answers: ``ws://127.0.0.1:<port>/link/?ticket=...``."""
        assert self._listener is not None, "start() the fake first"
        host, port = self._listener.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=fake-ticket&app_id=A0APP"

    def start(self) -> FakeSocket:
        """Listen on a free loopback port; accept connections in a thread."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._spawn(self._accept_loop, self._listener)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then join the threads."""
        if self._listener is not None:
            # shutdown() wakes the blocked accept(); close() alone may not on Linux.
            _shutdown(self._listener)
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            _shutdown(conn)  # the bot's blocked recv() returns at once
            conn.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def connected(self) -> bool:
        """True once a client finished the websocket handshake (and got ``hello``)."""
        with self._lock:
            return bool(self._conns)

    def send_envelope(self, type_: str, payload: dict[str, Any]) -> str:
        """Push an envelope to the connected bot as Slack would; returns its envelope_id."""
        envelope_id = f"env-{next(self._ids):04d}"
        envelope = {
            "envelope_id": envelope_id,
            "type": type_,
            "payload": payload,
            "accepts_response_payload": type_ != "events_api",
        }
        self.send_json(envelope)
        return envelope_id

    def send_json(self, message: dict[str, Any]) -> None:
        """One text frame with ``message`` to the (single) connected bot."""
        with self._lock:
            assert self._conns, "no bot connected"
            conn = self._conns[-1]
        with self._send_lock:
            conn.sendall(_frame(OP_TEXT, json.dumps(message).encode()))

    def acks(self, envelope_id: str) -> list[dict[str, Any]]:
        """The client's messages that acknowledge ``envelope_id``."""
        with self._lock:
            return [m for m in self.received if m.get("envelope_id") == envelope_id]

    def wait_for_ack(self, envelope_id: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Poll (bounded) for the ack of ``envelope_id``; fail the test otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.acks(envelope_id)
            if found:
                return found[0]
            time.sleep(0.01)
        raise AssertionError(f"no ack for {envelope_id} within {timeout}s; got {self.received}")

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # stop() closed the listener
                return
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            reader = conn.makefile("rb")
            if not self._handshake(conn, reader):
                return
            try:
                self._read_frames(conn, reader)
            except (OSError, ValueError):  # stop() closed it, or the bot hung up
                return
            finally:
                with self._lock:
                    if conn in self._conns:
                        self._conns.remove(conn)

    def _handshake(self, conn: socket.socket, reader: Any) -> bool:
        request_line = reader.readline().decode("latin-1").strip()
        headers: dict[str, str] = {}
        while line := reader.readline().decode("latin-1").strip():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if not request_line.startswith("GET ") or key is None:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
        conn.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        with self._lock:
            self.handshakes.append(request_line)
            self._conns.append(conn)
        with self._send_lock:
            conn.sendall(_frame(OP_TEXT, json.dumps(_hello()).encode()))
        return True

    def _read_frames(self, conn: socket.socket, reader: Any) -> None:
        while True:
            opcode, data = _read_frame(reader)
            if opcode == OP_TEXT:
                with self._lock:
                    self.received.append(json.loads(data))
            elif opcode == OP_PING:
                with self._send_lock:
                    conn.sendall(_frame(OP_PONG, data))
            elif opcode == OP_CLOSE:
                with self._send_lock:
                    conn.sendall(_frame(OP_CLOSE, data[:2]))
                return


def _hello() -> dict[str, Any]:
    """Slack's first message on a new Socket Mode connection."""
    return {
        "type": "hello",
        "num_connections": 1,
        "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A0APP"},
    }


def _frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, unfragmented server frame."""
    head = bytes([0x80 | opcode])
    size = len(payload)
    if size < 126:
        return head + bytes([size]) + payload
    if size < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", size) + payload
    return head + bytes([127]) + struct.pack("!Q", size) + payload


def _read_frame(reader: Any) -> tuple[int, bytes]:
    """One client frame (masked, as RFC 6455 requires): its opcode and unmasked payload."""
    b1, b2 = _read_exact(reader, 2)
    size = b2 & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", _read_exact(reader, 2))
    elif size == 127:
        (size,) = struct.unpack("!Q", _read_exact(reader, 8))
    mask = _read_exact(reader, 4) if b2 & 0x80 else b"\0\0\0\0"
    data = _read_exact(reader, size)
    return b1 & 0x0F, bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


def _read_exact(reader: Any, size: int) -> bytes:
    data = reader.read(size)
    if len(data) < size:
        raise ValueError("connection closed mid-frame")
    return bytes(data)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed or not connected
        sock.shutdown(socket.SHUT_RDWR)
