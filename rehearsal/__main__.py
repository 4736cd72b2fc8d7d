"""Command line of the harness: ``python -m rehearsal COMMAND`` (each command has its own ``--help``).

``demo [rehearsal options]``
    runs the full rehearsal on the embedded simulated cluster (the suites, with a simulated time scale that
    looks real) and prints where the report is. Any rehearsal option (``--istio-from``, ``--set``...) passes
    on.
``report RUN_DIR``
    renders ``RUN_DIR/report.html`` again from ``RUN_DIR/rehearsal.json``.
``rollback [--downgrade] RUN_DIR``
    replays the journal a killed run left in ``RUN_DIR`` against its cluster, then proves the source is back.
    A run that ended upgraded is rolled back (downgraded) only with ``--downgrade``, as a new record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

USAGE = """usage: python -m rehearsal COMMAND [ARGS]

Rehearse an Istio upgrade on a throwaway cluster, with evidence and automatic rollback.

commands:
  demo [OPTIONS]    rehearse on the embedded simulated cluster (python -m rehearsal demo --help)
  report RUN_DIR    render RUN_DIR/report.html again from RUN_DIR/rehearsal.json
  rollback RUN_DIR  replay the rollback journal a killed run left in RUN_DIR, then prove the source is back

The full rehearsal is a pytest run: pytest suites [OPTIONS] (pytest suites --help lists them under
"Istio upgrade rehearsal")."""

DEMO_USAGE = """usage: python -m rehearsal demo [OPTIONS]

Rehearse an Istio upgrade on the embedded simulated cluster: install the source version and the sample apps,
back up, precheck, generate, inspect, dry-run and apply the target, restart, validate, and roll back on
failure. Prints a line per step, then the verdict and where report.html is.

options (all optional; the same as for pytest suites):
  --istio-from VERSION      the Istio version running today (default: newest patch of the second newest minor)
  --istio-to VERSION        the Istio version to upgrade to (default: the newest release)
  --plan FILE               an IstioOperator file with your install settings
  --set KEY=VALUE           an install setting as istioctl's --set (repeatable)
  --strategy NAME           in-place (generate, dry-run, apply) or istioctl (istioctl upgrade)
  --rollback MODE           on-failure (default), always or never
  --report-dir DIR          where run folders go (default reports/)
  --sim-faults FILE         a YAML file of simulator faults, armed once the baseline is established
  --sim-time-scale SECONDS  wall seconds per simulated second (demo default 0.02; 0 = no simulated waiting)
  --k8s-version VERSION     Kubernetes version of the simulated cluster
  --step-timeout SECONDS    the deadline of any one wait (default 300)
  --traffic-requests N      requests per traffic check (default 50)
  --rehearsal-config FILE   a YAML file of defaults for these options
Any other pytest option (-x, -k, -v ...) passes on to pytest."""


def demo(argv: list[str]) -> int:
    import subprocess

    if any(a in ("-h", "--help") for a in argv):
        print(DEMO_USAGE)
        return 0
    args = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", "-q", "-rfE"]
    if not any(a.startswith("--sim-time-scale") for a in argv):
        args += ["--sim-time-scale", "0.02"]
    print(
        "Rehearsing an Istio upgrade on the embedded simulated cluster "
        "(options: python -m rehearsal demo --help)"
    )
    sys.stdout.flush()
    # The verdict, the cause and the report's path are the last lines pytest prints (the rehearsal plugin).
    return int(subprocess.run(args + argv, cwd=ROOT).returncode)


def report(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(
            "usage: python -m rehearsal report RUN_DIR\n\nrender RUN_DIR/report.html again from "
            "RUN_DIR/rehearsal.json"
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from .report.html import write

    run_dir = Path(argv[0])
    record_path = run_dir / "rehearsal.json"
    try:
        record = json.loads(record_path.read_text())
    except OSError as exc:
        print(
            f"error: cannot read {record_path}: {exc.strerror}; give a run folder (reports/<run-id>)",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"error: {record_path} is not JSON ({exc})", file=sys.stderr)
        return 2
    if not isinstance(record, dict) or "schema_version" not in record:
        print(
            f"error: {record_path} is not a run record of this harness (no schema_version)", file=sys.stderr
        )
        return 2
    try:
        path = write(run_dir, record)
    except OSError as exc:
        print(f"error: cannot write {run_dir / 'report.html'}: {exc.strerror}", file=sys.stderr)
        return 1
    print(f"report: {path.resolve()}")
    return 0


def rollback(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: python -m rehearsal rollback [--downgrade] RUN_DIR\n\nreplay the rollback journal a "
            "killed run left in RUN_DIR against its cluster, then prove the source is back; a run that ended "
            "upgraded is rolled back (downgraded) only with --downgrade, as a new record"
        )
        return 0
    downgrade = "--downgrade" in argv
    rest = [a for a in argv if a != "--downgrade"]
    if len(rest) != 1 or rest[0].startswith("-"):
        print("usage: python -m rehearsal rollback [--downgrade] RUN_DIR", file=sys.stderr)
        return 2
    from .steps.replay import replay

    return replay(Path(rest[0]), downgrade=downgrade)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return demo(rest)
    if command == "report":
        return report(rest)
    if command == "rollback":
        return rollback(rest)
    print(
        f"unknown command {command!r}; use demo, report or rollback (python -m rehearsal --help)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
