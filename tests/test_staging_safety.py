"""A rehearsal pointed at a staging cluster that runs the team's real mesh (issue 16): it refuses a cluster
that does not look meant for it before any request that writes, owns only what it created, and judges only
what it upgraded.

The refusals and the ownership rules run against a simulated cluster of this module's own (time scale 0:
the sample apps roll out in wall seconds), reached through its kubeconfig as a user's cluster is; the
judgement of versions runs on objects shaped as a real API server returns them (tests/test_harness_checks).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubesim.istio
from istiofacts import catalog
from kubesim import SimCluster
from kubesim.istio.istioctl import write_executable
from rehearsal.cluster.base import ClusterError
from rehearsal.cluster.kubeconfig import check_context_allowed, context_allowed
from rehearsal.kube import Kube
from rehearsal.run import StepFailed
from rehearsal.settings import SettingsError, resolve
from rehearsal.steps import RUN_LABEL, mesh, rollback, validate
from tests import runs
from tests.test_harness_checks import context as checks_context
from tests.test_harness_checks import echo_pod, version_istioctl
from tests.test_steps import context as steps_context

SOURCE, TARGET = catalog.default_pair()
Obj = dict[str, Any]


# -- 1. guard rails --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("gke_acme-prod_europe-west1_prod-latest", False),  # "latest" holds "test", but is not the word
        ("devops-prod", False),  # "devops" holds "dev"
        ("production-eu", False),
        ("contest-prod", False),
        ("team-dev", True),
        ("staging_eu", True),
        ("kind-x", True),
        ("ci-rehearsal", True),
        ("Test-cluster", True),
    ],
)
def test_default_allow_list_matches_whole_words_of_the_context_name(name, allowed):
    assert context_allowed(name, "127.0.0.1") is allowed


def _kubeconfig(path: Path, context: str, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": context,
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "x"}}],
            }
        )
    )
    return path


def test_allow_context_patterns_are_anchored_on_the_name_or_the_servers_host(tmp_path):
    config = _kubeconfig(tmp_path / "kc", "prod-eu", "https://api.staging.acme.example:6443")
    # A glob matches the whole name, never a part of it: "staging" is not "*staging*".
    with pytest.raises(
        ClusterError, match=r"context 'prod-eu' does not .* \(server api.staging.acme.example;"
    ):
        check_context_allowed(config, None, ["staging"])
    with pytest.raises(ClusterError, match="does not look like a cluster meant for rehearsals"):
        check_context_allowed(config, None, ["prod"])
    assert check_context_allowed(config, None, ["prod-*"]) == "prod-eu"
    assert check_context_allowed(config, None, ["api.staging.*.example"]) == "prod-eu"
    # The default words are read in the context's name only: a host is the user's to name in a pattern.
    with pytest.raises(ClusterError):
        check_context_allowed(config, None, ())


def _writes(kube: Kube) -> int:
    """Requests that changed something, as the API server counts them (``apiserver_request_total``). A
    request is counted once its answer is sent, so the count is read until it holds still."""

    def read() -> int:
        total = 0
        for line in kube.get_text("/metrics").splitlines():
            found = re.match(r'apiserver_request_total\{.*verb="(\w+)"\} (\d+)', line)
            if found and found.group(1) not in ("GET", "LIST", "WATCH", "HEAD", "OPTIONS"):
                total += int(found.group(2))
        return total

    seen = [read(), read()]
    while seen[-1] != seen[-2]:
        seen.append(read())
    return seen[-1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    """A cluster with Istio at the source, installed by its istioctl as a team would."""
    folder = tmp_path_factory.mktemp("staging-safety")
    with SimCluster(
        "staging", time_scale=0, kubeconfig=folder / "kubeconfig", addons=[kubesim.istio.addon]
    ) as sim:
        istioctl = write_executable(SOURCE, folder / "bin")
        subprocess.run(
            [str(istioctl), "install", "-y", "--kubeconfig", str(sim.kubeconfig_path)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
        yield sim


def _kube(cluster: SimCluster) -> Kube:
    from kubernetes import config

    return Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))


def test_a_production_looking_context_is_refused_with_one_line_and_no_request_that_writes(
    tmp_path, cluster, suites_run
):
    kube = _kube(cluster)
    config = yaml.safe_load(Path(str(cluster.kubeconfig_path)).read_text())
    name = "gke_acme-prod_europe-west1_prod-latest"
    config["contexts"][0]["name"] = config["current-context"] = name
    production = tmp_path / "prod.kubeconfig"
    production.write_text(yaml.safe_dump(config))
    before = _writes(kube)
    result = suites_run(tmp_path, *runs.existing_cluster_args(tmp_path, production), traffic_requests=2)
    assert result.returncode == 4, result.stdout[-2000:]
    refusal = [line for line in result.stderr.splitlines() if "does not look like" in line]
    assert len(refusal) == 1 and f"--allow-context '{name}'" in refusal[0]
    assert _writes(kube) == before  # not even the Lease


def test_a_typo_in_restart_namespaces_is_one_line_before_anything_changes(tmp_path, cluster):
    kube = _kube(cluster)
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": labels}}
            for n, labels in (("shop", {"istio-injection": "enabled"}), ("batch", {}))
        ]
    )
    before = _writes(kube)
    for asked, said in (
        (["shpo"], "namespace shpo does not exist"),
        (["shop", "batch"], "namespace batch is not labelled for sidecar injection"),
    ):
        ctx = steps_context(cluster, tmp_path, restart_namespaces=asked)
        with pytest.raises(StepFailed) as failure:
            mesh.detect_installed(ctx)
        message = str(failure.value)
        assert "\n" not in message and said in message and "injected namespaces here: shop" in message
    assert _writes(kube) == before
    # The sample apps' namespace, which the run creates labelled for injection, is a valid scope.
    ctx = steps_context(cluster, tmp_path, restart_namespaces=["shop", "rehearsal-apps"])
    mesh.check_restart_namespaces(ctx)


# -- 2. own only what the run created --------------------------------------------------------------------
def _user_objects(namespace: str) -> list[Obj]:
    labels = {"app": "users-own"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": {"team": "a"}}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": namespace, "labels": {"team": "a"}},
            "data": {"color": "blue"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "users-own", "namespace": namespace, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "docker.io/traefik/whoami:v1.10"}]},
                },
            },
        },
    ]


def _state(kube: Kube, namespace: str) -> dict[str, Any]:
    """The user's objects as they are (spec, data, labels, annotations)."""
    out = {}
    for api_version, kind, name, ns in (
        ("v1", "Namespace", namespace, None),
        ("v1", "ConfigMap", "settings", namespace),
        ("apps/v1", "Deployment", "users-own", namespace),
    ):
        obj = kube.resource(api_version, kind).get(name=name, namespace=ns).to_dict()
        out[kind] = {
            "labels": obj["metadata"].get("labels"),
            "annotations": obj["metadata"].get("annotations"),
            "body": obj.get("spec") if kind != "ConfigMap" else obj.get("data"),
            "resourceVersion": obj["metadata"]["resourceVersion"],
        }
    return out


@pytest.fixture
def users_namespace(cluster: SimCluster) -> Iterator[Callable[[str], Kube]]:
    kube = _kube(cluster)
    made: list[str] = []

    def make(namespace: str) -> Kube:
        kube.apply(_user_objects(namespace))
        kube.wait_rollout("Deployment", "users-own", namespace, 60)
        made.append(namespace)
        return kube

    yield make
    for namespace in made:
        kube.resource("v1", "Namespace").delete(name=namespace)


def test_a_taken_sample_app_name_stops_the_run_before_any_change_naming_it(
    tmp_path, cluster, users_namespace
):
    kube = users_namespace("rehearsal-apps")
    echo = next(yaml.safe_load_all((mesh.SAMPLE_APPS / "10-echo.yaml").read_text()))
    assert echo["kind"] == "Deployment"
    kube.apply([echo])  # the user's own "echo", as the sample app's manifest has it (no run label)
    before = _writes(kube)
    ctx = steps_context(cluster, tmp_path)
    with pytest.raises(StepFailed) as failure:
        mesh.deploy_apps(ctx)
    message = str(failure.value)
    assert "Deployment rehearsal-apps/echo (not the rehearsal's)" in message
    assert "--apps-namespace" in message and "\n" not in message
    assert _writes(kube) == before and not ctx.journal.entries
    kube.resource("apps/v1", "Deployment").delete(name="echo", namespace="rehearsal-apps")


def test_the_users_rehearsal_apps_namespace_survives_a_run_untouched(tmp_path, cluster, users_namespace):
    kube = users_namespace("rehearsal-apps")
    before = _state(kube, "rehearsal-apps")
    ctx = steps_context(cluster, tmp_path)
    mesh.deploy_apps(ctx)
    echo = kube.resource("apps/v1", "Deployment").get(name="echo", namespace="rehearsal-apps").to_dict()
    assert echo["metadata"]["labels"][RUN_LABEL] == ctx.run.run_id
    # The apps need sidecars: the namespace the run did not create gets the label, journaled for cleanup.
    namespace = kube.resource("v1", "Namespace").get(name="rehearsal-apps").to_dict()
    assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
    outcome = rollback.cleanup(ctx)
    assert not outcome["errors"], outcome
    after = _state(kube, "rehearsal-apps")
    assert {k: {f: v for f, v in o.items() if f != "resourceVersion"} for k, o in after.items()} == {
        k: {f: v for f, v in o.items() if f != "resourceVersion"} for k, o in before.items()
    }
    assert after["ConfigMap"]["resourceVersion"] == before["ConfigMap"]["resourceVersion"]
    assert after["Deployment"]["resourceVersion"] == before["Deployment"]["resourceVersion"]
    names = {
        d.metadata.name for d in kube.resource("apps/v1", "Deployment").get(namespace="rehearsal-apps").items
    }
    assert names == {"users-own"}


def test_cleanup_deletes_only_what_carries_the_runs_label(tmp_path, cluster):
    kube = _kube(cluster)
    ctx = steps_context(cluster, tmp_path, apps_namespace="rehearsal-apps-2")
    mesh.deploy_apps(ctx)
    # Meanwhile the user replaced the run's client with their own, of the same name.
    deployments = kube.resource("apps/v1", "Deployment")
    deployments.delete(name="client", namespace="rehearsal-apps-2")
    client = yaml.safe_load((mesh.SAMPLE_APPS / "20-client.yaml").read_text())
    client["metadata"]["namespace"] = "default"
    kube.apply([client])
    entry = ctx.journal.pending("setup")[0]
    entry.args["objects"].append(["apps/v1", "Deployment", "default", "client"])
    outcome = rollback.cleanup(ctx)
    assert f"Deployment/default/client (not created by {ctx.run.run_id})" in outcome["left"]
    assert deployments.get(name="client", namespace="default").to_dict()["metadata"]["name"] == "client"
    assert "Namespace rehearsal-apps-2" in outcome["removed"]
    deployments.delete(name="client", namespace="default")


def test_apps_namespace_moves_the_sample_apps_and_their_route():
    settings = resolve({"apps_namespace": "rehearsal-apps-2"})
    docs = mesh.app_manifests(settings, "run-x")
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"rehearsal-apps-2"}
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == ["rehearsal-apps-2"]
    route = next(d for d in docs if d["kind"] == "VirtualService")
    assert (
        route["spec"]["http"][0]["route"][0]["destination"]["host"]
        == "echo.rehearsal-apps-2.svc.cluster.local"
    )
    assert all(d["metadata"]["labels"][RUN_LABEL] == "run-x" for d in docs)
    with pytest.raises(SettingsError, match="--apps-namespace 'Apps_1' is not a namespace name"):
        resolve({"apps_namespace": "Apps_1"})
    with pytest.raises(SettingsError, match="--apps-namespace istio-system"):
        resolve({"apps_namespace": "istio-system"})


# -- 7. judge what was upgraded ----------------------------------------------------------------------------
def _pod(name: str, namespace: str, tag: str, phase: str = "Running", owner: Obj | None = None) -> Obj:
    pod = echo_pod(name, tag, False)
    pod["metadata"]["namespace"] = namespace
    pod["status"] = {"phase": phase}
    if owner:
        pod["metadata"]["ownerReferences"] = [owner]
    return pod


def test_proxies_the_run_did_not_restart_are_listed_apart_with_a_warning_when_unsupported(tmp_path):
    old = next(
        v
        for v in sorted(catalog.known_versions(), key=catalog.parse_version, reverse=True)
        if catalog.parse_version(v)[1] < catalog.parse_version(TARGET)[1] - 1
    )
    pods = [
        _pod("echo-1", "rehearsal-apps", TARGET),
        _pod("billing-1", "billing", SOURCE),  # injected, but not in --restart-namespaces
        _pod("report-x1", "rehearsal-apps", SOURCE, "Succeeded", {"kind": "Job", "name": "report"}),
        _pod("nightly-29-a", "rehearsal-apps", old, "Succeeded", {"kind": "Job", "name": "nightly-29"}),
    ]
    jobs = [
        {
            "metadata": {
                "name": "nightly-29",
                "namespace": "rehearsal-apps",
                "ownerReferences": [{"kind": "CronJob", "name": "nightly"}],
            }
        }
    ]
    proxies = {
        f"{p['metadata']['name']}.{p['metadata']['namespace']}": p["spec"]["containers"][1]["image"].rsplit(
            ":", 1
        )[1]
        for p in pods
    }
    target = version_istioctl(tmp_path, proxies)
    ctx = checks_context(tmp_path, [], target=target, objects={"Pod": pods, "Job": jobs})
    observed, findings = validate.version_findings(ctx, target, TARGET)
    assert findings == []
    apart = observed["out_of_scope"]
    assert apart["billing-1.billing"] == {"version": SOURCE, "reason": "namespace outside the restart scope"}
    assert apart["report-x1.rehearsal-apps"]["reason"] == "finished pod (Succeeded) of job report"
    assert apart["nightly-29-a.rehearsal-apps"]["reason"].startswith("pod of CronJob history")
    assert [w for w in observed["warnings"] if "nightly-29-a" in w and old in w]
    assert all(
        "The Istio control plane can be one version ahead of the data plane" in w
        for w in observed["warnings"]
    )
    assert not [w for w in observed["warnings"] if "billing-1" in w]  # one minor behind: supported
    after = validate.versions_after(ctx, target)
    assert after["data_plane"] == {"echo-1.rehearsal-apps": TARGET}
    assert set(after["out_of_scope"]) == {
        "billing-1.billing",
        "report-x1.rehearsal-apps",
        "nightly-29-a.rehearsal-apps",
    }


def test_the_report_lists_proxies_not_restarted_apart(tmp_path):
    from rehearsal.report.html import _versions

    record = {
        "versions": {
            "after": {
                "control_plane": [TARGET],
                "data_plane": {"echo-1.rehearsal-apps": TARGET},
                "out_of_scope": {
                    "billing-1.billing": {"version": SOURCE, "reason": "namespace outside the restart scope"}
                },
                "warnings": ["proxy <x> runs 1.0.0"],
            }
        }
    }
    text = _versions(record)
    assert "Not restarted (out of scope)" in text and "billing-1.billing" in text
    assert "namespace outside the restart scope" in text and "proxy &lt;x&gt; runs 1.0.0" in text
