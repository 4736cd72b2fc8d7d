"""The steps on a team's istioctl-installed mesh (issue 16): detect the whole mesh and where each setting came
from, back up everything the upgrade may touch and prove a restore, never prune silently, apply as
``istioctl install`` does. Each test installs the team's mesh with the source's istioctl emulator on a fresh
simulated cluster and calls the steps in this process."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from istiofacts import catalog
from rehearsal.kube import Kube
from rehearsal.run import StepFailed
from rehearsal.steps import backup, mesh, rollback, upgrade

from .test_staging_sim import TEAM_MESH
from .test_steps import context

SOURCE, TARGET = catalog.default_pair()


@pytest.fixture
def team_mesh(make_istioctl, sim_cluster, tmp_path) -> Kube:
    kube = Kube(sim_cluster.api_client())
    kube.resource("v1", "Namespace").create(body={"metadata": {"name": "istio-ingress"}})
    plan = tmp_path / "team.yaml"
    plan.write_text(yaml.safe_dump(TEAM_MESH))
    make_istioctl(SOURCE).install([plan])
    return kube


def _detected(sim_cluster: Any, tmp_path: Path, **options: Any) -> Any:
    ctx = context(sim_cluster, tmp_path)
    ctx.settings = dataclasses.replace(ctx.settings, **options)
    mesh.detect_installed(ctx)
    return ctx


def test_the_whole_installed_mesh_is_detected_and_becomes_the_plan(team_mesh, sim_cluster, tmp_path):
    ctx = _detected(sim_cluster, tmp_path)
    installed = ctx.state["installed"]
    assert installed.values_from == "ConfigMap istio-system/values" and not installed.rederived
    record = installed.to_dict()
    assert record["carried"]["values.pilot.env"] == {
        "value": {"PILOT_ENABLE_STATUS": True, "EXTERNAL_FOO": "bar"},
        "from": "ConfigMap istio-system/values",
    }
    assert {"Deployment/istio-ingress/team-gateway", "DaemonSet/kube-system/istio-cni-node"} <= set(
        installed.owned
    )
    assert {"istio-system", "istio-ingress", "kube-system"} <= set(installed.owned_namespaces)
    assert installed.tags == {"default": "default"}
    spec = ctx.settings.install_spec(TARGET)
    gateways = {
        (g["name"], g.get("namespace", "istio-system")): g for g in spec["components"]["ingressGateways"]
    }
    team = gateways[("team-gateway", "istio-ingress")]
    assert team["label"]["istio"] == "team-gateway" and team["k8s"]["replicaCount"] == 2
    assert team["k8s"]["serviceAnnotations"] == {"lb.example.com/internal": "true"}
    assert spec["components"]["cni"]["namespace"] == "kube-system"
    assert spec["values"]["pilot"]["env"]["EXTERNAL_FOO"] == "bar"
    assert spec["meshConfig"]["accessLogFile"] == "/dev/stdout"
    assert "global" not in spec["values"] or "tag" not in spec["values"]["global"]  # never pin the source


def test_without_installed_values_the_settings_are_re_derived_and_said_so(team_mesh, sim_cluster, tmp_path):
    team_mesh.resource("v1", "ConfigMap").delete(name="values", namespace="istio-system")
    installed = _detected(sim_cluster, tmp_path).state["installed"]
    assert installed.values_from == "re-derived"
    assert {"components.ingressGateways", "components.cni.namespace"} <= set(installed.rederived)


def test_the_backup_holds_every_namespace_of_the_mesh_and_a_restore_proves_it(
    team_mesh, sim_cluster, tmp_path
):
    ctx = _detected(sim_cluster, tmp_path)
    folder = backup.backup(ctx)
    data = backup.load_backup(folder)
    outside = {backup.key(o) for o in data["mesh-namespaces"]}
    assert ("Deployment", "istio-ingress", "team-gateway") in outside
    assert ("DaemonSet", "kube-system", "istio-cni-node") in outside
    assert not [o for o in data["mesh-namespaces"] if o["metadata"]["name"] in ("coredns", "kube-proxy")]
    names = {backup.key(o) for o in data["istio-system"] + data["cluster"]}
    assert ("ConfigMap", "istio-system", "values") in names
    assert ("MutatingWebhookConfiguration", "", "istio-revision-tag-default") in names
    assert backup.mesh_namespaces(data) == ["istio-ingress", "istio-system", "kube-system"]
    assert backup.differences(ctx, data) == []
    services = team_mesh.resource("v1", "Service")
    services.patch(
        name="team-gateway",
        namespace="istio-ingress",
        body={"metadata": {"annotations": {"lb.example.com/internal": "false"}}},
    )
    team_mesh.resource("apps/v1", "DaemonSet").delete(name="istio-cni-node", namespace="kube-system")
    assert set(backup.differences(ctx, data)) == {
        "Service/istio-ingress/team-gateway: labels/annotations differ",
        "DaemonSet/kube-system/istio-cni-node: missing",
    }
    entry = ctx.journal.push(
        "restore", "restore_backup", {"backup": str(folder.relative_to(ctx.run.dir))}, "apply"
    )
    result = rollback.restore_backup(ctx, entry)
    assert "Service/istio-ingress/team-gateway" in result["restored"]
    assert result["proved identical to the backup"] == sum(
        len(data[p]) for p in ("istio-system", "mesh-namespaces", "cluster")
    )
    assert backup.differences(ctx, data) == []


def _target_docs(ctx: Any, spec: dict[str, Any]) -> list[dict[str, Any]]:
    plan = ctx.run.dir / "target-plan.yaml"
    plan.write_text(
        yaml.safe_dump({"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec})
    )
    ctx.settings = dataclasses.replace(ctx.settings, plan=str(plan), plan_spec=spec, sets=())
    return upgrade.generate(ctx)


def test_a_prune_of_what_the_source_installed_stops_the_run_before_apply_unless_allowed(
    team_mesh, sim_cluster, tmp_path
):
    ctx = _detected(sim_cluster, tmp_path)
    backup.backup(ctx)
    # A plan that forgets the team's gateway (and CNI): the target does not render them.
    docs = _target_docs(ctx, {"meshConfig": {"accessLogFile": "/dev/stdout"}})
    with pytest.raises(StepFailed) as stopped:
        upgrade.apply(ctx, docs)
    message = str(stopped.value)
    for ref in (
        "Deployment/istio-ingress/team-gateway",
        "Service/istio-ingress/team-gateway",
        "DaemonSet/kube-system/istio-cni-node",
    ):
        assert ref in message and f"--allow-prune {ref}" in message
    assert not ctx.journal.entries, "nothing may be journaled (or changed) before the prune check"
    assert (
        team_mesh.resource("apps/v1", "Deployment")
        .get(name="istiod", namespace="istio-system")
        .to_dict()["spec"]["template"]["spec"]["containers"][0]["image"]
        .endswith(f":{SOURCE}")
    )
    allowed = tuple(upgrade.silent_prunes(ctx, docs))
    ctx.settings = dataclasses.replace(ctx.settings, allow_prune=allowed)
    upgrade.apply(ctx, docs)
    pruned = next(e["data"] for e in ctx.run.steps[-1].evidence if e.get("title") == "pruned")
    assert "Deployment/istio-ingress/team-gateway" in pruned
    assert not [d for d in team_mesh.resource("apps/v1", "Deployment").get(namespace="istio-ingress").items]
    # The pruned objects are in the backup: the rollback's restore brings them back.
    rollback.restore_backup(ctx, ctx.journal.pending()[0])
    assert team_mesh.resource("apps/v1", "Deployment").get(name="team-gateway", namespace="istio-ingress")


def test_apply_is_istioctl_install_field_manager_components_in_order(team_mesh, sim_cluster, tmp_path):
    ctx = _detected(sim_cluster, tmp_path)
    backup.backup(ctx)
    docs = upgrade.generate(ctx)
    upgrade.apply(ctx, docs)
    step = ctx.run.steps[-1]
    assert (
        "component by component as istioctl install does (Base, Pilot, Cni, IngressGateways;" in step.reason
    )
    assert "field manager istio-operator" in step.reason
    istiod = (
        team_mesh.resource("apps/v1", "Deployment").get(name="istiod", namespace="istio-system").to_dict()
    )
    managers = {m["manager"] for m in istiod["metadata"]["managedFields"]}
    assert managers == {"istio-operator"} or "istio-upgrade-rehearsal" not in managers
    team = (
        team_mesh.resource("apps/v1", "Deployment")
        .get(name="team-gateway", namespace="istio-ingress")
        .to_dict()
    )
    assert team["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{TARGET}")
    assert team["metadata"]["labels"]["operator.istio.io/component"] == "IngressGateways"
    assert team["metadata"]["labels"]["operator.istio.io/version"] == TARGET
