"""A rehearsal pointed at a staging cluster that runs the team's real mesh (issue 16): it refuses a cluster
that does not look meant for it before any request that writes, owns only what it created, and judges only
what it upgraded.

The refusals and the ownership rules run against a simulated cluster of this module's own (time scale 0:
the sample apps roll out in wall seconds), reached through its kubeconfig as a user's cluster is; the
judgement of versions runs on objects shaped as a real API server returns them (tests/test_harness_checks).
"""

from __future__ import annotations

import dataclasses
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


def test_a_whole_run_with_a_restart_namespaces_typo_writes_nothing(tmp_path, cluster, suites_run):
    kube = _kube(cluster)
    before = _writes(kube)
    args = runs.existing_cluster_args(tmp_path, Path(str(cluster.kubeconfig_path)))
    result = suites_run(tmp_path, *args, "--restart-namespaces", "shpo", traffic_requests=2)
    assert result.returncode != 0
    assert "--restart-namespaces: namespace shpo does not exist" in result.stdout
    assert _writes(kube) == before  # not even the Lease


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


# -- 8. bounded, honest retries and waits ------------------------------------------------------------------
def test_one_retry_budget_covers_a_whole_check_not_each_call(tmp_path):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from rehearsal import retry
    from rehearsal.cluster.base import Cluster

    with SimCluster(time_scale=0, kubeconfig=tmp_path / "kubeconfig") as sim:
        assert sim.kubeconfig_path is not None
        events: list[Obj] = []
        cluster = Cluster("kubeconfig", "sim", sim.kubeconfig_path, sim.context)
        cluster.retry_listeners.append(events.append)
        cluster.retry_budget = 60.0  # what one call alone may spend
        core = client.CoreV1Api(cluster.api_client())
        sim.faults.fail_api("get", "namespaces", code=503, times=-1)
        failed = 0
        with retry.budget(1.0) as shared:
            for _ in range(6):  # a check that makes many calls
                try:
                    core.read_namespace("default")
                except ApiException as exc:
                    assert exc.status == 503
                    failed += 1
        assert failed == 6
        assert shared.spent <= 1.0 and sum(e["waited_seconds"] for e in events) <= 1.0
        # The budget spent, the later calls fail at once: no retry of theirs is recorded.
        assert len(events) < 6


def test_a_proxys_answer_about_its_backend_is_not_retried(cluster):
    from rehearsal import retry

    kube = _kube(cluster)
    events: list[Obj] = []
    retry.install(kube.api_client, [events.append], retry.Backoff(budget=5.0))
    kube.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "quiet"}},
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "nobody", "namespace": "quiet"},
                "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]},
            },
            _user_objects("quiet")[2],  # a pod that serves on its container's port, nothing on :15020
        ]
    )
    kube.wait_rollout("Deployment", "users-own", "quiet", 60)
    pod = kube.resource("v1", "Pod").get(namespace="quiet").items[0].metadata.name
    for path, said in (
        ("/api/v1/namespaces/quiet/services/nobody:80/proxy/", "no endpoints available for service"),
        (f"/api/v1/namespaces/quiet/pods/{pod}:15020/proxy/stats", "connection refused"),
    ):
        with pytest.raises(Exception) as answer:
            kube.get_text(path)
        assert getattr(answer.value, "status", None) == 503 and said in str(getattr(answer.value, "body", ""))
    assert events == []  # answered, not retried
    kube.resource("v1", "Namespace").delete(name="quiet")


def test_telemetry_of_an_echo_without_sidecar_fails_at_once_naming_why(tmp_path, cluster):
    kube = _kube(cluster)
    echo = next(yaml.safe_load_all((mesh.SAMPLE_APPS / "10-echo.yaml").read_text()))
    echo["metadata"]["namespace"] = "no-sidecars"
    kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "no-sidecars"}}, echo])
    kube.wait_rollout("Deployment", "echo", "no-sidecars", 60)
    ctx = steps_context(cluster, tmp_path, apps_namespace="no-sidecars")
    data, problems = validate.telemetry_findings(ctx)
    assert problems and "has no istio-proxy sidecar, so nothing serves its telemetry on :15020" in problems[0]
    assert data["sent"] == 0
    kube.resource("v1", "Namespace").delete(name="no-sidecars")


def test_an_apps_namespace_that_opts_out_of_injection_stops_the_run(tmp_path, cluster):
    kube = _kube(cluster)
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "opted-out", "labels": {"istio-injection": "disabled"}},
            }
        ]
    )
    ctx = steps_context(cluster, tmp_path, apps_namespace="opted-out")
    with pytest.raises(StepFailed, match="namespace opted-out exists with istio-injection=disabled"):
        mesh.deploy_apps(ctx)
    assert not kube.resource("apps/v1", "Deployment").get(namespace="opted-out").items
    kube.resource("v1", "Namespace").delete(name="opted-out")


def test_injection_is_proven_by_a_dry_run_pod_before_any_restart(tmp_path, cluster):
    kube = _kube(cluster)
    kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "shop", "labels": {"istio-injection": "enabled"}},
            },
            # Not labelled for injection; created here, so the test does not lean on another test's namespace.
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "batch"}},
        ]
    )
    template = _user_objects("shop")[2]["spec"]["template"]
    ctx = steps_context(cluster, tmp_path)
    image = validate.prove_injection(ctx, "shop", template, SOURCE)
    assert image.endswith(f"/proxyv2:{SOURCE}")
    # The cluster's injector still gives the source's sidecar: restarting onto the target is refused.
    with pytest.raises(
        StepFailed, match=f"gives a pod created now the sidecar {re.escape(image)}, not Istio {TARGET}"
    ):
        validate.prove_injection(ctx, "shop", template, TARGET)
    assert not kube.resource("v1", "Pod").get(namespace="shop").items  # a dry run stores nothing
    with pytest.raises(StepFailed, match="gets no istio-proxy sidecar"):
        validate.prove_injection(ctx, "batch", template, SOURCE)


# -- 9. downgrade and rollback order -----------------------------------------------------------------------
def test_a_downgrade_whose_restore_fails_restarts_nothing_and_ends_with_a_plain_cause_and_a_report(
    tmp_path, cluster, capsys
):
    """``rollback --downgrade`` of an upgraded run whose restore meets a 422 (a nodePort of the backup now
    held by another Service): the cause in one line, no restart, no apps deployed, and report.html."""
    import json

    from rehearsal.steps import backup as backup_steps
    from rehearsal.steps.replay import replay

    kube = _kube(cluster)
    bin_dir = tmp_path / "bin"
    ctx = steps_context(cluster, tmp_path)
    ctx.settings = ctx.run.settings = dataclasses.replace(
        ctx.settings,
        cluster="kubeconfig",
        kubeconfig=str(cluster.kubeconfig_path),
        istioctl_from_path=str(write_executable(SOURCE, bin_dir)),
        istioctl_to_path=str(write_executable(TARGET, bin_dir)),
    )
    folder = backup_steps.backup(ctx)
    entry = ctx.journal.push(
        "restore Istio from the backup",
        "restore_backup",
        {"backup": str(folder.relative_to(ctx.run.dir)), "source": SOURCE},
        registered_by="apply",
    )
    ctx.journal.mark_changed()
    ctx.run.save()
    record_path = ctx.run.dir / "rehearsal.json"
    record_path.write_text(json.dumps({**json.loads(record_path.read_text()), "verdict": "upgraded"}))
    (ctx.run.dir / "settings.json").write_text(json.dumps(ctx.settings.to_dict()))
    services = kube.resource("v1", "Service")
    gateway = services.get(name="istio-ingressgateway", namespace="istio-system").to_dict()
    port = next(p["nodePort"] for p in gateway["spec"]["ports"] if p.get("nodePort"))
    services.delete(name="istio-ingressgateway", namespace="istio-system")
    squatter = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "squatter", "namespace": "default"},
        "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80, "nodePort": port}]},
    }
    kube.apply([squatter])
    try:
        code = replay(ctx.run.dir, downgrade=True)
    finally:
        services.delete(name="squatter", namespace="default")
        rollback.restore_backup(ctx, entry)  # the module's cluster as it was
    out = capsys.readouterr().out
    assert code == 1, out
    new = next((p for p in (tmp_path / "reports").glob("run-*") if p != ctx.run.dir), None)
    assert new is not None, out + capsys.readouterr().err
    record = json.loads((new / "rehearsal.json").read_text())
    assert record["verdict"] == "downgrade-failed"
    cause = next(line for line in out.splitlines() if line.startswith("cause: "))
    assert "provided port is already allocated" in cause and "the API server answered 422" in cause
    steps = {s["name"]: s for s in record["steps"]}
    assert steps["rollback"]["outcome"] == "failed"
    assert "HTTP response headers" not in json.dumps(record)
    assert (
        steps["rollback: restart workloads"]["outcome"] == "not-needed"
    )  # nothing onto the target's sidecar
    assert "deploy sample apps" not in steps  # no app deployed onto an injector not proven the source's
    assert (new / "report.html").is_file() and "provided port is already allocated" in (
        new / "report.html"
    ).read_text()
