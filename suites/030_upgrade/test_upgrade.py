"""The upgrade: apply, then restart the control plane and the workloads where needed."""

import pytest

pytestmark = pytest.mark.order(30)


def test_manifest_is_applied(upgrade_applied):
    assert upgrade_applied.journal.changed_cluster


def test_control_plane_rolled_out(control_plane_restarted):
    step = next(s for s in control_plane_restarted.run.steps if s.name == "restart control plane")
    assert step.outcome in ("passed", "not-needed")


def test_workloads_run_the_new_sidecars(upgraded, findings):
    step = next(s for s in upgraded.run.steps if s.name == "restart workloads")
    findings["restart workloads"] = {"outcome": step.outcome, "reason": step.reason}
    assert step.outcome in ("passed", "not-needed")
