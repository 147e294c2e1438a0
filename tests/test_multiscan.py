"""One thread scanning several real Redis nodes at once (bot.redisinfo.multiscan).

The nodes here are standalone redis-servers: the driver cares only that each is its own
Redis with its own socket. Real cluster primaries go through it in
tests/test_cluster_diagnosis.py (``ClusterProbe`` with ``full=True``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

from bot.errors import RedisUnavailable
from bot.redisinfo.client import connect
from bot.redisinfo.info import read_server_info
from bot.redisinfo.multiscan import ScanNode, ScanResult, scan_nodes
from bot.redisinfo.snapshot import KeySample, ProgressFn
from tests.conftest import RedisFactory
from tests.redisserver import RedisServer
from tests.test_redis_scan import load

Reports = list[tuple[int, int, int]]  # (node, scanned, total), in the order they came


@contextmanager
def nodes_of(
    servers: Sequence[RedisServer], reports: Reports, also: dict[int, ProgressFn] | None = None
) -> Iterator[list[ScanNode]]:
    """A ScanNode per server (connected, INFO read) recording its progress in ``reports``;
    ``also[n]`` is called too on node n's reports. The clients are closed afterwards."""
    clients = [connect(server.url, timeout=5) for server in servers]

    def progress(n: int) -> ProgressFn:
        def report(scanned: int, total: int) -> None:
            reports.append((n, scanned, total))
            if also and n in also:
                also[n](scanned, total)

        return report

    try:
        nodes = []
        for n, (server, client) in enumerate(zip(servers, clients, strict=True)):
            info = read_server_info(client)
            nodes.append(ScanNode(server.url, client, info.dbsize, info.lfu, progress(n)))
        yield nodes
    finally:
        for client in clients:
            client.close()


def sample(result: ScanResult) -> KeySample:
    assert isinstance(result, KeySample), result
    return result


def test_every_node_is_scanned_whole_and_all_at_once(redis_factory: RedisFactory) -> None:
    servers = [redis_factory() for _ in range(3)]
    for server, sessions in zip(servers, (3000, 1200, 7), strict=True):
        load(server.url, sessions=sessions, others=300)
    reports: Reports = []
    threads: set[str] = set()

    def thread(scanned: int, total: int) -> None:
        threads.add(threading.current_thread().name)

    with nodes_of(servers, reports, also=dict.fromkeys(range(3), thread)) as nodes:
        results = scan_nodes(nodes, pattern="session:*", budget=1.0, timeout=5)

    samples = [sample(r) for r in results]
    assert [s.matched for s in samples] == [3000, 1200, 7]
    assert [len({k.key for k in s.keys}) for s in samples] == [3000, 1200, 7]
    assert all(s.mode == "full" and s.method == "scan+lua" for s in samples)
    assert all(k.ttl > 0 and k.bytes > 300 for s in samples for k in s.keys)
    # Each node's last report is its whole keyspace.
    assert [[r[1:] for r in reports if r[0] == n][-1] for n in range(3)] == [(3300, 3300),
            (1500, 1500), (307, 307)]  # fmt: skip
    # Together, not in turn: the second node reported before the first one's last batch.
    first_batches = [i for i, r in enumerate(reports) if r[0] == 0 and r[1] < r[2]]
    assert min(i for i, r in enumerate(reports) if r[0] == 1) < max(first_batches)
    assert threads == {threading.current_thread().name}  # one thread drove all three


def test_a_hung_node_fails_alone_in_one_line(redis_factory: RedisFactory) -> None:
    servers = [redis_factory() for _ in range(3)]
    for server in servers:
        load(server.url, sessions=2000)
    reports: Reports = []
    hung = servers[1]

    def hang(scanned: int, total: int) -> None:
        if not hung_at:  # at its first batch: a call after it is never answered
            hung_at.append(scanned)
            hung.pause()

    hung_at: list[int] = []
    try:
        with nodes_of(servers, reports, also={1: hang}) as nodes:
            results = scan_nodes(nodes, pattern="session:*", budget=1.0, timeout=1)
    finally:
        hung.resume()

    assert [sample(results[n]).matched for n in (0, 2)] == [2000, 2000]
    error = results[1]
    assert isinstance(error, RedisUnavailable)
    assert error.message == f"cannot reach Redis at {hung.url}: no answer within 1 s"


def test_a_busy_node_is_waited_out_while_the_others_go_on(redis_factory: RedisFactory) -> None:
    busy, other = redis_factory("--lua-time-limit", "10"), redis_factory()
    load(busy.url, sessions=500)
    load(other.url, sessions=3000)
    spinning = threading.Thread(target=spin, args=(busy.url,))
    reports: Reports = []
    killer = redis.Redis.from_url(busy.url)

    def kill_once_the_other_went_on(scanned: int, total: int) -> None:
        if scanned >= total // 2 and spinning.is_alive():
            killer.script_kill()
            spinning.join()

    try:
        with nodes_of([busy, other], reports, also={1: kill_once_the_other_went_on}) as nodes:
            spinning.start()  # connected and INFO read: the scan itself meets BUSY
            wait_until_busy(busy.url)
            results = scan_nodes(nodes, pattern="session:*", budget=1.0, timeout=5)
    finally:
        if spinning.is_alive():
            killer.script_kill()
        killer.close()

    # BUSY was retried (and the script, never loaded there, sent by its text after NOSCRIPT).
    assert [sample(r).matched for r in results] == [500, 3000]
    # The other node scanned half of its keys before the busy one's first batch came back.
    assert min(i for i, r in enumerate(reports) if r[0] == 0) > min(
        i for i, r in enumerate(reports) if r[0] == 1 and r[1] >= r[2] // 2
    )


def spin(url: str) -> None:
    """Run a script that never ends on its own (killed by SCRIPT KILL): Redis is BUSY."""
    client = redis.Redis.from_url(url)
    try:
        client.eval("while true do end", 0)
    except redis.exceptions.ResponseError:  # ERR Script killed by user with SCRIPT KILL
        pass
    finally:
        client.close()


def wait_until_busy(url: str) -> None:
    client = redis.Redis.from_url(url)
    for _ in range(500):
        try:
            client.ping()
        except redis.exceptions.ResponseError:  # BUSY Redis is busy running a script
            break
        threading.Event().wait(0.01)
    client.close()


def test_scripting_refused_on_one_node_falls_back_there_alone(
    redis_factory: RedisFactory,
) -> None:
    plain = redis_factory("--rename-command", "EVAL", "", "--rename-command", "EVALSHA", "")
    servers = [redis_factory(), plain]
    for server in servers:
        load(server.url, sessions=1500, others=200)
    reports: Reports = []

    with nodes_of(servers, reports) as nodes:
        lua, fallback = (sample(r) for r in scan_nodes(nodes, pattern="session:*", budget=0.5,
                                                       timeout=5))  # fmt: skip

    assert (lua.method, fallback.method) == ("scan+lua", "scan+pipeline")
    assert lua.matched == fallback.matched == 1500
    assert {k.key for k in lua.keys} == {k.key for k in fallback.keys}
    assert [r[1:] for r in reports if r[0] == 1][-1] == (1700, 1700)


def test_a_script_flushed_mid_scan_is_loaded_again(redis_factory: RedisFactory) -> None:
    servers = [redis_factory(), redis_factory()]
    for server in servers:
        load(server.url, sessions=3000)
    admin = redis.Redis.from_url(servers[0].url)
    reports: Reports = []

    def flush(scanned: int, total: int) -> None:
        admin.script_flush()  # lands while node 0's next EVALSHA is on its way

    with nodes_of(servers, reports, also={0: flush}) as nodes:
        results = scan_nodes(nodes, pattern="session:*", budget=1.0, timeout=5)
    admin.close()

    assert [(sample(r).method, sample(r).matched) for r in results] == [("scan+lua", 3000)] * 2


def test_a_node_gone_before_its_scan_is_one_line(redis_factory: RedisFactory) -> None:
    servers = [redis_factory(), redis_factory()]
    load(servers[0].url, sessions=100)
    reports: Reports = []

    with nodes_of(servers, reports) as nodes:
        servers[1].stop()
        results = scan_nodes(nodes, pattern="session:*", budget=0.5, timeout=2)

    assert sample(results[0]).matched == 100
    error = results[1]
    assert isinstance(error, RedisUnavailable)
    assert error.message.startswith(f"cannot reach Redis at {servers[1].url}: ")
    assert "\n" not in error.message
