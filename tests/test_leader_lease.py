"""The Lease adapter (bot/kube/lease.py) through the real client against the fake API server.

Conflicts are the fake's: a create of an existing Lease and a replace with a stale
resourceVersion are 409s, which the adapter answers as "someone else won" (None).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes.client import ApiClient, Configuration

from bot.config import KubeCoordinates
from bot.errors import KubernetesError
from bot.kube.access import LEASE_METHOD_CALLS, LEASE_NAME, ApiCall, Rule, required_rules
from bot.kube.lease import KubeLeaseStore
from bot.leases import LeaseRecord
from bot.runtime.election import Elector, LeaseClaim, LeaseTimings
from tests.clirun import run_cli
from tests.fakekube import NAMESPACE, FakeKube
from tests.redisserver import free_port

AT = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)
GROUP = "coordination.k8s.io"
COORDS = KubeCoordinates()


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    kube = FakeKube().start()
    yield kube
    kube.stop()


def _store(fake: FakeKube, *, timeout: float = 2.0) -> KubeLeaseStore:
    configuration = Configuration(host=fake.url)
    configuration.retries = 0
    return KubeLeaseStore(api_client=ApiClient(configuration), namespace=NAMESPACE, timeout=timeout)


def _record(holder: str, *, at: datetime = AT, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(holder, 15, at, at, transitions)


def test_create_get_and_replace_round_trip_with_resource_versions(fake: FakeKube) -> None:
    store = _store(fake)
    assert store.get() is None
    created = store.create(_record("pod-a"))
    assert created is not None and created.record == _record("pod-a")
    stored = fake.get("leases", LEASE_NAME)
    assert stored is not None
    assert stored["spec"]["holderIdentity"] == "pod-a"
    assert stored["spec"]["leaseDurationSeconds"] == 15
    assert stored["metadata"]["resourceVersion"] == created.version
    later = AT + timedelta(seconds=2)
    renewed = store.replace(_record("pod-a", at=later), created.version)
    assert renewed is not None and renewed.version != created.version
    got = store.get()
    assert got is not None and got.record.renewed_at == later and got.version == renewed.version
    store.close()


def test_a_second_create_and_a_stale_replace_are_conflicts_not_errors(fake: FakeKube) -> None:
    a, b = _store(fake), _store(fake)
    first = a.create(_record("pod-a"))
    assert first is not None
    assert b.create(_record("pod-b")) is None  # 409 AlreadyExists
    assert a.replace(_record("pod-a", at=AT + timedelta(seconds=2)), first.version) is not None
    assert b.replace(_record("pod-b", transitions=1), first.version) is None  # stale: 409
    current = b.get()
    assert current is not None and current.record.holder == "pod-a"
    assert [(r.method, r.status) for r in fake.calls()] == [
        ("POST", 200),
        ("POST", 409),
        ("PUT", 200),
        ("PUT", 409),
        ("GET", 200),
    ]


def test_calls_are_the_tables_and_the_ha_role_allows_them(fake: FakeKube) -> None:
    store = _store(fake)
    runs = {
        "get": store.get,
        "create": lambda: store.create(_record("pod-a")),
        "replace": lambda: store.replace(_record("pod-a"), _version(fake)),
    }
    rules = required_rules(COORDS, leader_election=True)
    assert {r for r in rules if r.resource == "leases"} == {
        Rule(GROUP, "leases", frozenset({"get", "update"}), frozenset({LEASE_NAME})),
        Rule(GROUP, "leases", frozenset({"create"}), frozenset()),
    }
    assert not any(r.resource == "leases" for r in required_rules(COORDS))
    for method, run in runs.items():
        before = len(fake.calls())
        run()
        sent = fake.calls()[before:]
        assert tuple(ApiCall(*r.rbac[:3]) for r in sent) == LEASE_METHOD_CALLS[method], method
        for request in sent:
            group, resource, verb, name = request.rbac
            assert any(
                r.group == group
                and r.resource == resource
                and verb in r.verbs
                and (not r.names or name in r.names)
                for r in rules
            ), request.rbac
            assert request.path.startswith(f"/apis/{GROUP}/v1/namespaces/{NAMESPACE}/leases")


def _version(fake: FakeKube) -> str:
    lease = fake.get("leases", LEASE_NAME)
    assert lease is not None
    return str(lease["metadata"]["resourceVersion"])


def test_an_api_error_is_one_line_and_a_failed_attempt(fake: FakeKube) -> None:
    store = _store(fake)
    fake.fail_next("GET", "/apis/coordination.k8s.io", 403)
    with pytest.raises(KubernetesError) as caught:
        store.get()
    message = caught.value.message
    assert "\n" not in message and "403" in message and "leases" in message
    fake.fail_next("GET", "/apis/coordination.k8s.io", 503)
    timings = LeaseTimings.scaled(3)
    elector = Elector(
        LeaseClaim(store, identity="pod-a", timings=timings),
        retry=timings.retry,
        fence=timings.renew_deadline,
    )
    assert elector.step() is False  # logged, not raised
    assert elector.step() is True


def test_a_slow_or_unreachable_api_server_is_one_line(fake: FakeKube) -> None:
    store = _store(fake, timeout=0.2)
    fake.slow(5, method="PUT")
    with pytest.raises(KubernetesError) as caught:
        store.replace(_record("pod-a"), "1")
    assert caught.value.message == (
        f"Kubernetes API unreachable at {fake.url}: timed out after 0.2 s (while trying to "
        f"update leases {NAMESPACE}/{LEASE_NAME}); the change may or may not have been "
        "applied, so read it back before retrying"
    )
    fake.clear_faults()
    store.close()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    configuration = Configuration(host=url)
    configuration.retries = 0
    closed = KubeLeaseStore(api_client=ApiClient(configuration), namespace=NAMESPACE)
    with pytest.raises(KubernetesError) as caught:
        closed.get()
    assert caught.value.message == (
        f"Kubernetes API unreachable at {url}: connection refused or host not reachable "
        f"(while trying to read leases {NAMESPACE}/{LEASE_NAME})"
    )
    closed.close()


def test_two_electors_over_http_one_leads_and_release_hands_over(fake: FakeKube) -> None:
    timings = LeaseTimings.scaled(3)
    a, b = (
        Elector(
            LeaseClaim(_store(fake), identity=name, timings=timings),
            retry=timings.retry,
            fence=timings.renew_deadline,
        )
        for name in ("pod-a", "pod-b")
    )
    assert a.step() is True
    assert b.step() is False
    a.stop()  # never started its thread: stop still releases
    assert b.step() is True
    lease = fake.get("leases", LEASE_NAME)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "pod-b" and lease["spec"]["leaseTransitions"] == 1


def test_kubernetes_election_without_a_kubeconfig_is_one_line_at_start(tmp_path: Path) -> None:
    result = run_cli(
        "serve",
        env={
            "SLACK_BOT_TOKEN": "xoxb-lease",
            "SLACK_SIGNING_SECRET": "lease-secret",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
            "PORT": str(free_port()),
            "REDIS_MEM_LEADER_ELECTION": "kubernetes",
            "KUBECONFIG": str(tmp_path / "missing"),
            "KUBERNETES_SERVICE_HOST": "",
        },
    )
    assert result.code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("redis-mem: error")]
    assert errors == [
        "redis-mem: error: leader election: cannot load the Kubernetes kubeconfig "
        "configuration: Invalid kube-config file. No configuration found."
    ]
    assert "Traceback" not in result.stderr
