"""The run record: ``rehearsal.json`` as typed, schema-versioned data (harness library; no pytest).

:func:`build` turns a :class:`~rehearsal.run.Run` into the record every view reads (the HTML report, JUnit
properties, the terminal summary); ``schema.json`` beside this module (shipped as package data) is its JSON
Schema, and :func:`load_schema` hands it out. Times are ISO 8601 in UTC; the verdict comes from
:func:`rehearsal.record.verdict.compute` only.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from datetime import UTC, datetime
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from ..evidence import redact
from . import verdict as verdicts

if TYPE_CHECKING:
    from ..run import Run

SCHEMA_VERSION = "1.1"
ROOT = Path(__file__).resolve().parent.parent.parent


class StepData(TypedDict):
    name: str
    started: str
    ended: str | None
    duration_seconds: float
    outcome: str
    reason: str
    evidence: list[dict[str, Any]]
    artifacts: list[dict[str, str]]


def iso(timestamp: float | None) -> str | None:
    """A POSIX time as ISO 8601 in UTC with milliseconds: ``2026-11-21T23:01:26.123Z``."""
    if timestamp is None or timestamp == 0:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@cache
def harness_identity() -> dict[str, Any]:
    """Which harness made the record: package version and, from a checkout, its git commit."""
    try:
        version = metadata.version("istio-upgrade-rehearsal")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = None
    dirty = None
    try:
        commit = (
            subprocess.run(
                ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or None
        )
        if commit:
            status = subprocess.run(
                ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": version, "commit": commit, "dirty": dirty, "python": platform.python_version()}


def sha256_of(path: str | Path) -> str | None:
    try:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return None


def _step(step: Any) -> StepData:
    return {
        "name": step.name,
        "started": iso(step.started) or "",
        "ended": iso(step.ended),
        "duration_seconds": round(max(0.0, (step.ended or step.started) - step.started), 3),
        "outcome": step.outcome,
        "reason": step.reason,
        "evidence": step.evidence,
        "artifacts": step.artifacts,
    }


def _traffic(run: Run) -> list[dict[str, Any]]:
    figures = []
    for step in run.steps:
        for item in step.evidence:
            if item.get("type") == "data" and "traffic" in str(item.get("title", "")):
                figures.append({"when": step.name, **_traffic_figures(item["data"])})
            if item.get("type") == "data" and item.get("title") == "verification":
                traffic = (item.get("data") or {}).get("traffic")
                if traffic:
                    figures.append({"when": f"{step.name}", **_traffic_figures(traffic)})
    for check in run.validations:
        findings = check.get("findings") or {}
        if "codes" in findings and "requests" in findings:
            figures.append({"when": check["name"], **_traffic_figures(findings)})
    return figures


def _traffic_figures(data: dict[str, Any]) -> dict[str, Any]:
    keep = ("requests", "codes", "proxy_versions", "failures", "seconds")
    return {k: data[k] for k in keep if k in data}


def _telemetry(run: Run) -> dict[str, Any] | None:
    for check in run.validations:
        if "telemetry" in check["name"]:
            return {"check": check["name"], "outcome": check["outcome"], **(check.get("findings") or {})}
    return None


def _plan(run: Run) -> dict[str, Any]:
    s = run.settings
    content = None
    if s.plan:
        try:
            content = redact(Path(s.plan).read_text())
        except OSError:
            content = None
    return {
        "from": s.istio_from,
        "to": s.istio_to,
        "strategy": s.strategy,
        "rollback": s.rollback,
        "cluster": s.cluster,
        "plan_file": s.plan,
        "plan_content": content,
        "sets": list(s.sets),
        "install_spec_to": s.install_spec(s.istio_to),
    }


def build(run: Run) -> dict[str, Any]:
    """The record of ``run`` as it stands now (rewritten after every step, so a killed run leaves one)."""
    s = run.settings
    ended = run.ended
    rollback = dict(run.rollback)
    verification = rollback.get("verification") or {}
    versions = {
        "before": run.versions.get("before") or None,
        "after": run.versions.get("after") or None,
        "after_rollback": verification.get("versions") if rollback.get("ran") else None,
    }
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "started": iso(run.started),
        "ended": iso(ended),
        "duration_seconds": round(((ended or run.now()) - run.started), 3),
        "verdict": verdicts.recorded(run.verdict),
        "verdict_meaning": verdicts.MEANING[run.verdict],
        "verdict_summary": verdicts.summary(run.verdict, run.rollback),
        "failure": run.failure,
        "cause": run.cause(),
        "from": s.istio_from,
        "to": s.istio_to,
        "cluster": run.cluster_name or s.cluster,
        "strategy": s.strategy,
        "strategy_plan": dict(run.strategy_plan),
        "moves": [{**move, "at": iso(move["at"])} for move in run.moves],
        "harness": harness_identity(),
        "environment": {
            "cluster_kind": s.cluster,
            "cluster": run.cluster_name or None,
            "kubernetes_version": run.kubernetes_version,
            "istioctl": [
                {"version": version, "path": str(path), "sha256": sha256_of(path)}
                for version, path in run.istioctls
            ],
        },
        "plan": _plan(run),
        "settings": {k: v for k, v in s.to_dict().items() if k != "plan_spec"},
        "steps": [_step(step) for step in run.steps],
        "validations": list(run.validations),
        "versions": versions,
        "traffic": _traffic(run),
        "telemetry": _telemetry(run),
        "rollback": rollback,
        "availability": run.availability,
    }
    return record


def load_schema() -> dict[str, Any]:
    """The JSON Schema of ``rehearsal.json`` (shipped in the package)."""
    text = resources.files(__package__).joinpath("schema.json").read_text()
    data: dict[str, Any] = json.loads(text)
    return data
