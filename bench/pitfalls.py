"""Benchmark of the known-pitfall corpus: ``python -m rehearsal pitfalls -j N`` as a user runs it (every
scenario of ``scenarios/`` in its own process, each with its own simulated cluster, N at a time), then prints
each scenario's outcome and the corpus's wall time against the 5-minute budget on this machine.
Run: ``.venv/bin/python bench/pitfalls.py [-j N]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 300.0  # seconds: the corpus must run in under 5 minutes on a 2-core machine


def main(argv: list[str]) -> int:
    jobs = argv[1] if argv[:1] == ["-j"] else "2"
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "pitfalls"
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "rehearsal", "pitfalls", "-j", jobs, "--report-dir", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        summary_path = out / "pitfalls.json"
        if not summary_path.exists():
            print(result.stdout + result.stderr)
            return 1
        summary = json.loads(summary_path.read_text())
    for row in summary["scenarios"]:
        caught = row["caught"] + (" + during" if "during" in (row.get("phases") or []) else "")
        print(f"{caught:<22} {row['name']:<24} {row['pitfall']:<24} {row.get('verdict') or row['check']}")
    counts = ", ".join(f"{v} {k}" for k, v in summary["counts"].items() if v)
    verdict = "within" if wall < BUDGET else "OVER"
    print(
        f"corpus: {len(summary['scenarios'])} scenarios ({counts}), {jobs} at a time: wall {wall:.1f} s, "
        f"{verdict} the {BUDGET:.0f} s budget"
    )
    return 0 if wall < BUDGET and not summary["counts"]["missed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
