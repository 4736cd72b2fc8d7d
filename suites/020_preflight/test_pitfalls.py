"""Known pitfalls: the named checks of ``rehearsal/pitfalls`` on this cluster, the target render and the
rollback render, after the precheck and before anything changes (catalog: ``istiofacts/pitfalls.py``).

An ``error`` finding fails the step, so the upgrade is not attempted; warnings are reported with the test."""

import pytest

from rehearsal.pitfalls import step as pitfalls

pytestmark = pytest.mark.order(25)
# After a failed precheck the checks still run: an unknown value or a Kubernetes out of range gets its name.
RUNS_AFTER_FAILED_STEPS = ("precheck",)


@pytest.fixture(scope="session")
def pitfall_findings(source_installed, backup, precheck_passed):
    try:
        return pitfalls.before_apply(source_installed)
    except pitfalls.StepFailed:
        return source_installed.state["pitfall findings"]


def test_no_known_pitfall_blocks_the_upgrade(pitfall_findings, findings):
    findings["pitfalls"] = [f.to_dict() for f in pitfall_findings]
    errors = [f.line() for f in pitfall_findings if f.severity == "error"]
    assert not errors, "known pitfalls: " + "; ".join(errors)
