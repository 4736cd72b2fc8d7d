"""Benchmark of a full default rehearsal on the simulated cluster at time scale 0 (no simulated waiting).

Runs the suites as a user does (pytest in a subprocess) and prints the wall time of the whole run and the
harness's own time per step, from the run's rehearsal.json. Goal: a full default rehearsal under 20 s.
Run: ``make bench`` (or ``.venv/bin/python bench/rehearsal.py [extra pytest options]``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _instant(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def main() -> int:
    with tempfile.TemporaryDirectory() as work:
        reports = Path(work) / "reports"
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(ROOT / "suites"),
                "-q",
                "-p",
                "no:cacheprovider",
                "--report-dir",
                str(reports),
                "--sim-time-scale",
                "0",
                *sys.argv[1:],
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        record = json.loads((reports / "latest" / "rehearsal.json").read_text())
    print(
        f"rehearsal {record['from']} -> {record['to']} ({record['strategy']}): verdict {record['verdict']}, "
        f"pytest exit {result.returncode}"
    )
    total = 0.0
    for step in record["steps"]:
        # The record's times are ISO 8601 (rehearsal/record/schema.json).
        seconds = (_instant(step["ended"]) - _instant(step["started"])).total_seconds()
        total += seconds
        print(f"  {step['name']:28s} {seconds:6.2f} s  {step['outcome']}")
    print(f"steps: {total:.2f} s; validations, reports and pytest: {wall - total:.2f} s")
    print(f"whole rehearsal, wall time: {wall:.2f} s   (goal < 20 s)")
    return 0 if record["verdict"] == "upgraded" else 1


if __name__ == "__main__":
    sys.exit(main())
