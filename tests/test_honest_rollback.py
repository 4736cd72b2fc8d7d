"""An honest rollback: a run that upgraded is not silently downgraded (that takes --downgrade and makes a new
record), an undo that raised fails its step, and nothing moves the cluster further after a failed restore."""

from __future__ import annotations

from tests import holds
from tests.test_rehearsal import step


def test_a_restore_that_fails_fails_its_step_and_restarts_nothing(tmp_path, suites_run):
    faults = tmp_path / "faults.yaml"
    # The upgrade's istiod never gets ready (so it rolls back), and the restore cannot put the injector's
    # ConfigMap back: its dry run and apply go through, every later patch of it answers 500.
    faults.write_text(
        f"faults:\n  - type: readiness\n    image: docker.io/istio/pilot:{holds.TARGET}\n    never: true\n"
        "  - type: api-error\n    verb: patch\n    resource: configmaps\n    namespace: istio-system\n"
        "    name: istio-sidecar-injector\n    code: 500\n    skip: 2\n    times: -1\n"
    )
    data = suites_run(tmp_path, "--sim-faults", str(faults), "--step-timeout", "5").data
    assert data["verdict"] == "rollback-failed", data.get("failure")
    assert step(data, "rollback")["outcome"] == "failed"
    restart = step(data, "rollback: restart workloads")
    assert restart["outcome"] == "not-needed" and "the restore failed" in restart["reason"]
    assert step(data, "rollback: verify")["outcome"] == "failed"
