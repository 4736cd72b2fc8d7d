"""The simulated API server rejects what a real one rejects, seen by the rehearsal's dry-run and by kubectl.

Messages are the real server's (see tests/data/conformance/recordings.json for the recorded originals).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from istiofacts.catalog import default_pair
from kubesim.clock import SimClock
from kubesim.cluster import SimCluster
from rehearsal.kube import Kube
from rehearsal.run import StepFailed
from rehearsal.steps import upgrade


def _deployment(**container: object) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "istiod", "namespace": "istio-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "istiod"}},
            "template": {
                "metadata": {"labels": {"app": "istiod"}},
                "spec": {"containers": [{"name": "discovery", "image": "pilot:1", **container}]},
            },
        },
    }


class _Run:
    def __init__(self) -> None:
        self.notes: list[str] = []

    @contextlib.contextmanager
    def step(self, name: str):
        yield SimpleNamespace(note=self.notes.append)


@pytest.fixture(scope="module")
def cluster():
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as sim:
        namespaces = sim.api.type_of("", "namespaces")
        sim.api.create(namespaces, {"metadata": {"name": "istio-system"}})
        yield sim


def _ctx(cluster: SimCluster, tmp_path: Path) -> SimpleNamespace:
    kube = Kube(cluster.api_client(), tmp_path / "discovery.json")
    return SimpleNamespace(run=_Run(), kube=kube, settings=SimpleNamespace(istio_to=default_pair()[1]))


@pytest.mark.parametrize(
    ("container", "message"),
    [
        (
            {"imagePullPolicyy": "Always"},
            '.spec.template.spec.containers[name="discovery"].imagePullPolicyy: ',
        ),
        (
            {"ports": [{"name": "grpc", "containerPort": "15010"}]},
            "expected numeric (int or float), got string",
        ),
    ],
)
def test_dry_run_step_rejects_a_manifest_the_api_server_would(cluster, tmp_path, container, message):
    ctx = _ctx(cluster, tmp_path)
    with pytest.raises(StepFailed) as failed:
        upgrade.dry_run(ctx, [_deployment(**container)])
    assert "server-side dry run rejected Deployment/istiod" in str(failed.value)
    assert message in str(failed.value)
    assert cluster.store.get(("apps", "deployments"), "istio-system", "istiod") is None


def test_dry_run_step_accepts_a_good_manifest_without_writing(cluster, tmp_path):
    ctx = _ctx(cluster, tmp_path)
    before = cluster.store.resource_version
    upgrade.dry_run(ctx, [_deployment()])
    assert ctx.run.notes == ["1 objects accepted by a server-side dry run (dryRun=All)"]
    assert cluster.store.resource_version == before


@pytest.mark.kubectl
def test_kubectl_apply_rejects_unknown_fields_and_explain_reads_the_real_schema(kubectl, tmp_path):
    bad = _deployment(imagePullPolicyy="Always")
    bad["metadata"]["namespace"] = "default"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    rejected = kubectl("apply", "-f", str(path), check=False)
    assert rejected.returncode == 1
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in rejected.stderr
    )
    warned = kubectl("apply", "--validate=warn", "-f", str(path))
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolicyy"' in warned.stderr
    explained = kubectl("explain", "deployment.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in explained
    assert "Number of desired pods" in explained


@pytest.mark.kubectl
def test_kubectl_imperative_creates_send_protobuf_and_work(kubectl):
    assert kubectl("create", "namespace", "strict-ns").stdout.strip() == "namespace/strict-ns created"
    kubectl("create", "configmap", "settings", "-n", "strict-ns", "--from-literal=mode=fast")
    kubectl("create", "secret", "generic", "creds", "-n", "strict-ns", "--from-literal=user=me")
    kubectl("create", "serviceaccount", "robot", "-n", "strict-ns")
    assert kubectl("get", "cm", "settings", "-n", "strict-ns", "-o", "jsonpath={.data.mode}").stdout == "fast"
    assert (
        kubectl("get", "secret", "creds", "-n", "strict-ns", "-o", "jsonpath={.data.user}").stdout == "bWU="
    )
    token = kubectl("create", "token", "robot", "-n", "strict-ns").stdout.strip()
    assert token.count(".") == 2
    assert "kubernetes-admin" in kubectl("auth", "whoami").stdout


@pytest.mark.kubectl
def test_kubectl_rollout_undo_returns_to_the_previous_template(kubectl, sim_cluster, tmp_path):
    path = tmp_path / "web.yaml"
    web = _deployment()
    web["metadata"].update(name="web", namespace="default")
    web["spec"]["template"]["spec"]["containers"][0]["image"] = "docker.io/library/nginx:1.27"
    path.write_text(yaml.safe_dump(web))
    kubectl("apply", "-f", str(path))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    kubectl("set", "image", "deployment/web", "discovery=registry.k8s.io/pause:3.10")
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    revision = "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
    assert kubectl("get", "deployment", "web", "-o", revision).stdout == "2"
    assert "rolled back" in kubectl("rollout", "undo", "deployment/web").stdout
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    image = "jsonpath={.spec.template.spec.containers[0].image}"
    assert kubectl("get", "deployment", "web", "-o", image).stdout == "docker.io/library/nginx:1.27"
    assert kubectl("get", "deployment", "web", "-o", revision).stdout == "3"


@pytest.mark.kubectl
def test_kubectl_diff_server_side_shows_only_the_change(kubectl, tmp_path):
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "diffed", "namespace": "default"},
        "data": {"a": "1"},
    }
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(cm))
    kubectl("apply", "--server-side", "-f", str(path))
    same = kubectl("diff", "--server-side", "-f", str(path), check=False)
    assert same.returncode == 0 and same.stdout == ""
    cm["data"]["a"] = "2"
    path.write_text(yaml.safe_dump(cm))
    changed = kubectl("diff", "--server-side", "-f", str(path), check=False)
    assert changed.returncode == 1
    assert '-  a: "1"' in changed.stdout and '+  a: "2"' in changed.stdout
    assert kubectl("get", "cm", "diffed", "-o", "jsonpath={.data.a}").stdout == "1"


@pytest.mark.kubectl
def test_client_side_then_server_side_apply_migrates_the_field_owner(kubectl, tmp_path):
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "migrated", "namespace": "default"}}
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(dict(cm, data={"a": "1", "b": "2"})))
    kubectl("apply", "-f", str(path))
    path.write_text(yaml.safe_dump(dict(cm, data={"a": "9", "b": "2"})))
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", str(path)).stdout
    live = json.loads(kubectl("get", "cm", "migrated", "-o", "json", "--show-managed-fields").stdout)
    managers = {(m["manager"], m["operation"]): m["fieldsV1"] for m in live["metadata"]["managedFields"]}
    # What the real v1.36.2 server leaves after the same two commands:
    assert managers == {
        ("kubectl-last-applied", "Apply"): {
            "f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/last-applied-configuration": {}}}
        },
        ("kubectl", "Apply"): {"f:data": {"f:a": {}, "f:b": {}}},
    }
    assert live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == (
        '{"apiVersion":"v1","data":{"a":"9","b":"2"},"kind":"ConfigMap",'
        '"metadata":{"name":"migrated","namespace":"default"}}\n'
    )


def test_a_node_port_the_host_already_uses_is_never_allocated(monkeypatch):
    import random
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        original = random.randrange
        offered: list[int] = []

        def offer(start: int, stop: int) -> int:  # the host's busy port first, then random ones
            offered.append(busy if not offered else original(start, stop))
            return offered[-1]

        monkeypatch.setattr(random, "randrange", offer)
        with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
            rt = cluster.api.type_of("", "services")
            svc = cluster.api.create(
                rt,
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "web"},
                    "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]},
                },
                "default",
            )
    assert offered[0] == busy and len(offered) >= 2
    assert svc["spec"]["ports"][0]["nodePort"] == offered[-1] != busy
