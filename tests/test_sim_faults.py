"""Every fault kind of the simulated cluster, and how each one shows."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubesim import Faults, FaultSpecError, SimClock, SimCluster
from kubesim.controllers.workloads import pod_ready

from .test_sim_client import deployment
from .test_sim_rollouts import _available, _create, _pods


def test_image_pull_fault_fails_an_existing_image(sim_cluster):
    sim_cluster.faults.fail_image("registry.k8s.io/pause:3.10")
    _create(sim_cluster, deployment("nopull", replicas=1))
    sim_cluster.wait_for(
        lambda: any(
            e["message"] == "Error: ImagePullBackOff"
            for e in sim_cluster.store.items(("", "events"), "default")
        ),
        60,
        "pull failure",
    )
    failed = [
        e["message"]
        for e in sim_cluster.store.items(("", "events"), "default")
        if e["message"].startswith("Failed to pull image")
    ]
    assert failed[0].endswith("registry.k8s.io/pause:3.10: not found")
    assert not pod_ready(_pods(sim_cluster, "nopull")[0])


def test_api_error_429_carries_retry_after_and_clients_honour_it(sim_cluster, kubectl):
    core = client.CoreV1Api(sim_cluster.api_client())
    always = sim_cluster.faults.fail_api("list", "services", code=429, times=-1, retry_after=0)
    with pytest.raises(ApiException) as exc:
        core.list_namespaced_service("default")
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "0"
    assert json.loads(exc.value.body)["details"] == {"retryAfterSeconds": 0}
    assert always.hits > 1  # the client retried before giving up
    # Both the Python client and client-go (kubectl) wait Retry-After and try again, then get through.
    twice = sim_cluster.faults.fail_api("list", "pods", code=429, times=2, retry_after=1)
    started = time.monotonic()
    core.list_namespaced_pod("default")
    assert twice.hits == 2 and time.monotonic() - started >= 1.0
    again = sim_cluster.faults.fail_api("list", "configmaps", code=429, times=2, retry_after=1)
    kubectl("get", "configmaps", "-n", "default")
    assert again.hits == 2


def test_api_error_500_and_timeout_for_a_verb_and_resource(sim_cluster):
    sim_cluster.faults.fail_api("create", "deployments.apps", code=500, times=1)
    sim_cluster.faults.fail_api("get", "configmaps", code=504, times=1, namespace="default", delay=0.2)
    apps = client.AppsV1Api(sim_cluster.api_client())
    core = client.CoreV1Api(sim_cluster.api_client())
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment("default", deployment("first"))
    assert exc.value.status == 500
    assert json.loads(exc.value.body)["message"] == "Internal error occurred: rehearsal-sim: injected fault"
    apps.create_namespaced_deployment("default", deployment("second"))  # the fault was for one request
    core.list_namespaced_config_map("default")  # other verbs are unaffected
    started = time.monotonic()
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("kube-root-ca.crt", "default")
    assert exc.value.status == 504 and json.loads(exc.value.body)["reason"] == "Timeout"
    assert time.monotonic() - started >= 0.2
    assert core.read_namespaced_config_map("kube-root-ca.crt", "default").metadata.name == "kube-root-ca.crt"


def test_slow_and_never_ready_pods():
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        cluster.faults.delay_ready(delay=20, label_selector="app=slow")
        cluster.faults.delay_ready(never=True, label_selector="app=stuck")
        _create(cluster, deployment("slow", replicas=1))
        _create(cluster, deployment("stuck", replicas=1))
        cluster.pass_time(10, step=0.5)
        assert _pods(cluster, "slow")[0]["status"]["phase"] == "Running"
        assert not pod_ready(_pods(cluster, "slow")[0])
        cluster.pass_time(12, step=0.5)
        assert pod_ready(_pods(cluster, "slow")[0])
        assert _available(cluster, "slow", 1)
        cluster.pass_time(60, step=5)
        stuck = _pods(cluster, "stuck")[0]
        assert stuck["status"]["phase"] == "Running" and not pod_ready(stuck)
        assert not _available(cluster, "stuck", 1)


def test_crash_loop_restarts_with_back_off_and_keeps_previous_logs():
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        cluster.faults.crash_loop(after=2, exit_code=3, label_selector="app=crashy")
        _create(cluster, deployment("crashy", replicas=1))
        cluster.pass_time(5, step=0.5)
        status = _pods(cluster, "crashy")[0]["status"]["containerStatuses"][0]
        assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
        assert status["state"]["waiting"]["message"].startswith(
            "back-off 10s restarting failed container=main pod="
        )
        assert status["lastState"]["terminated"]["exitCode"] == 3
        assert status["restartCount"] == 1
        cluster.pass_time(40, step=1)
        status = _pods(cluster, "crashy")[0]["status"]["containerStatuses"][0]
        assert status["restartCount"] >= 3
        events = {e["reason"] for e in cluster.store.items(("", "events"), "default")}
        assert "BackOff" in events


def test_faults_from_yaml_and_clear_errors(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text("""
faults:
  - type: image-pull
    image: docker.io/istio/pilot:1.28.2
  - type: api-error
    verb: patch
    resource: deployments
    code: 429
    times: 3
    retryAfter: 2
  - type: readiness
    labelSelector: app=istiod
    delay: 30s
  - type: crash-loop
    namespace: rehearsal-apps
    after: 500ms
    exitCode: 137
""")
    faults = Faults.from_file(path)
    assert faults.image_pull[0].image == "docker.io/istio/pilot:1.28.2"
    assert (faults.api_errors[0].verb, faults.api_errors[0].code, faults.api_errors[0].retry_after) == (
        "patch",
        429,
        2,
    )
    assert faults.readiness[0].delay == 30 and faults.crash_loops[0].after == 0.5
    for text, message in (
        ("faults: [{type: melt}]", "unknown type 'melt'"),
        ("faults: [{type: api-error, resource: pods, code: 418}]", "code 418 is not one of"),
        ("faults: [{type: readiness, delay: soon}]", "'soon' is not a duration"),
        ("faults: {a: 1}", "must hold a list"),
        ("faults: [", "is not valid YAML"),
        ("faults: [{type: image-pull, imgae: x}]", "unknown key 'imgae' .*did you mean 'image'"),
        ("faults: [{type: api-error, resource: pods, times: twice}]", "'times' must be an integer"),
        ("faults: [{type: readiness, never: 1}]", "'never' must be true or false"),
        ("faults: []\nfault: [{type: melt}]", "unknown top-level key.s. fault"),
    ):
        with pytest.raises(FaultSpecError, match=message):
            Faults.from_yaml(text)
    with pytest.raises(FaultSpecError, match="cannot read faults file"):
        Faults.from_file(tmp_path / "missing.yaml")
