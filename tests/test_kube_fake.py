"""The fake API server behaves like the real one on what we use (checked with the real client)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import ApiClient, AppsV1Api, Configuration, CoreV1Api
from kubernetes.client.exceptions import ApiException

from tests.fakekube import NAMESPACE, FakeKube, merge_patch, quantity, strategic_merge

NS = NAMESPACE


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    fake = FakeKube().start().seed_runbook()
    yield fake
    fake.stop()


@pytest.fixture
def api(fake: FakeKube) -> Iterator[ApiClient]:
    configuration = Configuration(host=fake.url)
    configuration.retries = 0
    client: Any = ApiClient(configuration)  # close() is untyped
    yield client
    client.close()


def _status(err: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(str(err.value.body))
    return body


def test_404_carries_a_real_status_body(api: ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        CoreV1Api(api).read_namespaced_config_map(name="nope", namespace=NS)
    assert err.value.status == 404
    assert _status(err) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "kind": "configmaps"},
        "code": 404,
    }


def test_put_replaces_and_a_stale_resource_version_is_a_conflict(api: ApiClient) -> None:
    core = CoreV1Api(api)
    current: Any = core.read_namespaced_config_map(name="langgraph-agent-config", namespace=NS)
    stale = current.metadata.resource_version
    current.data = {"session_ttl_seconds": "3600"}
    replaced: Any = core.replace_namespaced_config_map(
        name="langgraph-agent-config", namespace=NS, body=current
    )
    assert replaced.data == {"session_ttl_seconds": "3600"}
    assert int(replaced.metadata.resource_version) > int(stale)
    current.data = {"session_ttl_seconds": "60"}
    current.metadata.resource_version = stale
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map(
            name="langgraph-agent-config", namespace=NS, body=current
        )
    assert err.value.status == 409
    assert _status(err)["reason"] == "Conflict"


def test_every_write_bumps_the_resource_version(fake: FakeKube, api: ApiClient) -> None:
    core = CoreV1Api(api)
    versions = []
    for ttl in ("1", "2", "3"):
        patch = {"data": {"session_ttl_seconds": ttl}}
        obj: Any = core.patch_namespaced_config_map(
            name="langgraph-agent-config",
            namespace=NS,
            body=patch,
            _content_type="application/merge-patch+json",
        )
        versions.append(int(obj.metadata.resource_version))
    assert versions == sorted(set(versions))


def test_a_list_body_is_sent_as_json_patch_and_applied(fake: FakeKube, api: ApiClient) -> None:
    ops = [
        {"op": "test", "path": "/data/session_sliding_window", "value": "false"},
        {"op": "replace", "path": "/data/session_sliding_window", "value": "true"},
        {"op": "remove", "path": "/data/session_max_concurrent"},
    ]
    CoreV1Api(api).patch_namespaced_config_map(
        name="langgraph-agent-config", namespace=NS, body=ops
    )
    assert fake.calls("PATCH")[-1].content_type == "application/json-patch+json"
    stored = fake.get("configmaps", "langgraph-agent-config")
    assert stored is not None
    assert stored["data"] == {"session_ttl_seconds": "86400", "session_sliding_window": "true"}


def test_a_dict_body_defaults_to_strategic_merge_in_this_client(
    fake: FakeKube, api: ApiClient
) -> None:
    # Why the adapter always passes _content_type: the client picks for us otherwise.
    CoreV1Api(api).patch_namespaced_config_map(
        name="langgraph-agent-config", namespace=NS, body={"data": {"x": "1"}}
    )
    assert fake.calls("PATCH")[-1].content_type == "application/strategic-merge-patch+json"


def test_strategic_merge_of_a_new_container_without_image_is_invalid(api: ApiClient) -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "typo", "resources": {}}]}}}}
    with pytest.raises(ApiException) as err:
        AppsV1Api(api).patch_namespaced_deployment(
            name="redis-session",
            namespace=NS,
            body=patch,
            _content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 422
    assert "containers[2].image: Required value" in _status(err)["message"]


def test_a_merge_patch_replaces_lists_where_strategic_merge_merges_them() -> None:
    original = {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}
    patch = {"containers": [{"name": "b", "image": "z"}]}
    assert merge_patch(original, patch) == {"containers": [{"name": "b", "image": "z"}]}
    assert strategic_merge(original, patch) == {
        "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]
    }
    assert merge_patch({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_an_unknown_patch_content_type_is_415(api: ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        CoreV1Api(api).patch_namespaced_config_map(
            name="langgraph-agent-config",
            namespace=NS,
            body={"data": {}},
            _content_type="application/apply-patch+yaml",
        )
    assert err.value.status == 415


def test_delete_collection_uses_the_label_selector(fake: FakeKube, api: ApiClient) -> None:
    CoreV1Api(api).delete_collection_namespaced_pod(
        namespace=NS, label_selector="app=langgraph-agent"
    )
    assert fake.pod_names() == [
        "redis-mem-6f7c9d8b4-m4n5p",
        "redis-session-7d9f8c6b5-x2k9p",
        "redis-session-backup-28461-h7d2s",
    ]
    assert fake.calls("DELETE")[-1].rbac == ("", "pods", "deletecollection", "")


def test_fail_next_fails_exactly_the_given_number_of_times(fake: FakeKube, api: ApiClient) -> None:
    core = CoreV1Api(api)
    fake.fail_next("*", f"/api/v1/namespaces/{NS}/configmaps/", 500, times=2)
    for _ in range(2):
        with pytest.raises(ApiException) as err:
            core.read_namespaced_config_map(name="langgraph-agent-config", namespace=NS)
        assert err.value.status == 500
    core.read_namespaced_config_map(name="langgraph-agent-config", namespace=NS)
    assert [r.status for r in fake.calls("GET")] == [500, 500, 200]


def test_quantities_compare_like_kubernetes() -> None:
    assert quantity("1Gi") == quantity("1024Mi") > quantity("1G")
    assert quantity("1536Mi") == quantity("1.5Gi")
    assert quantity("100m") * 10 == quantity("1")
    with pytest.raises(ValueError):
        quantity("1 GB")
