"""Replaying the journal of a run that did not finish: ``python -m rehearsal rollback RUN_DIR``.

The run folder holds everything needed: the settings, the journal (written as the run went), the backup and
the cluster's kubeconfig. The restore is followed by the cleanup of what the setup steps created. A run that
ended ``upgraded`` is not silently downgraded: that takes ``--downgrade``, and is recorded as a rehearsed
downgrade in a new run folder, leaving the upgraded run's record as it was. A run on the embedded simulated
cluster cannot be replayed: that cluster ended with
the process that ran it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import exitcodes, retry
from ..cluster import ClusterError, KubeconfigProvider
from ..journal import RollbackJournal
from ..kube import Kube
from ..lease import LeaseHeld, RehearsalLease
from ..run import Run, StepFailed
from ..settings import Settings
from . import Rehearsal
from .mesh import deploy_apps, make_istioctl
from .rollback import cleanup, perform


def replay(run_dir: Path, downgrade: bool = False) -> int:
    journal_path, settings_path = run_dir / "journal.json", run_dir / "settings.json"
    if not journal_path.exists() or not settings_path.exists():
        print(
            f"error: {run_dir} is not a run folder (no journal.json and settings.json); "
            "pass reports/<run-id>",
            file=sys.stderr,
        )
        return exitcodes.BAD_OPTION
    settings = Settings.from_dict(json.loads(settings_path.read_text()))
    journal = RollbackJournal.load(journal_path)
    if not journal.pending(None):
        print(f"nothing to roll back: the journal of {run_dir.name} has no pending undo")
        return 0
    previous = (
        json.loads((run_dir / "rehearsal.json").read_text()) if (run_dir / "rehearsal.json").exists() else {}
    )
    upgraded = previous.get("verdict") == "upgraded" and bool(journal.pending("upgrade"))
    if upgraded and not downgrade:
        print(
            f"error: {run_dir.name} ended upgraded: rolling it back would downgrade Istio from "
            f"{settings.istio_to} to {settings.istio_from}; to rehearse that downgrade (recorded as a new "
            "run, "
            f"this one left as it is), run: python -m rehearsal rollback --downgrade {run_dir}",
            file=sys.stderr,
        )
        return exitcodes.BAD_OPTION
    if settings.cluster == "sim":
        print(
            "error: this run used the embedded simulated cluster, which ended with the run; there is nothing "
            "left to roll back",
            file=sys.stderr,
        )
        return exitcodes.NOT_UPGRADED
    kubeconfig = (
        Path(str(settings.kubeconfig))
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
        return exitcodes.NOT_UPGRADED
    # A downgrade is a new rehearsal of its own: a new record next to the old one, which stays intact.
    run = Run(settings, run_dir.parent, None if upgraded else run_dir.name)
    run.cluster_name = cluster.stable_name
    run.failure = None if upgraded else (previous.get("failure") or "the run was interrupted")
    cluster.retry_listeners.append(
        lambda event: run.current.add_data("retry", event) if run.current is not None else None
    )
    lease = RehearsalLease(retry.install(cluster.api_client(), []), run_dir.name)
    try:
        lease.acquire()
    except LeaseHeld as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exitcodes.NOT_UPGRADED
    try:
        kube = Kube(cluster.api_client())
        istioctl_from = make_istioctl(
            settings, run, cluster, settings.istio_from, settings.istioctl_from_path
        )
        istioctl_to = make_istioctl(settings, run, cluster, settings.istio_to, settings.istioctl_to_path)
        ctx = Rehearsal(settings, run, journal, cluster, kube, istioctl_from, istioctl_to)
        outcome: dict = {"ran": False, "verified": True}
        if upgraded:
            # The upgraded run cleaned its apps up; the downgrade is proven with traffic like any rollback.
            deploy_apps(ctx)
        if journal.pending("upgrade"):
            outcome = perform(ctx)
        try:
            outcome["cleanup"] = cleanup(ctx)
        except StepFailed as exc:
            outcome.setdefault("errors", []).append(f"cleanup: {exc}")
            outcome["verified"] = False
    finally:
        lease.release()
    if upgraded:
        run.rollback = {"mode": "downgrade", "of": run_dir.name, **outcome}
        run.verdict = "downgraded" if outcome["verified"] else "downgrade-failed"
        run.save()
        print(f"{run.run_id}: {run.verdict} (a rehearsed downgrade of {run_dir.name}, recorded in {run.dir})")
    else:
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
    return exitcodes.UPGRADED if outcome["verified"] else exitcodes.NOT_UPGRADED
