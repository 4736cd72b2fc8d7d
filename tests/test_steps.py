"""The runbook's steps called in this process on objects a test plants, on one simulated cluster shared by the
session whose clock moves only when a test moves it.

Each test plants what it needs (an istiod someone installed, a Secret, a workload) through the API, calls a
step or a check, and asserts on its decision; the ``planted`` fixture deletes what the test planted and lets
simulated time pass until it is gone, so the next test finds the cluster as it was.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from istiofacts import catalog
from kubesim import SimClock, SimCluster
from kubesim.istio.istioctl import write_executable
from rehearsal.cluster.base import Cluster
from rehearsal.istio.istioctl import Istioctl
from rehearsal.journal import RollbackJournal
from rehearsal.kube import Kube
from rehearsal.run import Run, StepFailed
from rehearsal.settings import resolve
from rehearsal.steps import APPS_NS, ISTIO_NS, Rehearsal, backup, mesh, upgrade, validate

SOURCE, TARGET = catalog.default_pair()
APP_IMAGE = "docker.io/traefik/whoami:v1.10"  # any public image runs, as on kind
Obj = dict[str, Any]


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    folder = tmp_path_factory.mktemp("steps-cluster")
    with SimCluster(
        "steps", clock=SimClock.manual_clock(), kubeconfig=folder / "kubeconfig", system_workloads=False
    ) as cluster:
        kube = Kube(_client(cluster))
        for ns in (ISTIO_NS, APPS_NS):
            kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}])
        yield cluster


def _client(cluster: SimCluster) -> Any:
    from kubernetes import config

    return config.new_client_from_config(config_file=str(cluster.kubeconfig_path))


@pytest.fixture
def planted(shared_cluster: SimCluster) -> Iterator[Callable[[list[Obj]], None]]:
    """``planted([...])`` applies objects; after the test they are deleted and time passes until they are
    gone (pods finish terminating on the simulated clock)."""
    kube = Kube(_client(shared_cluster))
    mine: list[Obj] = []

    def plant(docs: list[Obj]) -> None:
        kube.apply(docs)
        mine.extend(docs)

    yield plant
    for doc in reversed(mine):
        resource = kube.resource(doc["apiVersion"], doc["kind"])
        resource.delete(name=doc["metadata"]["name"], namespace=doc["metadata"].get("namespace"))

    def nothing_left() -> bool:
        pods = kube.resource("v1", "Pod")
        return not any(pods.get(namespace=ns).items for ns in (ISTIO_NS, APPS_NS))

    shared_cluster.pass_time(120, until=nothing_left)
    assert nothing_left(), "the planted objects did not go away"


def context(cluster: SimCluster, tmp_path: Path, **options: Any) -> Rehearsal:
    assert cluster.kubeconfig_path is not None
    settings = resolve(options)
    run = Run(settings, tmp_path / "reports")
    bin_dir = tmp_path / "bin"
    return Rehearsal(
        settings,
        run,
        RollbackJournal(run.dir / "journal.json"),
        Cluster("sim", cluster.name, cluster.kubeconfig_path),
        Kube(_client(cluster)),
        Istioctl(SOURCE, write_executable(SOURCE, bin_dir), cluster.kubeconfig_path),
        Istioctl(TARGET, write_executable(TARGET, bin_dir), cluster.kubeconfig_path),
    )


def deployment(name: str, namespace: str, image: str, container: str = "app", **extra: Any) -> Obj:
    meta = {"name": name, "namespace": namespace, **extra.pop("metadata", {})}
    labels = {"app": name, **meta.pop("labels", {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {**meta, "labels": labels},
        "spec": {
            "replicas": extra.pop("replicas", 1),
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": container, "image": image}], **extra},
            },
        },
    }


def istiod(version: str, hub: str, **extra: Any) -> Obj:
    return deployment("istiod", ISTIO_NS, f"{hub}/pilot:{version}", container="discovery", **extra)


def configmap(name: str, data: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ISTIO_NS},
        "data": data,
    }


def test_an_istioctl_installed_mesh_is_detected_with_the_settings_it_runs(shared_cluster, planted, tmp_path):
    planted(
        [
            istiod(
                SOURCE,
                "registry.example.com/istio",
                metadata={"labels": {"operator.istio.io/version": SOURCE}},
                replicas=2,
                securityContext={"runAsNonRoot": True, "runAsUser": 1337},
            ),
            configmap("istio", {"mesh": yaml.safe_dump({"accessLogFile": "/dev/stdout"})}),
            configmap(
                "istio-sidecar-injector",
                {"values": json.dumps({"global": {"imagePullSecrets": ["registry-secret"]}})},
            ),
        ]
    )
    ctx = context(shared_cluster, tmp_path)
    installed = mesh.detect_installed(ctx)
    assert installed.versions == {"default": SOURCE} and installed.method == "istioctl"
    assert installed.carried["hub"] == "registry.example.com/istio"
    assert installed.carried["components.pilot.k8s.replicaCount"] == 2
    assert installed.carried["components.pilot.k8s.securityContext"]["runAsUser"] == 1337
    assert installed.carried["values.global.imagePullSecrets"] == ["registry-secret"]
    assert installed.carried["meshConfig"] == {"accessLogFile": "/dev/stdout"}
    # The installed settings become the plan of the upgrade: the target keeps them.
    spec = ctx.settings.install_spec(TARGET)
    assert (
        spec["meshConfig"]["accessLogFile"] == "/dev/stdout" and spec["hub"] == "registry.example.com/istio"
    )


def test_a_mesh_at_another_version_than_istio_from_is_refused(shared_cluster, planted, tmp_path):
    other = next(v for v in catalog.minor_of(SOURCE).patches if v != SOURCE)  # a path the options accept
    planted([istiod(SOURCE, catalog.default_hub(SOURCE))])
    ctx = context(shared_cluster, tmp_path, istio_from=other)
    with pytest.raises(StepFailed, match=f"--istio-from {other} does not match the cluster, which runs"):
        mesh.detect_installed(ctx)
    assert ctx.run.steps[-1].outcome == "failed"


def test_a_mesh_managed_by_helm_is_left_to_helm(shared_cluster, planted, tmp_path):
    planted(
        [
            istiod(
                SOURCE,
                catalog.default_hub(SOURCE),
                metadata={"annotations": {"meta.helm.sh/release-name": "istiod"}},
            )
        ]
    )
    with pytest.raises(StepFailed, match="managed by helm"):
        mesh.detect_installed(context(shared_cluster, tmp_path))


def test_no_istiod_means_the_source_is_installed_by_the_rehearsal(shared_cluster, tmp_path):
    installed = mesh.detect_installed(context(shared_cluster, tmp_path))
    assert not installed.present and installed.method == "none"


def test_the_restart_scope_is_the_injected_namespaces_unless_given(shared_cluster, planted, tmp_path):
    planted(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}}
            for n, labels in (
                ("shop", {"istio-injection": "enabled"}),
                ("canary", {"istio.io/rev": "canary"}),
                ("plain", {}),
                ("opted-out", {"istio-injection": "disabled"}),
            )
        ]
    )
    ctx = context(shared_cluster, tmp_path)
    assert {"shop", "canary"} <= set(upgrade.restart_scope(ctx))
    assert not {"plain", "opted-out"} & set(upgrade.restart_scope(ctx))
    # The sample apps' own namespace is always restarted: the run proves the upgrade with them.
    assert upgrade.restart_scope(context(shared_cluster, tmp_path, restart_namespaces=["plain"])) == [
        "plain",
        APPS_NS,
    ]


def test_the_backup_keeps_secrets_in_a_0600_file_and_out_of_the_record(shared_cluster, planted, tmp_path):
    value = "planted-secret-value-7f3a"
    planted(
        [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "cacerts", "namespace": ISTIO_NS},
                "stringData": {"ca-key.pem": value},
            },
            configmap("istio", {"mesh": "{}"}),
        ]
    )
    ctx = context(shared_cluster, tmp_path)
    folder = backup.backup(ctx)
    secrets = folder / "secrets.yaml"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert any(s and s["metadata"]["name"] == "cacerts" for s in yaml.safe_load_all(secrets.read_text()))
    ctx.run.save()
    kept_elsewhere = [p for p in ctx.run.dir.rglob("*") if p.is_file() and p != secrets]
    assert kept_elsewhere and not any(value in p.read_text(errors="replace") for p in kept_elsewhere)
    backed_up = next(e["data"] for e in ctx.run.steps[-1].evidence if e.get("title") == "backed up")
    assert f"Secret/{ISTIO_NS}/cacerts" in backed_up["secrets"]


def test_pod_health_names_a_pod_until_the_kubelet_has_it_running_and_ready(shared_cluster, planted, tmp_path):
    ctx = context(shared_cluster, tmp_path)
    planted([deployment("web", APPS_NS, APP_IMAGE)])
    shared_cluster.settle()  # scheduled, the image pull started: nothing more until time passes
    findings = validate.pod_health_findings(ctx, {})
    assert len(findings) == 1 and findings[0].startswith(f"{APPS_NS}/web-")
    assert "is Pending and not ready" in findings[0]
    shared_cluster.pass_time(60, until=lambda: not validate.pod_health_findings(ctx, {}))
    assert validate.pod_health_findings(ctx, {}) == []
