"""Fuzz ``/redis-mem`` through HTTP: hostile slash commands, signed, to ``redis-mem serve``.

    .venv/bin/python bench/fuzz.py [--cases 100000] [--concurrency 8] [--seed 8]
                                   [--only N] [--hypothesis]

Starts ``redis-mem serve`` as a subprocess (HTTP mode, as in production) on a SQLite
audit trail, with the fake Slack Web API of ``tests/fakeslack.py`` and two targets:
``prod``, a real redis-server (password-protected, loaded with session keys) that
commands really diagnose, and ``down``, an unreachable address whose URL holds a
password. Then sends ``--cases`` fuzzed slash commands (huge numbers, 1e999, unicode
digits, NUL, 100,000-letter words, invalid UTF-8, planted secrets in URL and
``key=value`` forms, and valid commands among them), ``--concurrency`` at a time,
each signed as Slack signs it, while a probe sends ``/redis-mem help`` beside them.

Prints counts: the HTTP status histogram, 500s, tracebacks in the captured log,
planted and configured secrets echoed (in HTTP answers, fake-Slack calls and audit
rows), and the probe's latency under load as a ratio of its latency with no load
(measured first, in the same run), with its maximum in ms. Exits 0 only when there
were 0 HTTP 500s, 0 tracebacks and 0 secrets echoed.

``--only N`` replays case N alone (the printed failures name their case numbers).
``--hypothesis`` runs the property-based suites under the "fuzz" profile instead
(HYPOTHESIS_PROFILE=fuzz: 20,000 examples per test) and exits with pytest's code.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import redis
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.audit.engine import make_engine  # noqa: E402
from bot.audit.store import SqlAuditStore  # noqa: E402
from bot.redisproc import RedisServer, free_port  # noqa: E402
from tests.fakeslack import FakeSlack  # noqa: E402
from tests.hostile import MARKER, VALID_COMMANDS, make_case  # noqa: E402
from tests.slacksign import signed_headers  # noqa: E402

REDIS_MEM = str(Path(sys.executable).with_name("redis-mem"))
SIGNING_SECRET = "fuzz-signing-secret-Kp4"
BOT_TOKEN = "xoxb-fuzz-token-Vt9"
REDIS_PASSWORD = "prod-redis-pw-Hq2"
DOWN_PASSWORD = "down-redis-pw-Jm5"
CONFIGURED = (SIGNING_SECRET, BOT_TOKEN, REDIS_PASSWORD, DOWN_PASSWORD)
PROBE = "help"


# --- the bot ------------------------------------------------------------------------


@dataclass
class Bot:
    """``redis-mem serve`` and what it talks to."""

    workdir: Path
    fake: FakeSlack
    redis_server: RedisServer
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}"

    @property
    def log(self) -> Path:
        return self.workdir / "serve.log"

    def start(self) -> Bot:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [REDIS_MEM, "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"redis-mem serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit("redis-mem serve did not start in 60 s")

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return None if self.proc is None else self.proc.returncode


def start_bot(workdir: Path) -> Bot:
    """A real redis-server with sessions, the fake Slack, and serve wired to both."""
    server = RedisServer("--maxmemory", "64mb", password=REDIS_PASSWORD).start()
    client = redis.Redis.from_url(server.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(2_000):
            pipe.set(f"session:{i}", "x" * 500, ex=None if i % 3 else 86_400)
        pipe.execute()
    client.close()
    fake = FakeSlack().start()
    targets = [
        {"name": "prod", "redis_url": server.url},
        {"name": "down", "redis_url": f"redis://:{DOWN_PASSWORD}@127.0.0.1:{free_port()}/0"},
    ]
    (workdir / "targets.yml").write_text(yaml.safe_dump({"targets": targets}))
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "SLACK_", "DATABASE_"))
    }
    env = base | {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "DATABASE_URL": f"sqlite:///{workdir / 'audit.db'}",
        "PORT": str(free_port()),
        "REDIS_MEM_TARGETS_FILE": str(workdir / "targets.yml"),
        "REDIS_MEM_APPROVERS": "U0APPROVE",
        "REDIS_MEM_CHANNEL": "C0OPS",
        "REDIS_MEM_SAMPLE_SIZE": "100",
        "REDIS_MEM_LOG_LEVEL": "INFO",
        "KUBECONFIG": str(workdir / "no-kubeconfig"),  # fixes fail in one line, touch nothing
        # A KUBECONFIG makes "auto" elect through a Lease; this one bot leads alone.
        "REDIS_MEM_LEADER_ELECTION": "none",
    }
    return Bot(workdir=workdir, fake=fake, redis_server=server, env=env).start()


# --- sending ------------------------------------------------------------------------


def body_of(text: str, *, index: int, response_url: str) -> str:
    """The form body Slack posts; one case in 50 also carries raw invalid UTF-8."""
    fields = {
        "token": "legacy-unused",
        "team_id": "T0FAKE",
        "team_domain": "fake",
        "channel_id": "C0OPS",
        "channel_name": "ops",
        "user_id": "U0ALICE" if index % 2 else "U0APPROVE",
        "user_name": "alice",
        "command": "/redis-mem",
        "api_app_id": "A0APP",
        "response_url": response_url,
        "trigger_id": f"{index}.42.fuzz",
    }
    raw = "%FF%ED%A0%80" if index % 50 == 7 else ""
    return urlencode(fields) + "&text=" + quote(text, safe="") + raw


@dataclass
class Tally:
    """What the fuzzing saw, filled by several threads."""

    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    echoed: list[tuple[int, str]] = field(default_factory=list)  # (case, where)
    failed: list[tuple[int, int]] = field(default_factory=list)  # (case, status)
    slowest: list[tuple[float, int]] = field(default_factory=list)  # (ms, case), 10 kept
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self, index: int, response: httpx.Response | None, error: str | None, ms: float = 0.0
    ) -> None:
        with self.lock:
            self.slowest = sorted([*self.slowest, (ms, index)], reverse=True)[:10]
            if response is None:
                self.errors[error or "?"] += 1
                return
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                self.failed.append((index, response.status_code))
            for secret in (MARKER, *CONFIGURED):
                if secret in response.text:
                    self.echoed.append((index, f"HTTP answer ({secret[:6]}…)"))


def send(client: httpx.Client, bot: Bot, text: str, index: int) -> httpx.Response:
    body = body_of(text, index=index, response_url=bot.fake.response_url("cmd"))
    headers = signed_headers(secret=SIGNING_SECRET, body=body)
    return client.post(f"{bot.url}/slack/events", content=body, headers=headers)


def probe_once(client: httpx.Client, bot: Bot, index: int) -> float:
    """The latency of one ``/redis-mem help`` in ms (inf if it was not answered 200)."""
    started = time.perf_counter()
    try:
        response = send(client, bot, PROBE, index)
    except httpx.HTTPError:
        return float("inf")
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed if response.status_code == 200 else float("inf")


def fuzz(bot: Bot, cases: Iterator[tuple[int, str]], *, concurrency: int, tally: Tally) -> None:
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(timeout=30) as client:
            while True:
                with lock:
                    item = next(cases, None)
                if item is None:
                    return
                index, text = item
                started = time.perf_counter()
                try:
                    response = send(client, bot, text, index)
                except httpx.HTTPError as err:
                    tally.add(index, None, type(err).__name__)
                    continue
                tally.add(index, response, None, (time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def probe_during(bot: Bot, done: threading.Event, *, interval: float) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(timeout=30) as client:
        for index in itertools.count(10**9):
            if done.is_set():
                break
            latencies.append(probe_once(client, bot, index))
            time.sleep(interval)
    return latencies


# --- after --------------------------------------------------------------------------


def wait_quiet(bot: Bot, *, seconds: float = 3.0, timeout: float = 600.0) -> int:
    """Wait until the audit trail stops growing (the jobs after the acks are done)."""
    engine = make_engine(bot.env["DATABASE_URL"])
    store = SqlAuditStore(engine)
    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = sum(1 for _ in store.iter_entries())
        if count != last:
            last, stable_since = count, time.monotonic()
        elif time.monotonic() - stable_since >= seconds:
            break
        time.sleep(0.5)
    engine.dispose()
    return last


def secrets_in_audit(bot: Bot) -> list[str]:
    engine = make_engine(bot.env["DATABASE_URL"])
    found = []
    for entry in SqlAuditStore(engine).iter_entries():
        text = repr(entry)
        found += [
            f"audit row {entry.seq} ({entry.action}: …{text[max(0, at - 60) : at + 20]}…)"
            for s in (MARKER, *CONFIGURED)
            if (at := text.find(s)) >= 0
        ]
    engine.dispose()
    return found


def secrets_in_slack(fake: FakeSlack) -> list[str]:
    found = []
    for call in list(fake.calls):
        text = json.dumps(call.params, ensure_ascii=False)
        found += [f"{call.method} ({s[:6]}…)" for s in (MARKER, *CONFIGURED) if s in text]
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(
    *, tally: Tally, baseline: list[float], loaded: list[float], after: list[float], log: str,
    rows: int,
    slack_echoes: list[str], audit_echoes: list[str], slack_calls: int, cases: int,
    seconds: float,
) -> bool:  # fmt: skip
    tracebacks = log.count("Traceback (most recent call last)")
    errors = sum(1 for line in log.splitlines() if " ERROR " in line)
    five_hundreds = sum(n for status, n in tally.statuses.items() if status >= 500)
    echoed = len(tally.echoed) + len(slack_echoes) + len(audit_echoes)
    base = statistics.median(baseline)
    answered = [v for v in loaded if v != float("inf")]
    print(f"cases sent            {cases:,} in {seconds:.1f} s ({cases / seconds:,.0f}/s)")
    print(f"HTTP statuses         {dict(sorted(tally.statuses.items()))}")
    print(f"transport errors      {dict(tally.errors) or 0}")
    print(f"HTTP 500s             {five_hundreds}  cases: {tally.failed[:10]}")
    print(f"tracebacks in log     {tracebacks}  (ERROR lines: {errors})")
    print(f"audit rows            {rows:,}")
    print(f"fake Slack calls      {slack_calls:,}")
    print(f"secrets echoed        {echoed}  (HTTP {len(tally.echoed)}, Slack {len(slack_echoes)},"
          f" audit {len(audit_echoes)})")  # fmt: skip
    for where in (tally.echoed + [(-1, e) for e in slack_echoes + audit_echoes])[:10]:
        print(f"    case {where[0]}: {where[1]}")
    slow = ", ".join(f"#{i} {ms:.0f} ms" for ms, i in tally.slowest[:5])
    print(f"slowest fuzz answers  {slow}  (replay one with --only N)")
    print(
        f"probe /redis-mem help, no load: median {base:.1f} ms, p99"
        f" {percentile(baseline, 0.99):.1f} ms ({len(baseline)} probes before the fuzzing);"
        f" after it: median {statistics.median(after):.1f} ms, max {max(after):.1f} ms"
    )
    if answered:
        print(
            f"probe under load:     median {statistics.median(answered):.1f} ms"
            f" (x{statistics.median(answered) / base:.1f}), p99 {percentile(answered, 0.99):.1f} ms"
            f" (x{percentile(answered, 0.99) / base:.1f}), max {max(answered):.1f} ms"
            f" (x{max(answered) / base:.1f}); {len(loaded) - len(answered)} of {len(loaded)}"
            " not answered 200"
        )
    return five_hundreds == 0 and tracebacks == 0 and echoed == 0


def run_hypothesis() -> int:
    suites = ["tests/test_fuzz_parsers.py", "tests/test_scrub.py"]
    env = os.environ | {"HYPOTHESIS_PROFILE": "fuzz"}
    pytest = str(Path(sys.executable).with_name("pytest"))
    return subprocess.call([pytest, "-q", "-p", "no:cacheprovider", *suites], cwd=REPO, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--only", type=int, help="replay this one case (and print its text)")
    parser.add_argument("--probe-interval", type=float, default=0.05, help="seconds")
    parser.add_argument("--baseline-probes", type=int, default=100)
    parser.add_argument("--hypothesis", action="store_true", help="the property suites instead")
    args = parser.parse_args()
    if args.hypothesis:
        return run_hypothesis()

    with tempfile.TemporaryDirectory(prefix="redis-mem-fuzz-") as tmp:
        bot = start_bot(Path(tmp))
        try:
            return fuzz_bot(bot, args)
        finally:
            bot.stop()
            bot.fake.stop()
            bot.redis_server.stop()


def fuzz_bot(bot: Bot, args: argparse.Namespace) -> int:
    with httpx.Client(timeout=30) as client:
        # Warm up: each real command once, so one-time costs (the first fix imports the
        # Kubernetes client: ~0.4 s of one core) are not counted as a request's delay.
        for index, text in enumerate(VALID_COMMANDS):
            send(client, bot, text, 2 * 10**9 + index)
        wait_quiet(bot)
        baseline = [probe_once(client, bot, 3 * 10**9 + i) for i in range(args.baseline_probes)]
    if args.only is not None:
        indexes: Iterator[int] = iter([args.only])
        print(f"case {args.only}: {make_case(args.seed, args.only)[:500]!r}")
    else:
        indexes = iter(range(args.cases))
    cases = ((i, make_case(args.seed, i)) for i in indexes)
    tally, done = Tally(), threading.Event()
    probes: list[float] = []
    prober = threading.Thread(
        target=lambda: probes.extend(probe_during(bot, done, interval=args.probe_interval))
    )
    started = time.monotonic()
    prober.start()
    fuzz(bot, cases, concurrency=args.concurrency, tally=tally)
    seconds = time.monotonic() - started
    done.set()
    prober.join()
    rows = wait_quiet(bot)
    with httpx.Client(timeout=30) as client:  # the machine's own noise, for comparison
        after = [probe_once(client, bot, 4 * 10**9 + i) for i in range(args.baseline_probes)]
    slack_echoes = secrets_in_slack(bot.fake)
    audit_echoes = secrets_in_audit(bot)
    code = bot.stop()
    log = bot.log.read_text(errors="replace")
    ok = report(
        tally=tally, baseline=baseline, loaded=probes, after=after, log=log, rows=rows,
        slack_echoes=slack_echoes, audit_echoes=audit_echoes, slack_calls=len(bot.fake.calls),
        cases=1 if args.only is not None else args.cases, seconds=seconds,
    )  # fmt: skip
    print(f"serve exit code       {code}")
    if not ok:
        tail = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
        print("log excerpt:", *tail[:10], sep="\n    ")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
