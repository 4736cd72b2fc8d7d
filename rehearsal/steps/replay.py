"""Replaying the journal of a run that did not finish: ``python -m rehearsal rollback RUN_DIR``.

The run folder holds everything needed: the settings, the journal (written as the run went), the backup and
the cluster's kubeconfig. The restore is followed by the cleanup of what the setup steps created. A run that
ended ``upgraded`` is not silently downgraded: that takes ``--downgrade``, and is recorded as a rehearsed
downgrade in a new run folder, leaving the upgraded run's record as it was. A run on the embedded simulated
cluster cannot be replayed: that cluster ended with
the process that ran it.

A downgrade restores the control plane first, then deploys the sample apps it proves traffic with (onto the
restored injector), then restarts the workloads the upgrade restarted onto the source's sidecar, then
verifies; a failed restore restarts nothing. Each step prints its line as it ends and a wait says what it
waits for; whatever happens, the run ends with its verdict, the cause in one line, and ``report.html``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .. import exitcodes, retry, waits
from ..cluster import ClusterError, KubeconfigProvider
from ..journal import RollbackJournal
from ..kube import Kube
from ..lease import LeaseHeld, RehearsalLease
from ..run import Run, StepFailed
from ..settings import Settings
from . import Rehearsal
from .mesh import deploy_apps, make_istioctl
from .rollback import cleanup, one_line, perform

_last_wait: dict[str, float] = {}


def _print_step(step: Any) -> None:
    from ..report import progress

    print(progress.step_line(step), flush=True)


def _print_wait(status: waits.WaitStatus) -> None:
    """A wait's line every ten seconds while it lasts (terminal or CI log alike)."""
    from ..report import progress

    if status.done:
        _last_wait.pop(status.what, None)
        return
    if status.elapsed < progress.LIVE_AFTER:
        return
    last = _last_wait.get(status.what)
    if last is None or status.elapsed - last >= 10.0:
        _last_wait[status.what] = status.elapsed
        print(progress.live_line(status.what, status.elapsed, status.deadline).strip(), flush=True)


def _write_report(folder: Path) -> None:
    from ..report.html import write

    try:
        path = write(folder)
        print(f"report: {path.resolve()}")
    except Exception as exc:  # the record is there; the report can be rendered again from it
        print(f"error: report.html not written ({one_line(exc)}); run: python -m rehearsal report {folder}")


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
    run.step_listeners.append(_print_step)
    waits.observers.append(_print_wait)
    outcome: dict = {"ran": False, "verified": True}
    try:
        kube = Kube(cluster.api_client())
        istioctl_from = make_istioctl(
            settings, run, cluster, settings.istio_from, settings.istioctl_from_path
        )
        istioctl_to = make_istioctl(settings, run, cluster, settings.istio_to, settings.istioctl_to_path)
        ctx = Rehearsal(settings, run, journal, cluster, kube, istioctl_from, istioctl_to)
        if journal.pending("upgrade"):
            # The upgraded run cleaned its apps up; the downgrade is proven with traffic like any rollback,
            # with apps deployed once the source's injector is back (never onto the target's sidecar).
            outcome = perform(ctx, after_restore=deploy_apps if upgraded else None)
        try:
            outcome["cleanup"] = cleanup(ctx)
        except StepFailed as exc:
            outcome.setdefault("errors", []).append(f"cleanup: {exc}")
            outcome["verified"] = False
    except Exception as exc:  # whatever went wrong, the run ends with a verdict, a cause and a report
        outcome.setdefault("errors", []).append(one_line(exc))
        outcome["verified"] = False
    finally:
        lease.release()
        waits.observers.remove(_print_wait)
    if outcome.get("errors") and run.failure is None:
        run.failure = outcome["errors"][0]
    if upgraded:
        run.rollback = {"mode": "downgrade", "of": run_dir.name, **outcome}
        run.verdict = "downgraded" if outcome["verified"] else "downgrade-failed"
        run.save()
        _write_report(run.dir)
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
        _write_report(run_dir)
        print(f"{run_dir.name}: {run.verdict}")
    if not outcome["verified"]:
        print(f"cause: {(outcome.get('errors') or [run.failure or 'the source state was not proven'])[0]}")
    for line in outcome.get("errors", []):
        print(f"  error: {line}")
    for name, items in (outcome.get("verification") or {}).get("findings", {}).items():
        print(f"  {name}: {'; '.join(items[:3])}")
    return exitcodes.UPGRADED if outcome["verified"] else exitcodes.NOT_UPGRADED
