"""The canary strategy (issue 19) in this process, on a fresh simulated cluster per test: the source installed
by its istioctl emulator, the sample apps deployed, then the runbook's steps with ``--strategy canary``
(a revision beside the source, namespaces moved with revision tags, the old revision removed), its failure
moved back, and a killed canary rolled back from its journal. Versions come from the catalog."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from istiofacts import catalog
from kubesim.istio.istioctl import write_executable
from rehearsal.istio.istioctl import Istioctl
from rehearsal.kube import Kube
from rehearsal.record import load_schema
from rehearsal.run import StepFailed
from rehearsal.settings import SettingsError, resolve
from rehearsal.steps import Rehearsal, backup, mesh, replay, rollback, upgrade, validate
from rehearsal.strategies import canary, canary_moves, checks
from rehearsal.strategies.canary import CANARY, STABLE

from .test_steps import context

NEWEST = [m.patches[-1] for m in catalog.newest_minors(3)]  # N-2, N-1, N


def _ctx(sim_cluster: Any, tmp_path: Path, source: str, target: str, **options: Any) -> Rehearsal:
    ctx = context(
        sim_cluster, tmp_path, **{"strategy": "canary", "traffic_requests": 5, "timeout": 60, **options}
    )
    ctx.settings = dataclasses.replace(ctx.settings, istio_from=source, istio_to=target)

    bin_dir = tmp_path / "bin"
    ctx.istioctl_from = Istioctl(source, write_executable(source, bin_dir), sim_cluster.kubeconfig_path)
    ctx.istioctl_to = Istioctl(target, write_executable(target, bin_dir), sim_cluster.kubeconfig_path)
    mesh.detect_installed(ctx)
    mesh.install_source(ctx)
    mesh.deploy_apps(ctx)
    mesh.baseline(ctx)
    ctx.state["backup"] = backup.backup(ctx)
    return ctx


def _upgrade(ctx: Rehearsal) -> None:
    saved = backup.load_backup(ctx.state["backup"])
    upgrade.precheck(ctx)
    docs = upgrade.generate(ctx)
    upgrade.apply(ctx, docs)
    upgrade.restart_control_plane(ctx, saved)
    upgrade.restart_workloads(ctx)


def _namespace_revision(ctx: Rehearsal, namespace: str) -> str | None:
    labels = (
        ctx.kube.resource("v1", "Namespace").get(name=namespace).to_dict()["metadata"].get("labels") or {}
    )
    tags = checks.revision_tags(ctx)
    if labels.get("istio-injection") == "enabled":
        return tags.get("default")
    rev = labels.get("istio.io/rev")
    return tags.get(rev, rev) if rev else None


def test_a_canary_upgrade_ends_with_one_revision_and_every_namespace_on_it_through_its_tag(
    sim_cluster, tmp_path
):
    """N-1 -> N here; N-2 -> N is the end-to-end run below."""
    source, target = NEWEST[1], NEWEST[2]
    ctx = _ctx(sim_cluster, tmp_path, source, target)
    _upgrade(ctx)
    new = canary_moves.revision_name(target)
    assert canary_moves.istiod_revisions(ctx) == {new: target}
    assert _namespace_revision(ctx, ctx.apps_ns) == new
    tags = checks.revision_tags(ctx)
    assert tags == {"default": new, STABLE: new, CANARY: new} == checks.tag_list(ctx.istioctl_to)
    after = validate.versions_after(ctx, ctx.istioctl_to)
    assert after["control_plane"] == [target] and set(after["pod_specs"].values()) == {target}
    moves = [m["move"] for m in ctx.run.moves]
    assert moves[0] == "install revision" and moves[-1] == "uninstall revision"
    assert "namespace moved" in moves
    record = ctx.run.to_dict()
    assert record["strategy"] == "canary" and record["strategy_plan"]["new revision"] == new
    names = [s.name for s in ctx.run.steps]
    assert f"canary: move namespace {ctx.apps_ns}" in names and names[-1] == "canary: verify"


def test_in_place_refuses_the_n_minus_2_path_that_canary_allows():
    assert catalog.upgrade_path_problem(NEWEST[0], NEWEST[2], "in-place")
    assert catalog.upgrade_path_problem(NEWEST[0], NEWEST[2], "canary") is None


def test_a_canary_whose_pilot_cannot_be_pulled_is_moved_back_and_leaves_no_trace(sim_cluster, tmp_path):
    source, target = NEWEST[1], NEWEST[2]
    ctx = _ctx(sim_cluster, tmp_path, source, target)
    hub = catalog.default_hub(target)
    sim_cluster.faults.fail_image(f"{hub}/pilot:{target}")
    # The install's readiness wait is the step timeout: short, as it can only end one way.
    ctx.settings = dataclasses.replace(ctx.settings, timeout=2)
    with pytest.raises(StepFailed):
        _upgrade(ctx)
    ctx.settings = dataclasses.replace(ctx.settings, timeout=60)
    outcome = rollback.decide(ctx)
    import json

    print(json.dumps(outcome, indent=1, default=str)[:6000])
    assert ctx.run.verdict == "rolled-back", outcome
    new = canary_moves.revision_name(target)
    assert new not in canary_moves.istiod_revisions(ctx)
    assert canary_moves._revision_objects(ctx, new) == []
    assert new not in checks.revision_tags(ctx).values()
    assert _namespace_revision(ctx, ctx.apps_ns) == "default"
    proof = outcome["verification"]["versions"]
    assert proof["control_plane"] == [source] and set(proof["pod_specs"].values()) == {source}


def test_a_canary_killed_during_the_namespace_moves_is_rolled_back_from_its_journal(sim_cluster, tmp_path):
    source, target = NEWEST[1], NEWEST[2]
    ctx = _ctx(sim_cluster, tmp_path, source, target)
    saved = backup.load_backup(ctx.state["backup"])
    upgrade.precheck(ctx)
    docs = upgrade.generate(ctx)
    upgrade.apply(ctx, docs)
    upgrade.restart_control_plane(ctx, saved)

    def killed(ctx: Rehearsal, namespace: str, phase: str) -> None:
        if phase == "after":
            raise KeyboardInterrupt  # the run is killed once the first namespace moved

    ctx.state["namespace_move_hooks"] = [killed]
    with pytest.raises(KeyboardInterrupt):
        upgrade.restart_workloads(ctx)
    assert _namespace_revision(ctx, ctx.apps_ns) == canary_moves.revision_name(target)
    # A later process, `python -m rehearsal rollback RUN_DIR`, has only the run folder. The simulated cluster
    # outlives this run here, so the folder names it as an existing cluster, with the emulator's istioctls.
    settings_path = ctx.run.dir / "settings.json"
    saved_settings = json.loads(settings_path.read_text())
    saved_settings.update(
        cluster="kubeconfig",
        kubeconfig=str(sim_cluster.kubeconfig_path),
        istioctl_from_path=str(ctx.istioctl_from.path),
        istioctl_to_path=str(ctx.istioctl_to.path),
    )
    settings_path.write_text(json.dumps(saved_settings))
    assert replay.replay(ctx.run.dir) == 0
    record = json.loads((ctx.run.dir / "rehearsal.json").read_text())
    assert record["verdict"] == "rolled-back" and record["rollback"]["verified"]
    undone = [r["undo"] for r in record["rollback"]["restored"]]
    assert undone[0] == f"move namespace {ctx.apps_ns} back to revision default"
    assert canary_moves.istiod_revisions(ctx) == {"default": source}
    new = canary_moves.revision_name(target)
    assert canary_moves._revision_objects(ctx, new) == [] and new not in checks.revision_tags(ctx).values()


def test_the_emulators_tag_commands_answer_as_each_version(make_istioctl, sim_cluster):
    """``tag list`` (NAMESPACES, sorted by revision then tag), ``tag set default`` (with its
    istiod-default-validator), ``tag remove`` (its error; from 1.31 also the tag's validators) as
    istioctl/pkg/tag at each release: one installation, the tag commands of two versions; ``uninstall
    --revision`` of a revision that does not exist is refused (operator/cmd/mesh/uninstall.go)."""
    make_istioctl(NEWEST[2]).install()
    kube = Kube(sim_cluster.api_client())
    team = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team", "labels": {"istio.io/rev": "prod"}},
    }
    kube.apply([team])
    validators = kube.resource("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")
    for version in (NEWEST[1], NEWEST[2]):
        ctl, minor = make_istioctl(version), catalog.minor_of(version)
        ctl.tag_set("default", "default")
        ctl.tag_set("prod", "default")
        listed = ctl.run("tag", "list").stdout.splitlines()
        assert listed[0].split() == ["TAG", "REVISION", "NAMESPACES"]
        assert [line.split() for line in listed[1:]] == [["default", "default"], ["prod", "default", "team"]]
        missing = ctl.run("tag", "remove", "nope", "-y", check=False)
        what = "MutatingWebhookConfiguration" + (" or Service" if minor.at_least("1.28") else "")
        assert missing.exit_code != 0
        assert f'cannot remove tag "nope": cannot find {what} for tag' in missing.stderr
        assert "istiod-default-validator" in {v.metadata.name for v in validators.get().items}
        assert ctl.run("tag", "remove", "default", "-y").stdout.strip() == "Revision tag default removed"
        left = {v.metadata.name for v in validators.get().items}
        assert ("istiod-default-validator" in left) == (not minor.at_least("1.31")), version
    no_revision = make_istioctl(NEWEST[2]).run("tag", "set", "prod", check=False)
    assert no_revision.exit_code == 64 and 'required flag(s) "revision" not set' in no_revision.stderr
    unknown = make_istioctl(NEWEST[2]).run("uninstall", "--revision", "nope", "-y", check=False)
    assert unknown.exit_code != 0 and "could not find target revision" in unknown.stderr


def test_the_suites_rehearse_a_canary_upgrade_n_minus_2_to_n_end_to_end(tmp_path, suites_run):
    """The one end-to-end canary run: the suites as a user runs them, ``--strategy canary``, two minors."""
    source, target = NEWEST[0], NEWEST[2]
    result = suites_run(tmp_path, "--istio-from", source, "--istio-to", target, "--strategy", "canary")
    data = result.data
    assert result.returncode == 0, result.stdout[-3000:]
    assert data["verdict"] == "upgraded" and data["strategy"] == "canary"
    assert data["versions"]["after"]["control_plane"] == [target]
    assert set(data["versions"]["after"]["pod_specs"].values()) == {target}
    new = canary_moves.revision_name(target)
    assert data["strategy_plan"]["old revision"] == "default" and data["strategy_plan"]["new revision"] == new
    moves = [m["move"] for m in data["moves"]]
    assert moves[0] == "install revision" and moves[-1] == "uninstall revision"
    assert " failed" not in result.stdout and " error" not in result.stdout
    jsonschema.Draft202012Validator(load_schema(), format_checker=jsonschema.FormatChecker()).validate(data)
    report = (result.run_dir / "report.html").read_text()
    assert "Strategy canary: its moves" in report and "uninstall revision" in report


def test_the_namespaces_move_in_the_order_asked_then_the_sample_apps_then_the_rest(sim_cluster, tmp_path):
    ctx = context(sim_cluster, tmp_path, strategy="canary", canary_order=["team-b"])
    kube = Kube(sim_cluster.api_client())
    for name, labels in [
        ("team-a", {"istio-injection": "enabled"}),
        ("team-b", {"istio.io/rev": "prod-stable"}),
        ("plain", {}),
        (ctx.apps_ns, {"istio-injection": "enabled"}),
    ]:
        kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}])
    assert canary.order(ctx) == ["team-b", ctx.apps_ns, "team-a"]


@pytest.mark.parametrize(
    "options, error",
    [
        ({"canary_order": ["a"]}, "--revision and --canary-order apply only to --strategy canary"),
        ({"strategy": "canary", "revision": "1.31.1"}, "--revision '1.31.1' is not a revision name"),
    ],
)
def test_canary_options_are_checked_before_anything_runs(options, error):
    with pytest.raises(SettingsError) as refused:
        resolve(options)
    assert error in str(refused.value)


def test_settings_name_the_revision_from_the_version_unless_given():
    assert canary_moves.revision_name(NEWEST[2]) == NEWEST[2].replace(".", "-")
    given = resolve({"strategy": "canary", "revision": "canary", "canary_order": "a, b"})
    assert (given.revision, given.canary_order) == ("canary", ("a", "b"))


def test_a_canary_failing_after_the_old_revision_went_reinstalls_it_and_moves_every_namespace_back(
    sim_cluster, tmp_path, monkeypatch
):
    """The last check fails once the old control plane is gone: the rollback reinstalls it from the backup
    first, then moves the namespaces back onto it."""
    source, target = NEWEST[1], NEWEST[2]
    ctx = _ctx(sim_cluster, tmp_path, source, target)
    real = checks.end_state

    def failing(ctx: Rehearsal, plan: dict[str, Any]) -> dict[str, Any]:
        found = real(ctx, plan)
        return {**found, "problems": [*found["problems"], "a check of the end state failed"]}

    monkeypatch.setattr(checks, "end_state", failing)
    with pytest.raises(StepFailed, match="a check of the end state failed"):
        _upgrade(ctx)
    assert "uninstall revision" in [m["move"] for m in ctx.run.moves]
    rollback.decide(ctx)
    assert ctx.run.verdict == "rolled-back", ctx.run.rollback
    undone = [r["undo"] for r in ctx.run.rollback["restored"]]
    assert undone[0] == "reinstall the old revision default from the backup"
    assert canary_moves.istiod_revisions(ctx) == {"default": source}
    assert _namespace_revision(ctx, ctx.apps_ns) == "default"
    assert checks.revision_tags(ctx) == {"default": "default"}


def test_tag_consistency_names_a_tag_off_its_revision_and_overlapping_injectors(sim_cluster, tmp_path):
    ctx = context(sim_cluster, tmp_path, strategy="canary")
    ctx.istioctl_to.install()
    ctx.istioctl_to.tag_set(STABLE, "default")
    assert checks.tags_consistent(ctx, {STABLE: "default"}) == []
    assert checks.tags_consistent(ctx, {CANARY: "default"})[0].startswith(
        f"tag {CANARY}: the webhooks say None"
    )
    hooks = ctx.kube.resource("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
    twin = hooks.get(name="istio-revision-tag-default").to_dict()
    twin["metadata"] = {"name": "a-second-injector"}  # matches the same namespaces: injection twice
    hooks.create(body=twin)
    ctx.kube.apply(
        [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "team", "labels": {"istio-injection": "enabled"}},
            }
        ]
    )
    problems = checks.tags_consistent(ctx, {STABLE: "default"})
    assert problems and "IST0139" in problems[0] and "overlaps" in problems[0]
