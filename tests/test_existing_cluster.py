"""Rehearsing on a cluster that already runs the user's mesh (the simulated cluster standing in for staging,
reached with ``--cluster kubeconfig`` as a user reaches theirs): the mesh is rehearsed as it is, its settings
survive the upgrade, a rollback leaves every object as it was, the harness's own objects are gone at the end,
and the refusals (wrong --istio-from, production-looking context, a held lease) change nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubesim.istio
from istiofacts import catalog
from kubesim import SimCluster
from kubesim.istio.istioctl import write_executable
from tests import runs

ROOT = Path(__file__).resolve().parent.parent
SOURCE, TARGET = catalog.default_pair()
USER_NS = "shop"
VOLATILE = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink")


def _kube(cluster: SimCluster) -> Any:
    from kubernetes import config, dynamic

    return dynamic.DynamicClient(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))


def _apply(cluster: SimCluster, docs: list[dict[str, Any]]) -> None:
    client = _kube(cluster)
    for doc in docs:
        resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        resource.server_side_apply(
            body=doc,
            name=doc["metadata"]["name"],
            namespace=doc["metadata"].get("namespace"),
            field_manager="team-shop",
        )


def _user_objects() -> list[dict[str, Any]]:
    labels = {"app": "shop"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": USER_NS, "labels": {"istio-injection": "enabled", "team": "shop"}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": USER_NS, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "shop",
                                "image": "docker.io/mendhak/http-https-echo:37",
                                "env": [{"name": "HTTP_PORT", "value": "8080"}],
                                "ports": [{"name": "http", "containerPort": 8080}],
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "shop", "namespace": USER_NS},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "shop", "namespace": USER_NS},
            "spec": {
                "host": "shop.shop.svc.cluster.local",
                "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}},
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "shop", "namespace": USER_NS},
            "spec": {
                "hosts": ["shop.example.com"],
                "gateways": ["istio-system/public"],
                "http": [{"route": [{"destination": {"host": "shop.shop.svc.cluster.local"}}]}],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "istio-system"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {
                        "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                        "hosts": ["shop.example.com"],
                    }
                ],
            },
        },
    ]


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[SimCluster]:
    """A staging-like cluster: Istio at the source with custom mesh settings and 2 istiod replicas (installed
    with the source's istioctl, as the team did), and a team's namespace with its workload and Istio
    resources."""
    with SimCluster(
        "staging", time_scale=0, kubeconfig=tmp_path / "staging.kubeconfig", addons=[kubesim.istio.addon]
    ) as cluster:
        istioctl = write_executable(SOURCE, tmp_path / "bin")
        subprocess.run(
            [
                str(istioctl),
                "install",
                "-y",
                "--set",
                "meshConfig.accessLogFile=/dev/stdout",
                "--set",
                "meshConfig.outboundTrafficPolicy.mode=REGISTRY_ONLY",
                "--set",
                "components.pilot.k8s.replicaCount=2",
                "--kubeconfig",
                str(cluster.kubeconfig_path),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        _apply(cluster, _user_objects())
        from kubernetes import config

        from rehearsal.kube import Kube

        Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig_path))).wait_rollout(
            "Deployment", "shop", USER_NS, 120
        )
        yield cluster


def rehearse(
    suites_run: Callable[..., runs.Rehearsed], work: Path, kubeconfig: Path, *args: str
) -> tuple[runs.Rehearsed, dict]:
    """The suites against the cluster of ``kubeconfig`` (in process), with the run's record ({} if none)."""
    result = suites_run(
        work,
        *runs.existing_cluster_args(work, kubeconfig),
        "--istio-to",
        TARGET,
        *args,
        traffic_requests=5,
    )
    return result, result.data


def snapshot(cluster: SimCluster) -> dict[str, Any]:
    """Every object a rehearsal could touch, status and volatile metadata aside."""
    client = _kube(cluster)
    kinds = [
        ("v1", "Namespace", None),
        ("apps/v1", "Deployment", None),
        ("v1", "Service", None),
        ("v1", "ConfigMap", None),
        ("v1", "ServiceAccount", None),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", None),
        ("networking.istio.io/v1", "VirtualService", None),
        ("networking.istio.io/v1", "DestinationRule", None),
        ("networking.istio.io/v1", "Gateway", None),
        ("coordination.k8s.io/v1", "Lease", "kube-system"),
    ]
    out: dict[str, Any] = {}
    for api_version, kind, namespace in kinds:
        resource = client.resources.get(api_version=api_version, kind=kind)
        for item in resource.get(namespace=namespace).items:
            obj = item.to_dict()
            if kind == "Lease" and obj["metadata"]["name"] != "istio-upgrade-rehearsal":
                continue  # node heartbeats
            if kind == "ConfigMap" and obj["metadata"]["name"] in ("kube-root-ca.crt", "istio-ca-root-cert"):
                continue
            meta = {k: v for k, v in obj["metadata"].items() if k not in VOLATILE and v is not None}
            # Kept by the Deployment controller (which ReplicaSet is current): volatile, like status.
            annotations = {
                k: v
                for k, v in (meta.get("annotations") or {}).items()
                if k != "deployment.kubernetes.io/revision"
            }
            meta.pop("annotations", None)
            if annotations:
                meta["annotations"] = annotations
            obj = {k: v for k, v in obj.items() if k != "status"}
            obj["metadata"] = meta
            if kind.endswith("WebhookConfiguration"):  # istiod patches its CA bundle in at run time
                for hook in obj.get("webhooks") or []:
                    hook.get("clientConfig", {}).pop("caBundle", None)
            out[f"{kind} {meta.get('namespace', '')}/{meta['name']}"] = obj
    return out


def mesh_config(cluster: SimCluster) -> dict[str, Any]:
    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))
    data = core.read_namespaced_config_map("istio", "istio-system").data
    assert data is not None, "the istio ConfigMap has no data"
    return yaml.safe_load(data["mesh"])


def istiod_replicas(cluster: SimCluster) -> int:
    from kubernetes import client, config

    apps = client.AppsV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))
    spec = apps.read_namespaced_deployment("istiod", "istio-system").spec
    assert spec is not None and spec.replicas is not None
    return spec.replicas


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in sorted(a.keys() | b.keys()) for d in _differences(a.get(k), b.get(k), f"{path}.{k}")
        ]
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"[:300]]


def step(data: dict, name: str) -> dict:
    return next(s for s in data["steps"] if s["name"] == name)


def test_an_upgrade_keeps_the_installed_settings_leaves_no_trace_and_rolls_back_only_as_a_downgrade(
    tmp_path, staging, suites_run
):
    result, data = rehearse(suites_run, tmp_path, staging.kubeconfig_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert data["verdict"] == "upgraded" and data["from"] == SOURCE  # taken from the cluster, not a default
    detect = step(data, "detect installed mesh")
    assert "installed by istioctl" in detect["reason"] and "meshConfig" in detect["reason"]
    assert step(data, "install source")["outcome"] == "not-needed"
    mesh = mesh_config(staging)
    assert mesh["accessLogFile"] == "/dev/stdout"
    assert mesh["outboundTrafficPolicy"] == {"mode": "REGISTRY_ONLY"}
    assert istiod_replicas(staging) == 2
    after = snapshot(staging)
    assert not [k for k in after if "rehearsal-apps" in k or "istio-upgrade-rehearsal" in k]
    assert data["rollback"]["cleanup"]["removed"] and data["rollback"]["lease released"]
    scope = next(
        e["data"] for e in step(data, "restart workloads")["evidence"] if e.get("title") == "restart scope"
    )
    assert USER_NS in scope["namespaces"]
    _roll_back_as_a_downgrade(tmp_path, data)


def test_a_failed_upgrade_rolls_back_to_exactly_what_was_there(tmp_path, staging, suites_run):
    before = snapshot(staging)
    faults = tmp_path / "faults.yaml"
    faults.write_text(f"faults:\n  - type: proxy-reject\n    image: docker.io/istio/proxyv2:{TARGET}\n")
    staging.faults.extend(__import__("kubesim").Faults.from_file(faults))
    result, data = rehearse(suites_run, tmp_path, staging.kubeconfig_path)
    assert result.returncode != 0
    assert data["verdict"] == "rolled-back", data.get("failure")
    after = snapshot(staging)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, [(k, _differences(before.get(k), after.get(k))) for k in changed[:5]]


def _context_renamed(kubeconfig: Path, name: str, target: Path) -> Path:
    config = yaml.safe_load(kubeconfig.read_text())
    config["contexts"][0]["name"] = name
    config["current-context"] = name
    target.write_text(yaml.safe_dump(config))
    return target


def test_refusals_stop_before_any_change(tmp_path, staging, suites_run):
    before = snapshot(staging)
    # Another patch of the same minor: a path the options accept, a version the cluster does not run.
    wrong = next(v for v in catalog.minor_of(SOURCE).patches if v != SOURCE)
    result, data = rehearse(suites_run, tmp_path / "a", staging.kubeconfig_path, "--istio-from", wrong)
    assert result.returncode != 0
    assert f"--istio-from {wrong} does not match the cluster, which runs Istio {SOURCE}" in result.stdout
    assert data["verdict"] == "failed"

    production = _context_renamed(staging.kubeconfig_path, "production-eu", tmp_path / "prod.kubeconfig")
    result, data = rehearse(suites_run, tmp_path / "b", production)
    assert result.returncode == 4 and not data
    assert "context 'production-eu' does not look like a cluster meant for rehearsals" in result.stderr
    assert "--allow-context" in result.stderr

    from kubernetes import config

    from rehearsal.lease import RehearsalLease

    other = RehearsalLease(
        config.new_client_from_config(config_file=str(staging.kubeconfig_path)),
        "run-other",
        holder="ana@ci run-other",
    )
    other.acquire()
    try:
        held_before = snapshot(staging)
        result, data = rehearse(suites_run, tmp_path / "c", staging.kubeconfig_path)
        assert result.returncode != 0
        assert (
            "another rehearsal is running on this cluster" in result.stdout
            and "ana@ci run-other" in result.stdout
        )
        assert snapshot(staging) == held_before
    finally:
        other.release()
    assert snapshot(staging) == before


def _roll_back_as_a_downgrade(tmp_path: Path, data: dict[str, Any]) -> None:
    """``rehearsal rollback`` of an upgraded run is refused without --downgrade, and with it makes a record
    of its own, leaving the upgrade's as it was."""
    folder = tmp_path / "reports" / data["run_id"]
    before = (folder / "rehearsal.json").read_text()

    refused = subprocess.run(
        [sys.executable, "-m", "rehearsal", "rollback", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 4  # a bad option: --downgrade is missing
    assert f"ended upgraded: rolling it back would downgrade Istio from {TARGET} to {SOURCE}" in (
        refused.stderr
    )
    assert "--downgrade" in refused.stderr
    assert (folder / "rehearsal.json").read_text() == before

    downgrade = subprocess.run(
        [sys.executable, "-m", "rehearsal", "rollback", "--downgrade", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert downgrade.returncode == 0, downgrade.stdout + downgrade.stderr
    assert "downgraded" in downgrade.stdout
    assert (folder / "rehearsal.json").read_text() == before  # the upgrade's record is left as it was
    new = [p for p in (tmp_path / "reports").glob("run-*") if p != folder]
    assert len(new) == 1
    record = json.loads((new[0] / "rehearsal.json").read_text())
    assert record["verdict"] == "downgraded" and record["rollback"]["of"] == folder.name
    assert record["rollback"]["verification"]["versions"]["control_plane"] == [SOURCE]


def test_the_users_own_apps_and_probe_replace_the_sample_apps(tmp_path, staging, suites_run):
    apps = tmp_path / "apps"
    apps.mkdir()
    labels = {"app": "web"}
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "storefront", "labels": {"istio-injection": "enabled"}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "storefront", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "docker.io/mendhak/http-https-echo:37",
                                "env": [{"name": "HTTP_PORT", "value": "8080"}],
                                "ports": [{"name": "http", "containerPort": 8080}],
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "storefront"},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "storefront"},
            "spec": {
                "hosts": ["web.example.com"],
                "gateways": ["storefront/web"],
                "http": [
                    {
                        "match": [{"uri": {"prefix": "/health"}}],
                        "route": [{"destination": {"host": "web.storefront.svc.cluster.local"}}],
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "storefront"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [
                    {"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["web.example.com"]}
                ],
            },
        },
    ]
    (apps / "storefront.yaml").write_text(yaml.safe_dump_all(docs))
    result, data = rehearse(
        suites_run,
        tmp_path,
        staging.kubeconfig_path,
        "--apps",
        str(apps),
        "--probe",
        "/health",
        "--probe-host",
        "web.example.com",
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert data["verdict"] == "upgraded"
    assert "namespaces created: storefront" in step(data, "deploy your apps")["reason"]
    traffic = next(e["data"] for e in step(data, "baseline")["evidence"] if e.get("title") == "traffic")
    assert traffic["codes"] == {"200": 5}
    scope = next(
        e["data"] for e in step(data, "restart workloads")["evidence"] if e.get("title") == "restart scope"
    )
    assert {"storefront", USER_NS} <= set(scope["namespaces"])
    names = {k for k in snapshot(staging)}
    assert not [k for k in names if "storefront" in k or "rehearsal-apps" in k]
