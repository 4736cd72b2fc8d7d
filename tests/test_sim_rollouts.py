"""Rollout behaviour of the simulated cluster: availability during updates, stalls with real reasons."""

from __future__ import annotations

import base64
import json

import pytest

from kubesim import SimClock, SimCluster
from kubesim.apiserver.api import RequestOptions
from kubesim.controllers.workloads import pod_ready

from .test_sim_client import deployment


def _create(cluster: SimCluster, body: dict, namespace: str = "default") -> dict:
    rt = cluster.api.type_for_kind(body["apiVersion"], body["kind"])
    assert rt is not None, f"no resource type for {body['kind']}"
    return cluster.api.create(rt, body, namespace, RequestOptions(manager="test"))


def _pods(cluster: SimCluster, app: str) -> list[dict]:
    return [
        p for p in cluster.store.items(("", "pods"), "default") if p["metadata"]["labels"].get("app") == app
    ]


def _available(cluster: SimCluster, name: str, want: int) -> bool:
    d = cluster.store.get(("apps", "deployments"), "default", name)
    assert d is not None, f"deployment {name} is gone"
    s = d.get("status") or {}
    return (
        s.get("observedGeneration") == d["metadata"]["generation"]
        and s.get("updatedReplicas") == want
        and s.get("availableReplicas") == want
        and s.get("replicas") == want
    )


@pytest.mark.parametrize("replicas", [1, 3])
def test_max_unavailable_zero_never_drops_below_replicas(replicas):
    # A manual clock moved in explicit steps: every pod event is seen, whatever the machine's speed.
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        body = deployment("steady", replicas=replicas, maxSurge=1, maxUnavailable=0)
        body["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] = {
            "exec": {"command": ["true"]},
            "initialDelaySeconds": 2,
            "periodSeconds": 1,
        }
        _create(cluster, body)
        cluster.pass_time(60, step=0.5, until=lambda: _available(cluster, "steady", replicas))
        assert _available(cluster, "steady", replicas), "the first rollout did not finish in 60 simulated s"
        ready_counts: list[int] = []

        def count(event) -> None:
            if event.gr == ("", "pods"):
                ready_counts.append(
                    sum(
                        1
                        for p in _pods(cluster, "steady")
                        if pod_ready(p) and not p["metadata"].get("deletionTimestamp")
                    )
                )

        cluster.store.subscribe(count)
        cluster.api.patch(
            cluster.api.type_of("apps", "deployments"),
            "default",
            "steady",
            "strategic",
            {
                "spec": {
                    "template": {
                        "metadata": {
                            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-21T10:00:00Z"}
                        }
                    }
                }
            },
            RequestOptions(manager="kubectl-rollout"),
        )

        def rolled() -> bool:
            return _available(cluster, "steady", replicas) and len(_pods(cluster, "steady")) == replicas

        cluster.pass_time(120, step=0.5, until=rolled)
        assert rolled(), "the second rollout did not finish in 120 simulated s"
        assert ready_counts, "the rollout produced no pod events"
        assert min(ready_counts) >= replicas


def test_unpullable_image_stalls_with_the_real_reasons_and_deadline():
    clock = SimClock.manual_clock()
    with SimCluster(clock=clock, system_workloads=False) as cluster:
        # Docker Hub holds every public image here, as on kind; this one is made missing (a deleted tag).
        cluster.registry.remove("docker.io/library/does-not-exist:1.0")
        body = deployment("broken", replicas=1, image="docker.io/library/does-not-exist:1.0")
        body["spec"]["progressDeadlineSeconds"] = 30
        _create(cluster, body)
        cluster.pass_time(3, step=0.5)
        pod = _pods(cluster, "broken")[0]
        waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
        assert waiting["reason"] == "ImagePullBackOff"
        assert waiting["message"] == 'Back-off pulling image "docker.io/library/does-not-exist:1.0"'
        events = [
            (e["reason"], e["message"])
            for e in cluster.store.items(("", "events"), "default")
            if e["involvedObject"]["name"] == pod["metadata"]["name"]
        ]
        assert (
            "Failed",
            'Failed to pull image "docker.io/library/does-not-exist:1.0": failed to pull and unpack '
            'image "docker.io/library/does-not-exist:1.0": failed to resolve reference '
            '"docker.io/library/does-not-exist:1.0": pull access denied, repository does not exist or may '
            "require authorization: server message: insufficient_scope: authorization failed",
        ) in events
        assert ("Failed", "Error: ErrImagePull") in events and ("Failed", "Error: ImagePullBackOff") in events
        cluster.pass_time(40, step=2)
        status = cluster.store.get(("apps", "deployments"), "default", "broken")["status"]
        progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
        assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
        assert status.get("availableReplicas", 0) == 0
        # The image appears in the registry: the next back-off retry pulls it and the pod starts.
        cluster.registry.add_image("docker.io/library/does-not-exist:1.0", program="pause")
        cluster.pass_time(330, step=10)
        assert pod_ready(_pods(cluster, "broken")[0])


def test_unpullable_image_rollout_keeps_old_pods_serving(kubectl, sim_cluster):
    _create(sim_cluster, deployment("keep", replicas=2))
    sim_cluster.wait_for(lambda: _available(sim_cluster, "keep", 2), 60, "rollout")
    kubectl("set", "image", "deployment/keep", "main=registry.invalid/pause:9", "-n", "default")
    result = kubectl("rollout", "status", "deployment/keep", "--timeout=3s", check=False)
    assert result.returncode != 0
    assert (
        'Waiting for deployment "keep" rollout to finish: 1 out of 2 new replicas have been updated'
        in result.stdout
    )
    ready_old = [p for p in _pods(sim_cluster, "keep") if pod_ready(p)]
    assert len(ready_old) >= 1
    new = [
        p
        for p in _pods(sim_cluster, "keep")
        if p["spec"]["containers"][0]["image"].startswith("registry.invalid")
    ]
    message = new[0]["status"]["containerStatuses"][0]["state"]["waiting"].get("message", "")
    assert "dial tcp: lookup registry.invalid" in message or "Back-off pulling image" in message


def test_run_as_non_root_with_a_root_image_is_refused(sim_cluster):
    body = deployment("rooted", replicas=1, image="docker.io/library/busybox:1.36")
    spec = body["spec"]["template"]["spec"]
    spec["containers"][0]["command"] = ["sleep", "infinity"]
    spec["securityContext"] = {"runAsNonRoot": True}
    _create(sim_cluster, body)
    sim_cluster.wait_for(
        lambda: (
            _pods(sim_cluster, "rooted")
            and _pods(sim_cluster, "rooted")[0]["status"].get("containerStatuses")
        ),
        60,
        "pod status",
    )
    sim_cluster.wait_for(
        lambda: (
            _pods(sim_cluster, "rooted")[0]["status"]["containerStatuses"][0]["state"]
            .get("waiting", {})
            .get("reason")
            == "CreateContainerConfigError"
        ),
        60,
        "refusal",
    )
    pod = _pods(sim_cluster, "rooted")[0]
    message = pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    assert message == (
        f'container has runAsNonRoot and image will run as root (pod: "{pod["metadata"]["name"]}_default'
        f'({pod["metadata"]["uid"]})", container: main)'
    )
    # The same pod runs once it names a non-root user.
    fixed = deployment("unrooted", replicas=1, image="docker.io/library/busybox:1.36")
    fixed["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "infinity"]
    fixed["spec"]["template"]["spec"]["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1337}
    _create(sim_cluster, fixed)
    sim_cluster.wait_for(lambda: _available(sim_cluster, "unrooted", 1), 60, "non-root pod ready")


def test_private_registry_needs_a_matching_pull_secret(sim_cluster):
    sim_cluster.registry.add_registry("registry.example.com", "robot", "s3cret")
    sim_cluster.registry.add_image("registry.example.com/team/app:1", program="pause")
    _create(sim_cluster, deployment("private", replicas=1, image="registry.example.com/team/app:1"))
    sim_cluster.wait_for(
        lambda: any(
            "401 Unauthorized" in e["message"] for e in sim_cluster.store.items(("", "events"), "default")
        ),
        60,
        "unauthorized pull",
    )
    assert not _available(sim_cluster, "private", 1)
    auth = base64.b64encode(
        json.dumps(
            {"auths": {"registry.example.com": {"auth": base64.b64encode(b"robot:s3cret").decode()}}}
        ).encode()
    ).decode()
    _create(
        sim_cluster,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": "pull"},
            "data": {".dockerconfigjson": auth},
        },
    )
    body = deployment("authorized", replicas=1, image="registry.example.com/team/app:1")
    body["spec"]["template"]["spec"]["imagePullSecrets"] = [{"name": "pull"}]
    _create(sim_cluster, body)
    sim_cluster.wait_for(lambda: _available(sim_cluster, "authorized", 1), 60, "authorized pull")


def test_daemonset_statefulset_and_job(sim_cluster):
    template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]},
    }
    _create(
        sim_cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template},
        },
    )
    _create(
        sim_cluster,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 3,
                "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": template["spec"]},
            },
        },
    )
    _create(
        sim_cluster,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once"},
            "spec": {
                "completions": 2,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [
                            {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", "echo done"]}
                        ],
                    }
                },
            },
        },
    )
    sim_cluster.wait_for(
        lambda: (
            (sim_cluster.store.get(("apps", "daemonsets"), "default", "agent").get("status") or {}).get(
                "numberReady"
            )
            == 1
        ),
        60,
        "daemonset ready",
    )
    sim_cluster.wait_for(
        lambda: (
            (sim_cluster.store.get(("apps", "statefulsets"), "default", "db").get("status") or {}).get(
                "readyReplicas"
            )
            == 3
        ),
        60,
        "statefulset ready",
    )
    assert sorted(p["metadata"]["name"] for p in _pods(sim_cluster, "db")) == ["db-0", "db-1", "db-2"]
    sim_cluster.wait_for(
        lambda: any(
            c["type"] == "Complete"
            for c in (sim_cluster.store.get(("batch", "jobs"), "default", "once").get("status") or {}).get(
                "conditions", []
            )
        ),
        60,
        "job complete",
    )
    job_pods = [
        p for p in sim_cluster.store.items(("", "pods"), "default") if p["metadata"]["labels"].get("job-name")
    ]
    assert [p["status"]["phase"] for p in job_pods] == ["Succeeded", "Succeeded"]
    key = ("default", job_pods[0]["metadata"]["name"], "main")
    assert sim_cluster.kubelet.logs.read(key) == ["done\n"]


def test_a_missing_service_account_keeps_pods_from_being_created_until_it_exists():
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        body = deployment("needs-sa", replicas=1)
        body["spec"]["template"]["spec"]["serviceAccountName"] = "app-sa"
        _create(cluster, body)
        cluster.pass_time(2, step=0.5)
        assert _pods(cluster, "needs-sa") == []
        events = [
            e for e in cluster.store.items(("", "events"), "default") if e.get("reason") == "FailedCreate"
        ]
        assert events and (
            'is forbidden: error looking up service account default/app-sa: serviceaccount "app-sa" not found'
            in events[0]["message"]
        )
        _create(cluster, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app-sa"}})
        cluster.pass_time(10, step=0.5)  # the ReplicaSet controller tries again
        assert len(_pods(cluster, "needs-sa")) == 1
