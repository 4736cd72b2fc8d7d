"""Waits end as soon as the cluster says they cannot succeed, in the cluster's words, within a bounded
simulated time; and a run that changed nothing does not wait for what cannot come."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from istiofacts import catalog
from kubesim import SimClock, SimCluster
from kubesim.faults import CrashLoopFault, PodMatch
from rehearsal import waits
from rehearsal.kube import Kube
from tests.runs import scenario

GOOD_IMAGE = "docker.io/mendhak/http-https-echo:37"  # the sample app's image, in the simulated registry


def _deployment(name: str, image: str, pod_security: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": "app", "image": image}]}
    if pod_security:
        spec["securityContext"] = pod_security
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _first_err_image_pull(evidence: dict) -> datetime:
    firsts = [_when(e["first"]) for e in evidence["events"] if e["message"] == "Error: ErrImagePull"]
    assert firsts, evidence["events"]
    return min(firsts)


def test_a_rollout_that_completes_returns_it(sim_cluster):
    kube = Kube(sim_cluster.api_client())
    kube.apply([_deployment("fine", GOOD_IMAGE)])
    workload = waits.rollout(kube, "Deployment", "fine", "default", timeout=300)
    assert workload["status"]["availableReplicas"] == 1


def test_an_image_that_cannot_be_pulled_fails_after_one_back_off_in_the_clusters_words():
    # A manual clock: simulated time moves only by pass_time and stops at the kubelet's second failed pull, so
    # the cluster's clock at the declaration is the moment the failure became final, whatever the machine's
    # speed (at time scale 0 idle time would pass while the harness thinks).
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        kube = Kube(cluster.api_client())
        image = "registry.invalid/example/not-there:1.0"
        kube.apply([_deployment("unpullable", image)])
        failed: dict = {}

        def wait() -> None:
            try:
                waits.rollout(kube, "Deployment", "unpullable", "default", timeout=300)
            except waits.WaitFailed as exc:
                failed["exc"] = exc

        harness = threading.Thread(target=wait, daemon=True)
        harness.start()

        def pull_failures() -> int:
            return sum(
                int(e.get("count") or 1)
                for e in cluster.store.items(("", "events"), "default")
                if e["reason"] == "Failed" and f'Failed to pull image "{image}"' in e["message"]
            )

        cluster.pass_time(120, step=0.5, until=lambda: pull_failures() >= 2)
        assert pull_failures() == 2, "the kubelet did not try the pull again after its back-off"
        final = clock_now(cluster)
        harness.join(120)  # a hang bound: no more simulated time is needed to declare
        assert not harness.is_alive() and "exc" in failed, "the wait did not end on the second failed pull"
    cause, evidence = failed["exc"].cause, failed["exc"].evidence
    assert cause["reason"] == "ImagePullBackOff" and image in str(failed["exc"])
    assert cause["object"].startswith("pod default/unpullable-")
    assert "no such host" in cause["message"]  # the resolver's own words, via the kubelet's event
    # Declared on the cluster's clock at the second failed pull, one back-off (10 s) after the first.
    declared = _when(evidence["declared_at"])
    assert declared == final
    assert 10 <= (declared - _first_err_image_pull(evidence)).total_seconds() <= 11
    assert evidence["deadline_seconds"] == 300


def clock_now(cluster: SimCluster) -> datetime:
    return datetime.fromtimestamp(int(cluster.clock.now()), tz=UTC)


def test_several_workloads_fail_on_the_first_that_cannot_succeed_while_others_still_roll_out(sim_cluster):
    from kubesim.faults import ReadinessFault

    sim_cluster.faults.add(ReadinessFault(PodMatch(label_selector="app=slow-gateway"), never=True))
    kube = Kube(sim_cluster.api_client())
    image = "registry.invalid/example/pilot:1.0"
    kube.apply([_deployment("slow-gateway", GOOD_IMAGE), _deployment("broken-istiod", image)])
    with pytest.raises(waits.WaitFailed) as failed:
        waits.rollouts(
            kube, [("Deployment", "slow-gateway"), ("Deployment", "broken-istiod")], "default", 300
        )
    assert failed.value.cause["reason"] == "ImagePullBackOff"
    assert failed.value.cause["object"].startswith("pod default/broken-istiod-")


def test_a_crash_loop_fails_with_the_last_log_lines(sim_cluster):
    sim_cluster.faults.add(
        CrashLoopFault(PodMatch(namespace="default", label_selector="app=crashing"), after=0)
    )
    kube = Kube(sim_cluster.api_client())
    kube.apply([_deployment("crashing", GOOD_IMAGE)])
    with pytest.raises(waits.WaitFailed) as failed:
        waits.rollout(kube, "Deployment", "crashing", "default", timeout=300)
    assert failed.value.cause["reason"] == "CrashLoopBackOff"
    assert failed.value.cause["object"].startswith("pod default/crashing-")
    containers = failed.value.evidence["containers"]
    assert containers and containers[0]["restarts"] >= 1


def test_a_container_the_kubelet_refuses_to_create_fails_at_once(sim_cluster):
    kube = Kube(sim_cluster.api_client())
    # runAsNonRoot with runAsUser 0: the kubelet refuses to create the container (kuberuntime_container.go).
    kube.apply([_deployment("rootless", GOOD_IMAGE, {"runAsNonRoot": True, "runAsUser": 0})])
    with pytest.raises(waits.WaitFailed) as failed:
        waits.rollout(kube, "Deployment", "rootless", "default", timeout=300)
    assert failed.value.cause["reason"] == "CreateContainerConfigError"
    assert "non-root" in failed.value.cause["message"]


def test_a_wait_that_passes_its_deadline_says_so(sim_cluster):
    from kubesim.faults import ReadinessFault

    sim_cluster.faults.add(ReadinessFault(PodMatch(label_selector="app=never-ready"), never=True))
    kube = Kube(sim_cluster.api_client())
    kube.apply([_deployment("never-ready", GOOD_IMAGE)])
    with pytest.raises(waits.WaitFailed) as failed:
        waits.rollout(kube, "Deployment", "never-ready", "default", timeout=0.5)
    assert failed.value.cause["reason"] == "DeadlineExceeded"
    assert "did not finish rolling out within 0s (the deadline)" in str(failed.value)


def test_an_unpullable_target_pilot_rolls_back_naming_image_and_reason_after_one_back_off():
    run = scenario("rolled-back")
    record = run.record
    _, target = catalog.default_pair()
    image = f"{catalog.default_hub(target)}/pilot:{target}"
    assert record["verdict"] == "rolled-back", record["failure"]
    assert image in record["failure"] and "ImagePullBackOff" in record["failure"]
    assert (
        record["cause"]["reason"] == "ImagePullBackOff" and record["cause"]["step"] == "restart control plane"
    )
    step = next(s for s in record["steps"] if s["name"] == "restart control plane")
    evidence = next(e["data"] for e in step["evidence"] if e.get("title") == "what the cluster said")
    # The simulator's clock: event timestamps it wrote, and the API server's creationTimestamp of a dry run.
    # Speed-independent order: declared once the kubelet had failed the pull again after its back-off (not at
    # the first failure, not at the deadline). How soon after, in simulated seconds, depends on how fast this
    # machine runs the harness while idle time passes at time scale 0; the exact latency is proven on a manual
    # clock in test_an_image_that_cannot_be_pulled_fails_after_one_back_off_in_the_clusters_words.
    declared = _when(evidence["declared_at"])
    pulls = [
        e for e in evidence["events"] if e["reason"] == "Failed" and "Failed to pull image" in e["message"]
    ]
    assert sum(e["count"] for e in pulls) >= 2, evidence["events"]
    latest = max(_when(e["last"]) for e in pulls)
    assert _first_err_image_pull(evidence) < latest <= declared, evidence["events"]
    assert evidence["waited_seconds"] < evidence["deadline_seconds"]
    assert record["rollback"]["verified"]
    assert record["versions"]["after_rollback"]["control_plane"] == [record["from"]]


def test_a_run_stopped_before_any_change_does_not_poll_for_what_cannot_come():
    record = scenario("precheck-failed").record
    assert record["verdict"] == "failed"
    verify = next(s for s in record["steps"] if s["name"] == "rollback: verify")
    versions_asked = [
        e for e in verify["evidence"] if e["type"] == "command" and e["argv"][1:2] == ["version"]
    ]
    assert len(versions_asked) == 1, [e["argv"] for e in versions_asked]


class _Listed:
    """What the dynamic client's list returns: items with to_dict()."""

    def __init__(self, objects: list[dict]) -> None:
        self.items = [type("Item", (), {"to_dict": lambda self, o=o: o})() for o in objects]


class _EventsOnly:
    """A cluster whose only answers are lists of events and ReplicaSets (the part of Kube the verdict
    reads)."""

    def __init__(self, events: list[dict], replica_sets: list[dict] | None = None) -> None:
        self.events = events
        self.replica_sets = replica_sets or []

    def resource(self, api_version: str, kind: str):
        assert (api_version, kind) in (("v1", "Event"), ("apps/v1", "ReplicaSet"))
        items = self.events if kind == "Event" else self.replica_sets
        return type("Resource", (), {"get": lambda _, namespace=None, label_selector=None: _Listed(items)})()


def _replica_set(deployment: dict, name: str, revision: int) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [
                {"kind": "Deployment", "name": deployment["metadata"]["name"], "uid": "uid-d"}
            ],
        }
    }


def _failed_create(rs: str, message: str, count: int, last: str = "2026-01-01T00:00:10Z") -> dict:
    return {
        "reason": "FailedCreate",
        "type": "Warning",
        "message": message,
        "count": count,
        "lastTimestamp": last,
        "involvedObject": {"kind": "ReplicaSet", "name": rs, "uid": f"uid-{rs}"},
    }


def test_a_rollout_wait_counts_only_failed_creates_of_the_current_replica_set_after_the_back_off():
    # The ReplicaSet controller retries a refused create with its rate-limited queue
    # (pkg/controller/replicaset/replica_set.go) and the recorder aggregates the repeats into count.
    workload = _deployment("web", GOOD_IMAGE)
    workload["metadata"].update(uid="uid-d", annotations={"deployment.kubernetes.io/revision": "2"})
    sets = [_replica_set(workload, "web-old11", 1), _replica_set(workload, "web-new22", 2)]
    refused = "Error creating: pods is forbidden: exceeded quota"
    since = waits._moment("2026-01-01T00:00:05Z")

    def verdict(*events):
        return waits._verdict_of(_EventsOnly(list(events), sets), workload, [], True, since)

    assert verdict(_failed_create("web-old11", refused, 5)) is None  # an old ReplicaSet's
    assert verdict(_failed_create("web-canary-33", refused, 5)) is None  # another workload, same prefix
    assert verdict(_failed_create("web-new22", refused, 1)) is None  # not yet retried after a back-off
    assert verdict(_failed_create("web-new22", refused, 3, "2026-01-01T00:00:01Z")) is None  # before the wait
    cause = verdict(_failed_create("web-new22", refused, 2))
    assert cause == {"object": "replicaset default/web-new22", "reason": "FailedCreate", "message": refused}


def test_pods_refused_at_admission_end_the_wait_in_the_api_servers_words():
    # Real clusters: the ReplicaSet controller records a FailedCreate event, and the deployment controller
    # copies it into a ReplicaFailure condition (pkg/controller/deployment/sync.go, v1.33.1).
    workload = _deployment("refused", GOOD_IMAGE)
    workload["metadata"].update(uid="uid-d", annotations={"deployment.kubernetes.io/revision": "1"})
    refusal = 'Error creating: admission webhook "policy.example.com" denied the request: <no root>'
    event = _failed_create("refused-7d9c5b8f6c", refusal, 2)
    cluster = _EventsOnly([event], [_replica_set(workload, "refused-7d9c5b8f6c", 1)])
    cause = waits._verdict_of(cluster, workload, [], check_events=True)
    assert cause == {
        "object": "replicaset default/refused-7d9c5b8f6c",
        "reason": "FailedCreate",
        "message": refusal,
    }
    workload["status"] = {
        "conditions": [
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": refusal}
        ]
    }
    cause = waits._verdict_of(_EventsOnly([]), workload, [], check_events=False)
    assert (
        cause is not None
        and cause["reason"] == "FailedCreate"
        and cause["object"] == "deployment default/refused"
    )
    assert waits._verdict_of(_EventsOnly([]), _deployment("fine", GOOD_IMAGE), [], check_events=True) is None


def test_progress_lines_say_outcome_duration_and_one_phrase():
    from rehearsal.report import progress
    from rehearsal.run import StepRecord

    step = StepRecord("apply", 100.0, 102.5, "failed", "server refused it; more detail follows. and more")
    assert progress.step_line(step) == "FAIL apply (2.50s): server refused it"
    assert progress.live_line("deployment istio-system/istiod to roll out", 12.4, 300) == (
        "     waiting for deployment istio-system/istiod to roll out: 12s of 300s"
    )
    lines = progress.closing_lines(
        {"verdict": "failed", "from": "a", "to": "b", "cluster": "c", "strategy": "s", "failure": "x: y"},
        "r.html",
    )
    assert lines == ["verdict: failed (Istio a -> b, c, s)", "cause: x: y", "report: r.html"]
