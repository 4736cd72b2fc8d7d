"""Last: roll back when the upgrade failed (or always, per --rollback), and prove the cluster is back."""

import pytest

pytestmark = pytest.mark.order(90)


def test_rollback_restores_the_source_when_needed(rollback_outcome, findings):
    findings.update({k: v for k, v in rollback_outcome.items() if k != "verification"})
    if not rollback_outcome.get("ran"):
        pytest.skip(rollback_outcome.get("reason", "no rollback needed"))
    assert rollback_outcome["verified"], rollback_outcome.get("verification", {}).get("findings")


def test_cluster_is_proven_at_the_source_after_a_failure(rollback_outcome, rehearsal_run, findings):
    if rehearsal_run.failure is None and not rollback_outcome.get("ran"):
        pytest.skip("the upgrade succeeded: the cluster stays at the target")
    proof = rollback_outcome.get("verification") or {}
    findings.update(proof.get("findings", {}))
    if rollback_outcome.get("mode") == "never" and not rollback_outcome.get("ran"):
        pytest.skip("--rollback never")
    assert proof.get("verified"), proof.get("findings")
