"""A throwaway ``redis-server`` process on a free loopback port.

For ``redis-mem demo``, the benchmarks and the tests: never for production.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from bot.errors import ConfigError


def redis_server_available() -> bool:
    """True when a ``redis-server`` binary is on PATH."""
    return shutil.which("redis-server") is not None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A redis-server child process; use as a context manager or call start()/stop().

    ``args`` are extra ``--directive value`` pairs, e.g. ``["--maxmemory", "20mb"]``.
    Persistence is off (``--save ''``, ``--appendonly no``) unless args say otherwise.
    """

    def __init__(self, *args: str, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self._args = list(args)
        self._dir = tempfile.TemporaryDirectory(prefix="redis-mem-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:port/0``."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the process and wait until it answers PING (10 s at most)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError("redis-server is not installed (apt-get install redis-server)")
        self._proc = subprocess.Popen(self.command(binary), stdout=subprocess.DEVNULL)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()  # a server that never answered must not outlive the caller
            raise
        return self

    def command(self, binary: str) -> list[str]:
        """The command line: ``redis-server`` on our port and directory, persistence off,
        then ``args`` (a subclass may run it otherwise, e.g. as a sentinel)."""
        cmd = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir.name,
            "--logfile",
            str(Path(self._dir.name) / "redis.log"),
        ]
        if self.password:
            cmd += ["--requirepass", self.password]
        return cmd + self._args

    @property
    def directory(self) -> Path:
        """The server's own temporary directory (its log, its files), removed by ``stop``."""
        return Path(self._dir.name)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ConfigError(f"redis-server exited at start: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    auth = f"AUTH {self.password}\r\n" if self.password else ""
                    sock.sendall(f"{auth}PING\r\n".encode())
                    if b"PONG" in sock.recv(256) or (auth and b"PONG" in sock.recv(256)):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise ConfigError("redis-server did not answer PING within 10 s")

    def log_tail(self) -> str:
        """The last line of the server's log (for error messages)."""
        log = Path(self._dir.name) / "redis.log"
        lines = log.read_text().strip().splitlines() if log.exists() else []
        return lines[-1] if lines else "no log"

    def pause(self) -> None:
        """SIGSTOP the server: it still accepts TCP connections but answers nothing (hung)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        self._signal(signal.SIGCONT)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hung for the duration of the block, whatever happens in it."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def _signal(self, signum: signal.Signals) -> None:
        if self._proc is None or self._proc.poll() is not None:
            raise ConfigError("redis-server is not running")
        self._proc.send_signal(signum)

    def stop(self) -> None:
        """Terminate the process and remove its directory."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)  # a paused server could not act on SIGTERM
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
