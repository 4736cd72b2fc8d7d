"""Replaying the journal of a run that did not finish: ``python -m rehearsal rollback RUN_DIR``.

The run folder holds everything needed: the settings, the journal (written as the run went), the backup and
the cluster's kubeconfig. A run on the embedded simulated cluster cannot be replayed: that cluster ended with
the process that ran it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..cluster import ClusterError, KubeconfigProvider
from ..journal import RollbackJournal
from ..kube import Kube
from ..run import Run
from ..settings import Settings
from . import Rehearsal
from .mesh import make_istioctl
from .rollback import perform


def replay(run_dir: Path) -> int:
    journal_path, settings_path = run_dir / "journal.json", run_dir / "settings.json"
    if not journal_path.exists() or not settings_path.exists():
        print(
            f"error: {run_dir} is not a run folder (no journal.json and settings.json); pass reports/<run-id>",
            file=sys.stderr,
        )
        return 2
    settings = Settings.from_dict(json.loads(settings_path.read_text()))
    journal = RollbackJournal.load(journal_path)
    if not journal.pending():
        print(f"nothing to roll back: the journal of {run_dir.name} has no pending undo")
        return 0
    if settings.cluster == "sim":
        print(
            "error: this run used the embedded simulated cluster, which ended with the run; there is nothing "
            "left to roll back",
            file=sys.stderr,
        )
        return 1
    kubeconfig = (
        Path(settings.kubeconfig)
        if settings.cluster == "kubeconfig"
        else run_dir / "artifacts" / "kubeconfig"
    )
    try:
        cluster = KubeconfigProvider(
            kubeconfig,
            settings.context or (f"kind-{settings.kind_name}" if settings.cluster == "kind" else None),
        ).provision(run_dir / "artifacts")
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    run = Run(settings, run_dir.parent, run_dir.name)
    previous = (
        json.loads((run_dir / "rehearsal.json").read_text()) if (run_dir / "rehearsal.json").exists() else {}
    )
    run.cluster_name = cluster.stable_name
    run.failure = previous.get("failure") or "the run was interrupted"
    kube = Kube(cluster.api_client())
    istioctl_from = make_istioctl(settings, run, cluster, settings.istio_from, settings.istioctl_from_path)
    istioctl_to = make_istioctl(settings, run, cluster, settings.istio_to, settings.istioctl_to_path)
    ctx = Rehearsal(settings, run, journal, cluster, kube, istioctl_from, istioctl_to)
    outcome = perform(ctx)
    run.rollback = {"mode": "replayed", **outcome}
    run.verdict = "rolled-back" if outcome["verified"] else "rollback-failed"
    record = {
        **previous,
        "verdict": run.verdict,
        "rollback": run.rollback,
        "steps": previous.get("steps", []) + [s for s in run.to_dict()["steps"]],
    }
    (run_dir / "rehearsal.json").write_text(json.dumps(record, indent=2, default=str))
    print(f"{run_dir.name}: {run.verdict}")
    for line in outcome.get("errors", []):
        print(f"  error: {line}")
    for name, items in (outcome.get("verification") or {}).get("findings", {}).items():
        print(f"  {name}: {'; '.join(items[:3])}")
    return 0 if outcome["verified"] else 1
