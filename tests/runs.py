"""Rehearsal runs shared by the report tests (one run per scenario per test session, as a user runs it).

Each scenario runs the suites once in a subprocess on the simulated cluster, at default settings except what
the scenario is about; tests read the run folder it leaves (record, report, JUnit, artifacts).
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from istiofacts import catalog

ROOT = Path(__file__).resolve().parent.parent
_WORK = Path(tempfile.mkdtemp(prefix="rehearsal-runs-"))
atexit.register(shutil.rmtree, _WORK, ignore_errors=True)


@dataclass(frozen=True)
class Rehearsed:
    returncode: int
    stdout: str
    stderr: str
    run_dir: Path
    work: Path

    @property
    def record(self) -> dict:
        return json.loads((self.run_dir / "rehearsal.json").read_text())


def rehearse(work: Path, *args: str, timeout: float = 600) -> Rehearsed:
    reports = work / "reports"
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
            "--traffic-requests",
            "10",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    latest = reports / "latest"
    return Rehearsed(result.returncode, result.stdout, result.stderr, latest.resolve(), work)


def two_minors_apart() -> tuple[str, str]:
    """A source and a target two minors apart (an in-place upgrade the precheck rejects), from the catalog."""
    oldest, _, newest = catalog.newest_minors(3)
    return oldest.patches[-1], newest.patches[-1]


@cache
def scenario(name: str) -> Rehearsed:
    work = _WORK / name
    work.mkdir(parents=True, exist_ok=True)
    if name == "upgraded":
        return rehearse(work)
    if name == "rolled-back":
        # The target's pilot image cannot be pulled: the upgrade fails in the cluster's words and rolls back.
        _, target = catalog.default_pair()
        faults = work / "faults.yaml"
        image = f"{catalog.default_hub(target)}/pilot:{target}"
        faults.write_text(f"faults:\n  - type: image-pull\n    image: {image}\n")
        # Every setting at its default, the simulator's time scale (0) included.
        return rehearse(work, "--sim-faults", str(faults))
    if name == "precheck-failed":
        source, target = two_minors_apart()
        return rehearse(work, "--istio-from", source, "--istio-to", target)
    raise ValueError(name)
