"""Benchmark of the rehearsal matrix run here: ``python -m rehearsal matrix examples/matrix.yaml --run -j 3``.

Runs the example matrix as a user does (one process per entry, each with its own simulated cluster, three at
a time) and prints, per entry, its verdict and wall time, then the matrix's wall time against the sum of its
runs (what running them one after another would take), from the matrix's ``matrix.json`` and its index.
Run: ``.venv/bin/python bench/matrix.py [-j N] [matrix file]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    jobs = "3"
    if argv[:1] == ["-j"]:
        jobs, argv = argv[1], argv[2:]
    matrix_file = argv[0] if argv else str(ROOT / "examples" / "matrix.yaml")
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "matrix"
        started = time.monotonic()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "rehearsal",
                "matrix",
                matrix_file,
                "--run",
                "-j",
                jobs,
                "--report-dir",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        summary_path = out / "matrix.json"
        if not summary_path.exists():
            print(result.stdout + result.stderr)
            return 1
        summary = json.loads(summary_path.read_text())
        index = json.loads((out / "index.json").read_text())
    outcomes = summary["outcomes"]
    for outcome in outcomes:
        verdict, name = outcome["verdict"] or "no verdict", outcome["entry"]["name"]
        print(f"{verdict:<14} {name:<40} {outcome['seconds']:6.1f} s")
    total = sum(o["seconds"] for o in outcomes)
    pairs = {(o["entry"]["source"], o["entry"]["target"]) for o in outcomes}
    print(
        f"matrix: {len(outcomes)} entries ({len(pairs)} pairs), {jobs} at a time: wall {wall:.1f} s "
        f"(the runs' own {summary['wall_seconds']:.1f} s) against {total:.1f} s for the runs one after "
        "another "
        f"({total / max(summary['wall_seconds'], 0.001):.2f}x); index lists {len(index['runs'])} runs; "
        f"exit status {result.returncode}"
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
