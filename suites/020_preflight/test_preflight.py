"""Preflight: back up, precheck, generate and inspect the manifest, and dry-run it. Nothing changes yet.

A step that cannot be performed makes its fixture raise (the test reads ERROR); the tests assert what the
steps' success alone does not guarantee.
"""

import pytest

from istiofacts import catalog

pytestmark = pytest.mark.order(20)


def test_backup_holds_the_istio_resources(backup, findings):
    findings.update({part: len(objs) for part, objs in backup.items()})
    kinds = {o["kind"] for o in backup["istio-system"]}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    assert any(o["kind"] == "CustomResourceDefinition" for o in backup["cluster"])
    assert any(o["kind"] == "MutatingWebhookConfiguration" for o in backup["cluster"])


def test_precheck_allows_the_upgrade(precheck_passed, rehearsal_settings, findings):
    s = rehearsal_settings
    problem = catalog.upgrade_path_problem(s.istio_from, s.istio_to, s.strategy)
    commands = [
        e["argv"]
        for step in precheck_passed.run.steps
        if step.name == "precheck"
        for e in step.evidence
        if e["type"] == "command"
    ]
    step = next(s for s in precheck_passed.run.steps if s.name == "precheck")
    findings.update(upgrade_path_problem=problem, commands=commands, outcome=step.outcome, reason=step.reason)
    # A rejection is this test's failure (JUnit: failure, not error): the fixture lets it through.
    assert step.outcome == "passed", f"the precheck rejects the upgrade: {step.reason}"
    assert problem is None
    assert any(argv[1:3] == ["x", "precheck"] for argv in commands), "istioctl x precheck never ran"


def test_manifest_matches_the_plan(inspected_manifest, rehearsal_settings, findings):
    findings["objects"] = len(inspected_manifest)
    istiod = [
        d
        for d in inspected_manifest
        if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("istiod")
    ]
    assert istiod, "the manifest has no istiod Deployment"
    image = istiod[0]["spec"]["template"]["spec"]["containers"][0]["image"]
    findings["istiod image"] = image
    assert image.rsplit(":", 1)[-1].split("-")[0] == rehearsal_settings.istio_to


def test_server_side_dry_run_accepts_the_manifest(dry_run_accepted, rehearsal, findings):
    step = next(s for s in rehearsal.run.steps if s.name == "dry-run")
    findings["dry-run"] = step.reason
    accepted = int(step.reason.split(" ", 1)[0])
    assert accepted > 0 and accepted <= len(dry_run_accepted)
