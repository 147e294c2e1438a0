"""Serve an ASGI app (the bot's Starlette app) with a real uvicorn in a thread, on a free port."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette

from tests.redisserver import free_port


@dataclass
class ThreadedServer:
    """A running uvicorn; ``url`` is where it listens, ``stop()`` ends it."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @classmethod
    def start(cls, web: Starlette, *, timeout: float = 15.0) -> ThreadedServer:
        """Serve ``web`` on 127.0.0.1 and wait (bounded) until uvicorn has started."""
        port = free_port()
        config = uvicorn.Config(
            web, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                raise AssertionError(f"uvicorn exited at start (port {port} in use?)")
            if time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start in time")
            time.sleep(0.02)
        return cls(url=f"http://127.0.0.1:{port}", server=server, thread=thread)

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread (bounded)."""
        self.server.should_exit = True
        self.thread.join(timeout=5)
