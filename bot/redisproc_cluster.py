"""A throwaway Redis Cluster: N real ``redis-server --cluster-enabled yes`` primaries.

For the tests and the benchmarks (ORACLES.md's recipe): the servers start on free
loopback ports, ``redis-cli --cluster create ... --cluster-yes`` assigns the slots, and
``start`` returns once every node says ``cluster_state:ok``. Never for production.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from types import TracebackType

from bot.errors import ConfigError
from bot.redisproc import RedisServer, free_port

BUS_OFFSET = 10000  # Redis Cluster's bus listens on the data port plus this
READY_SECONDS = 30.0  # gossip converges in about a second; a loaded 2-core box, more


class ClusterNode(RedisServer):
    """One cluster-enabled ``redis-server`` (its nodes.conf in its own directory)."""

    def __init__(self, *args: str, password: str | None = None) -> None:
        super().__init__(*args, password=password)
        self.port = cluster_port()
        self._args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(self.directory / "nodes.conf"),
            "--cluster-node-timeout",
            "2000",
            *(["--masterauth", password] if password else []),
            *self._args,
        ]

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as the cluster names the node."""
        return f"127.0.0.1:{self.port}"


class RedisClusterProcs:
    """``primaries`` cluster nodes (each with ``args``), slots spread evenly by redis-cli."""

    def __init__(self, *args: str, primaries: int = 3, password: str | None = None) -> None:
        self.password = password
        self.nodes = [ClusterNode(*args, password=password) for _ in range(primaries)]

    @property
    def seed_urls(self) -> list[str]:
        """Every node's URL (``redis://[:password@]127.0.0.1:port/0``)."""
        return [node.url for node in self.nodes]

    def start(self) -> RedisClusterProcs:
        """Start the nodes, create the cluster, wait until it is ``ok`` everywhere."""
        try:
            for node in self.nodes:
                node.start()
            self._create()
            self._wait_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise ConfigError("redis-cli is not installed (apt-get install redis-tools)")
        auth = ["-a", self.password, "--no-auth-warning"] if self.password else []
        command = [cli, *auth, "--cluster", "create", *(n.address for n in self.nodes)]
        done = subprocess.run(
            [*command, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise ConfigError(f"redis-cli --cluster create failed: {done.stdout[-300:]}")

    def _wait_ok(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if all(_cluster_ok(node) for node in self.nodes):
                return
            time.sleep(0.1)
        raise ConfigError(f"the cluster was not ok within {READY_SECONDS:.0f} s")

    def stop(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RedisClusterProcs:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (+10000) is free too, and below 65536."""
    for _ in range(200):
        port = free_port()
        if port + BUS_OFFSET < 65536 and _bindable(port + BUS_OFFSET):
            return port
    raise ConfigError("no free port pair for a cluster node (port and port+10000)")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_ok(node: ClusterNode) -> bool:
    """The node says ``cluster_state:ok`` (raw RESP over a socket: no client needed)."""
    try:
        with socket.create_connection(("127.0.0.1", node.port), timeout=0.5) as sock:
            auth = f"AUTH {node.password}\r\n" if node.password else ""
            sock.sendall(f"{auth}CLUSTER INFO\r\n".encode())
            data = b""
            while b"cluster_state:" not in data or b"\r\n" not in data.split(b"cluster_state:")[1]:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
    except OSError:
        return False
    return b"cluster_state:ok" in data
