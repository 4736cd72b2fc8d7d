"""Watches and the watch cache's window. A harness wait whose watch is too old relists, as client-go's
reflector does: ``Kube.wait_rollout`` watches a Deployment from its resourceVersion; once the deployments'
watch cache has turned over (a full buffer whose oldest events are older than 75 simulated seconds), that
watch is a 410, and the wait must go on from a fresh list's resourceVersion rather than ask again from the
old one. And a watch that allows bookmarks gets them (each simulated minute, and before its timeout), which
keep a filtered watcher's resourceVersion inside the window."""

from __future__ import annotations

import json

import pytest
from kubernetes import config

from kubesim.clock import SimClock
from kubesim.cluster import SimCluster
from kubesim.store import EVENT_FRESH_SECONDS, WATCH_CACHE_LOWER
from rehearsal.kube import Kube, RolloutTimeout
from tests.conformance.runner import Cluster

DEPLOYMENTS = ("apps", "deployments")


def _deployment(name: str, image: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def _churn(cluster: SimCluster, rounds: int) -> None:
    """Events on the deployments resource that do not touch the target."""
    api = cluster.api
    rt = api.type_of(*DEPLOYMENTS)
    for n in range(rounds):
        api.patch(rt, "default", "churn", "merge", {"metadata": {"labels": {"round": str(n)}}})


def test_a_rollout_wait_whose_watch_expired_relists_instead_of_asking_again():
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        kube = Kube(config.new_client_from_config_dict(cluster.kubeconfig()))
        deployments = kube.resource("apps/v1", "Deployment")
        # A rollout that cannot finish: its image is never pulled.
        deployments.create(body=_deployment("target", "registry.invalid/none:1"), namespace="default")
        deployments.create(body=_deployment("churn", "registry.k8s.io/pause:3.10"), namespace="default")
        cluster.pass_time(2)
        target = deployments.get(name="target", namespace="default").to_dict()
        _churn(cluster, 2 * WATCH_CACHE_LOWER)
        cluster.pass_time(EVENT_FRESH_SECONDS + 5)
        _churn(cluster, 4 * WATCH_CACHE_LOWER)
        old = target["metadata"]["resourceVersion"]
        current = deployments.get(name="target", namespace="default").to_dict()
        assert current["metadata"]["resourceVersion"] == old, "the target changed: the test proves nothing"
        assert cluster.store.watch_too_old(DEPLOYMENTS, int(old)) is not None

        asked: list[str] = []
        watch = kube.dynamic.watch

        def recording(*args, **kwargs):
            asked.append(kwargs["resource_version"])
            return watch(*args, **kwargs)

        kube.dynamic.watch = recording
        with pytest.raises(RolloutTimeout):
            kube.wait_rollout("Deployment", "target", "default", timeout=2)
        assert asked[0] == old
        assert len(asked) >= 2 and all(int(rv) > int(old) for rv in asked[1:]), asked


def test_a_watch_that_allows_bookmarks_gets_one_each_simulated_minute_and_one_before_its_timeout():
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        http = Cluster(cluster.kubeconfig())
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "seen"}}
        cluster.api.create(cluster.api.type_of("", "configmaps"), cm, "default")
        start = cluster.store.resource_version
        response = http.api_client.rest_client.pool_manager.request(
            "GET",
            f"{http.host}/api/v1/namespaces/kube-system/configmaps?watch=true&allowWatchBookmarks=true"
            f"&resourceVersion={start}&timeoutSeconds=3",
            headers=http.headers,
            preload_content=False,
            timeout=30,
        )
        cluster.pass_time(61)  # a simulated minute: the stream's next wake-up sends a bookmark
        made = cluster.api.create(
            cluster.api.type_of("", "configmaps"), dict(cm, metadata={"name": "x"}), "default"
        )

        events = [json.loads(line) for line in response.read().decode().splitlines() if line.strip()]
        bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
        assert [e for e in events if e["type"] != "BOOKMARK"] == []  # other namespaces' events are not sent
        assert len(bookmarks) == 2, events
        assert all(e["object"]["kind"] == "ConfigMap" for e in bookmarks)
        # The last one names a revision past the other namespace's write: resuming there skips nothing.
        assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(
            made["metadata"]["resourceVersion"]
        )
