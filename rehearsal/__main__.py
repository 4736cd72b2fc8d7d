"""Command line of the harness.

``python -m rehearsal demo [pytest options]``
    runs the full rehearsal on the embedded simulated cluster (the suites, with a simulated time scale that
    looks real) and prints where the report is. Any rehearsal option (``--istio-from``, ``--set``...) passes
    on.
``python -m rehearsal rollback [--downgrade] RUN_DIR``
    replays the journal a killed run left in ``RUN_DIR`` against its cluster, then proves the source is back.
    A run that ended upgraded is rolled back (downgraded) only with ``--downgrade``, as a new record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo(argv: list[str]) -> int:
    import subprocess

    args = [sys.executable, "-m", "pytest", str(ROOT / "suites"), "-p", "no:cacheprovider", "-q", "-rA"]
    if not any(a.startswith("--sim-time-scale") for a in argv):
        args += ["--sim-time-scale", "0.02"]
    print(
        "Rehearsing an Istio upgrade on the embedded simulated cluster (python -m rehearsal demo --help for "
        "options)...",
        flush=True,
    )
    code = subprocess.run(args + argv, cwd=ROOT).returncode
    latest = ROOT / "reports" / "latest"
    record = latest / "rehearsal.json"
    if record.exists():
        data = json.loads(record.read_text())
        print(
            f"\nverdict: {data['verdict']} (Istio {data['from']} -> {data['to']}, {data['cluster']}, "
            f"{data['strategy']})"
        )
        print(f"report:  {(latest / 'report.html').resolve()}")
        print(f"record:  {record.resolve()}")
    return int(code)


def rollback(argv: list[str]) -> int:
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
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return demo(rest)
    if command == "rollback":
        return rollback(rest)
    print(f"unknown command {command!r}; use demo or rollback", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
