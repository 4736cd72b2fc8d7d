"""Known pitfalls after the restart: the named checks that need the upgraded cluster (``rehearsal/pitfalls``,
phase ``during``); a finding fails the run, and the automatic rollback follows."""

import pytest

from rehearsal.pitfalls import step as pitfalls

pytestmark = pytest.mark.order(40)


def test_no_known_pitfall_after_the_restart(upgraded, findings):
    found = pitfalls.after_restart(upgraded)
    findings["pitfalls"] = [f.to_dict() for f in found]
    errors = [f.line() for f in found if f.severity == "error"]
    assert not errors, "known pitfalls after the restart: " + "; ".join(errors)
