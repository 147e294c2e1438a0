"""Ack latency of ``redis-mem serve`` under a burst, beside a Bolt app that only acks.

    .venv/bin/python bench/slack_ack.py [--rounds 5] [--bursts 20,50]

Starts, in one run: a real redis-server loaded with sessions, the fake Slack Web API
(tests/fakeslack.py), ``redis-mem serve`` (HTTP mode, SQLite audit trail, two targets
on that server) and the baseline ``bench/ackonly.py`` (the same Bolt + Starlette +
uvicorn layout, listeners that only ``ack()``). Then, alternating between the two so
both see the same machine, it sends bursts of N concurrent signed requests, all released
at once: ``/redis-mem status`` (each runs two diagnoses after its ack) and clicks of a
fix-request button (each runs a diagnosis and opens a form after its ack). The latency
measured is the HTTP answer, i.e. Slack's view of the ack, not the work.

A last phase SIGSTOPs the Redis (hung, as in an incident) and sends a burst of
``status`` again: every ack must still come at once, and the answers later.

Prints p50/p99 in ms per kind and burst size, and the ratio of our p99 to the
baseline's p99 (goal: <= 2x at 20 concurrent). Exits 1 when a request was not acked
with 200.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
import redis
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.redisproc import RedisServer, free_port  # noqa: E402
from tests.fakeslack import FakeSlack  # noqa: E402
from tests.slacksign import button_click_payload, signed_headers  # noqa: E402

REDIS_MEM = str(Path(sys.executable).with_name("redis-mem"))
SECRET = "ack-bench-signing-secret"
TOKEN = "xoxb-ack-bench"
GOAL = 2.0  # our p99 / the ack-only app's p99, at 20 concurrent


@dataclass
class Server:
    """One HTTP server under test: ``serve`` or the ack-only baseline."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}/slack/events"

    def start(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        health = self.url.replace("/slack/events", "/healthz")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited:\n{self.log.read_text()[-2000:]}")
            try:
                if httpx.get(health, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"{self.name} did not start in 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def slash_body(index: int, response_url: str) -> str:
    """``/redis-mem status`` as Slack posts it."""
    return urlencode(
        {
            "team_id": "T0FAKE",
            "channel_id": "C0OPS",
            "user_id": f"U0USER{index}",
            "user_name": f"user{index}",
            "command": "/redis-mem",
            "text": "status",
            "api_app_id": "A0APP",
            "response_url": response_url,
            "trigger_id": f"{index}.1.bench",
        }
    )


def click_body(index: int, response_url: str) -> str:
    """A click of the ``expire-keys-without-ttl`` request button on target ``prod``."""
    payload = button_click_payload(
        action_id="redis_mem.request.expire-keys-without-ttl",
        value="prod",
        response_url=response_url,
        user=(f"U0USER{index}", f"user{index}"),
        trigger_id=f"{index}.2.bench",
    )
    return urlencode({"payload": json.dumps(payload)})


Body = Callable[[int, str], str]


def burst(server: Server, fake: FakeSlack, body: Body, size: int) -> list[float]:
    """``size`` signed requests released together; each one's answer time in ms (inf: not
    acked with 200)."""
    bodies = [body(i, fake.response_url(f"b{i}")) for i in range(size)]
    clients = [httpx.Client(timeout=10) for _ in range(size)]
    for client in clients:  # connect first: the burst measures the ack, not TCP set-up
        client.get(server.url.replace("/slack/events", "/healthz"))
    gate = threading.Barrier(size)
    times = [float("inf")] * size

    def one(i: int) -> None:
        headers = signed_headers(secret=SECRET, body=bodies[i])
        gate.wait()
        started = time.perf_counter()
        try:
            answer = clients[i].post(server.url, content=bodies[i], headers=headers)
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            times[i] = (time.perf_counter() - started) * 1000

    threads = [threading.Thread(target=one, args=(i,)) for i in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    return times


def settle(fake: FakeSlack, *, quiet: float = 1.0, timeout: float = 120.0) -> None:
    """Wait until the fake Slack has seen no call for ``quiet`` s: the work is done."""
    deadline = time.monotonic() + timeout
    seen, since = len(fake.calls), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = len(fake.calls)
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def start_all(
    workdir: Path, extra: dict[str, str]
) -> tuple[RedisServer, FakeSlack, Server, Server]:
    """The store, the fake Slack, ``serve`` and the baseline, all started."""
    store = RedisServer("--maxmemory", "64mb").start()
    client = redis.Redis.from_url(store.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(5_000):
            pipe.set(f"session:{i}", "x" * 800, ex=None if i % 4 else 3_600)
        pipe.execute()
    client.close()
    fake = FakeSlack().start()
    targets = [{"name": "prod", "redis_url": store.url}, {"name": "prod-2", "redis_url": store.url}]
    (workdir / "targets.yml").write_text(yaml.safe_dump({"targets": targets}))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SLACK_"))}
    common = base | {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake.api_url,
    }
    ours = (
        common
        | {
            "PORT": str(free_port()),
            "DATABASE_URL": f"sqlite:///{workdir / 'audit.db'}",
            "REDIS_MEM_TARGETS_FILE": str(workdir / "targets.yml"),
            "REDIS_MEM_APPROVERS": "U0APPROVE",
            "REDIS_MEM_CHANNEL": "C0OPS",
            "REDIS_MEM_LOG_LEVEL": "WARNING",
            "REDIS_MEM_CHECK_INTERVAL": "3600",
            "KUBECONFIG": str(workdir / "no-kubeconfig"),
            # A KUBECONFIG makes "auto" elect through a Lease; this one bot leads alone.
            "REDIS_MEM_LEADER_ELECTION": "none",
        }
        | extra
    )
    serve = Server("serve", [REDIS_MEM, "serve"], ours, workdir / "serve.log").start()
    baseline_env = common | {"PORT": str(free_port())}
    baseline = Server(
        "ack-only", [sys.executable, str(REPO / "bench" / "ackonly.py")], baseline_env,
        workdir / "ackonly.log",
    ).start()  # fmt: skip
    return store, fake, serve, baseline


def measure(
    servers: list[Server], fake: FakeSlack, sizes: list[int], rounds: int
) -> dict[tuple[str, str, int], list[float]]:
    """Every (server, kind, size) burst ``rounds`` times, alternating the servers, after
    one unmeasured warm-up burst of each kind."""
    kinds: dict[str, Body] = {"status": slash_body, "click": click_body}
    results: dict[tuple[str, str, int], list[float]] = {}
    for body in kinds.values():  # warm-up, not measured: first imports, connections, caches
        for server in servers:
            burst(server, fake, body, min(sizes))
            settle(fake)
    for _ in range(rounds):
        for size in sizes:
            for kind, body in kinds.items():
                for server in servers:
                    times = burst(server, fake, body, size)
                    results.setdefault((server.name, kind, size), []).extend(times)
                    settle(fake)
    return results


def hung_phase(store: RedisServer, serve: Server, fake: FakeSlack, size: int) -> list[float]:
    """A burst of ``status`` while the Redis is SIGSTOPped; the answers come after SIGCONT."""
    store.pause()
    try:
        return burst(serve, fake, slash_body, size)
    finally:
        store.resume()
        settle(fake, quiet=3.0)


def report(results: dict[tuple[str, str, int], list[float]], hung: list[float]) -> int:
    """Print the table and the goal; 1 when any request was not acked."""
    failed = 0
    print(f"{'server':<9} {'kind':<7} {'burst':>5} {'n':>4} {'p50 ms':>8} {'p99 ms':>8}")
    for (name, kind, size), times in sorted(results.items(), key=lambda kv: kv[0][1:] + kv[0][:1]):
        bad = sum(t == float("inf") for t in times)
        failed += bad
        ok = [t for t in times if t != float("inf")] or [float("inf")]
        line = f"{name:<9} {kind:<7} {size:>5} {len(times):>4} "
        line += f"{statistics.median(ok):>8.1f} {percentile(ok, 0.99):>8.1f}"
        print(line + (f"  ({bad} not acked)" if bad else ""))
    print()
    for (name, kind, size), times in sorted(results.items()):
        if name != "serve":
            continue
        base = results[("ack-only", kind, size)]
        ratio = percentile(times, 0.99) / percentile(base, 0.99)
        goal = f"  (goal <= {GOAL:.1f}x: {'met' if ratio <= GOAL else 'NOT met'})"
        print(f"p99 ratio serve/ack-only, {kind}, {size} concurrent: {ratio:.2f}x"
              + (goal if size == 20 else ""))  # fmt: skip
    bad = sum(t == float("inf") for t in hung)
    failed += bad
    print(f"\nRedis SIGSTOPped, {len(hung)} concurrent status: ack p50 "
          f"{statistics.median(hung):.1f} ms, p99 {percentile(hung, 0.99):.1f} ms, "
          f"max {max(hung):.1f} ms, {bad} not acked")  # fmt: skip
    return 1 if failed else 0


def name_value(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` of ``--serve-env``; anything else is argparse's one-line error."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bursts", default="20,50", help="comma-separated burst sizes")
    parser.add_argument(
        "--serve-env", action="append", default=[], metavar="NAME=VALUE", type=name_value,
        help="extra environment of serve (e.g. REDIS_MEM_SLACK_WORKERS=4)",
    )  # fmt: skip
    args = parser.parse_args()
    extra = dict(args.serve_env)
    sizes = [int(size) for size in args.bursts.split(",")]
    with tempfile.TemporaryDirectory(prefix="ack-bench-") as tmp:
        store, fake, serve, baseline = start_all(Path(tmp), extra)
        try:
            # One request alone first: what a quiet bot answers in.
            alone = [burst(s, fake, slash_body, 1)[0] for s in (serve, baseline)]
            settle(fake)
            print(f"one request alone: serve {alone[0]:.1f} ms, ack-only {alone[1]:.1f} ms\n")
            results = measure([serve, baseline], fake, sizes, args.rounds)
            hung = hung_phase(store, serve, fake, max(sizes))
            return report(results, hung)
        finally:
            serve.stop()
            baseline.stop()
            fake.stop()
            store.stop()


if __name__ == "__main__":
    raise SystemExit(main())
