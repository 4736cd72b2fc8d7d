"""The simulated scheduler honours requests against node allocatable in kube-scheduler's words, and waits
take a pod left Unschedulable past the grace as final (FailedScheduling), on the cluster's clock."""

from __future__ import annotations

import threading

from kubesim import SimClock, SimCluster
from kubesim.node import scheduler
from rehearsal import hopeless, waits
from rehearsal.kube import Kube

GOOD_IMAGE = "docker.io/mendhak/http-https-echo:37"  # the sample app's image, in the simulated registry


def _deployment(name: str, memory: str) -> dict:
    container = {"name": "app", "image": GOOD_IMAGE, "resources": {"requests": {"memory": memory}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


def _pod(containers: list[dict], inits: list[dict] | None = None) -> dict:
    return {"spec": {"containers": containers, "initContainers": inits or []}}


def _c(**requests: str) -> dict:
    return {"resources": {"requests": requests}}


def test_a_pods_request_is_its_containers_sum_or_its_largest_init_container():
    pod = _pod([_c(cpu="500m", memory="1Gi"), _c(cpu="100m")], [_c(cpu="2", memory="10Mi")])
    assert scheduler.pod_requests(pod) == {"cpu": 2.0, "memory": 2.0**30}
    sidecar = dict(_c(memory="1Gi"), restartPolicy="Always")  # a native sidecar adds to the sum
    assert scheduler.pod_requests(_pod([_c(memory="1Gi")], [sidecar]))["memory"] == 2 * 2.0**30


def test_a_node_too_small_is_reported_in_kube_schedulers_format():
    node = {"status": {"allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"}}}
    bound = [_pod([_c(cpu="1500m", memory="1Gi")])]
    assert scheduler.insufficient(_pod([_c(cpu="1", memory="512Mi")]), node, bound) == ["Insufficient cpu"]
    assert scheduler.insufficient(_pod([_c(cpu="100m", memory="512Mi")]), node, bound) == []
    assert scheduler.fit_error(1, [["Insufficient memory"]]) == (
        "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: "
        "1 No preemption victims found for incoming pod."
    )
    assert scheduler.fit_error(2, [["Insufficient cpu", "Insufficient memory"]]) == (
        "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) didn't match Pod's "
        "node affinity/selector. preemption: 0/2 nodes are available: 1 No preemption victims found for "
        "incoming pod, 1 Preemption is not helpful for scheduling."
    )


def test_a_pod_asking_more_than_a_node_has_is_unschedulable_and_the_wait_ends_after_the_grace():
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        kube = Kube(cluster.api_client())
        kube.apply([_deployment("huge", "1Ti"), _deployment("small", "64Mi")])
        failed: dict = {}

        def wait() -> None:
            try:
                waits.rollouts(kube, [("Deployment", "huge"), ("Deployment", "small")], "default", 300)
            except waits.WaitFailed as exc:
                failed["exc"] = exc

        def pending() -> list[dict]:
            return [
                p
                for p in cluster.store.items(("", "pods"), "default")
                if p["metadata"]["name"].startswith("huge-") and hopeless.unschedulable(p)
            ]

        cluster.pass_time(10, step=0.5, until=lambda: bool(pending()))
        condition = hopeless.unschedulable(pending()[0])
        assert condition is not None
        nodes = len(cluster.store.items(("", "nodes")))
        assert condition["message"] == (
            f"0/{nodes} nodes are available: {nodes} Insufficient memory. preemption: 0/{nodes} nodes are "
            f"available: {nodes} No preemption victims found for incoming pod."
        )
        events = [
            e for e in cluster.store.items(("", "events"), "default") if e["reason"] == "FailedScheduling"
        ]
        assert events and events[0]["type"] == "Warning" and events[0]["message"] == condition["message"]
        harness = threading.Thread(target=wait, daemon=True)
        harness.start()
        # Within the grace the wait goes on; past it, it ends.
        cluster.pass_time(hopeless.UNSCHEDULABLE_GRACE - 5, step=1)
        assert "exc" not in failed
        cluster.pass_time(60, step=1, until=lambda: "exc" in failed)
        harness.join(60)
        assert not harness.is_alive() and "exc" in failed, "an Unschedulable pod did not end the wait"
    cause = failed["exc"].cause
    assert cause["reason"] == "FailedScheduling" and cause["object"].startswith("pod default/huge-")
    assert "Insufficient memory" in str(failed["exc"])
    assert any(e["reason"] == "FailedScheduling" for e in failed["exc"].evidence["events"])
