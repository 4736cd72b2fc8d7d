"""The verdict of a run, computed in one place from the run's own data (harness library; no pytest).

Every view (``rehearsal.json``, ``report.html``, JUnit properties, the terminal, the exit status) reads the
verdict this function gives; nobody else decides it.
"""

from __future__ import annotations

from typing import Any

VERDICTS = ("upgraded", "rolled-back", "failed", "rollback-failed", "downgraded", "downgrade-failed")

#: What each verdict means, in plain words (the report's banner).
MEANING = {
    "upgraded": "the upgrade succeeded and every validation passed",
    "rolled-back": "the upgrade failed; the rollback ran and the cluster is proven back at the source",
    "failed": "the upgrade failed; the cluster was not rolled back (nothing to undo, or --rollback never)",
    "rollback-failed": "the rollback did not bring the cluster back to a proven source state",
    "downgraded": "a rehearsed downgrade (rollback --downgrade of an upgraded run) proven back at the source",
    "downgrade-failed": "a rehearsed downgrade that did not bring the cluster back to a proven source state",
    None: "the run did not reach its end (interrupted or partial); see the journal for what to undo",
}
#: ``rehearsal.json`` writes ``interrupted`` for a run that did not conclude (``None`` here).
MEANING["interrupted"] = MEANING[None]


def recorded(verdict: str | None) -> str:
    """The verdict as the record writes it: ``interrupted`` for a run that did not reach its end."""
    return verdict or "interrupted"


def summary(verdict: str | None, rollback: dict[str, Any]) -> str:
    """What happened, in a few words (the report's banner): the verdict, and for ``--rollback always`` of a
    good upgrade that the rollback was rehearsed too, so a reader does not take the cluster to be at the
    target."""
    if verdict == "upgraded" and rollback.get("ran") and rollback.get("mode") == "always":
        return (
            "upgraded, rollback rehearsed"
            if rollback.get("verified")
            else "upgraded, rollback rehearsal failed"
        )
    return recorded(verdict)


def compute(concluded: bool, cause: str | None, rollback: dict[str, Any], reached_target: bool) -> str | None:
    """``None`` until the run concluded (or when it ended without failing but also without ever reaching the
    target, e.g. a partial selection of tests); then from the first failure and the rollback's proof."""
    if not concluded:
        return None
    ran = bool(rollback.get("ran"))
    verified = bool(rollback.get("verified"))
    if rollback.get("mode") == "downgrade":
        # `rollback --downgrade RUN_DIR` of an upgraded run: its own record, judged by the downgrade's proof.
        return "downgraded" if verified and cause is None else "downgrade-failed"
    if cause is None:
        if ran and not verified:
            return "rollback-failed"
        return "upgraded" if reached_target else None
    if ran:
        return "rolled-back" if verified else "rollback-failed"
    return "failed"
