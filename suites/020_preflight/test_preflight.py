"""Preflight: back up, precheck, generate and inspect the manifest, and dry-run it. Nothing changes yet."""

import pytest

pytestmark = pytest.mark.order(20)


def test_backup_holds_the_istio_resources(backup, findings):
    findings.update({part: len(objs) for part, objs in backup.items()})
    kinds = {o["kind"] for o in backup["istio-system"]}
    assert {"Deployment", "Service", "ConfigMap"} <= kinds
    assert any(o["kind"] == "CustomResourceDefinition" for o in backup["cluster"])
    assert any(o["kind"] == "MutatingWebhookConfiguration" for o in backup["cluster"])


def test_precheck_allows_the_upgrade(precheck_passed, findings):
    step = next(s for s in precheck_passed.run.steps if s.name == "precheck")
    findings.update(outcome=step.outcome, reason=step.reason)
    assert step.outcome == "passed", f"the precheck rejects the upgrade: {step.reason}"


def test_manifest_matches_the_plan(inspected_manifest, findings):
    findings["objects"] = len(inspected_manifest)
    assert any(
        d["kind"] == "Deployment" and d["metadata"]["name"].startswith("istiod") for d in inspected_manifest
    )


def test_server_side_dry_run_accepts_the_manifest(dry_run_accepted):
    assert dry_run_accepted
