"""Known pitfalls after the restart: the named checks that need the upgraded cluster (``rehearsal/pitfalls``,
phase ``during``); a finding fails the run, and the automatic rollback follows."""

import pytest

from rehearsal.pitfalls import step as pitfalls

pytestmark = pytest.mark.order(40)


def test_no_known_pitfall_after_the_restart(upgraded, findings):
    try:
        found = pitfalls.after_restart(upgraded)
    except pitfalls.StepFailed as exc:
        findings["pitfalls"] = str(exc)
        raise AssertionError(f"known pitfalls after the restart: {exc}") from None
    findings["pitfalls"] = [f.to_dict() for f in found]
