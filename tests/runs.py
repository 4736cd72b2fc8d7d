"""Rehearsal runs for the tests: the suites as a user runs them, in two tiers.

- End to end (:func:`rehearse`, :func:`scenario`): ``python -m pytest suites`` in a subprocess on the
  simulated cluster. Three scenarios (upgraded, rolled back, stopped at the precheck) run once per test
  session at default settings except what the scenario is about; tests read the run folder each leaves
  (record, report, JUnit, artifacts). With pytest-xdist the workers share them: the first worker to need a
  scenario runs it under a file lock in the session's base temporary directory (which pytest removes in
  time), the others read what it left. Tests that signal or kill a run start their own (tests/holds.py).
- In process (:func:`in_process`, the ``suites_run`` fixture): the same command line run by pytester inside
  the test's process, for the many variations (faults, options, existing clusters) that need a run of their
  own but not a process of their own.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from istiofacts import catalog

ROOT = Path(__file__).resolve().parent.parent
_shared: list[Path] = []


def share_runs_in(base_temp: Path) -> None:
    """Called once per test process (tests/conftest.py) with pytest's base temporary directory."""
    # Under xdist each worker's base temp is <session base>/popen-gwN; the session base is common to all.
    _shared[:] = [base_temp.parent if os.environ.get("PYTEST_XDIST_WORKER") else base_temp]


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

    @property
    def data(self) -> dict:
        """The record, or {} when the run wrote none (a usage error)."""
        path = self.run_dir / "rehearsal.json"
        return json.loads(path.read_text()) if path.exists() else {}


SUITES_ARGS = (str(ROOT / "suites"), "-q", "-p", "no:cacheprovider")


def suites_argv(*args: str) -> list[str]:
    """The command line a user runs: the rehearsal suites under pytest, with ``args``."""
    return [sys.executable, "-m", "pytest", *SUITES_ARGS, *args]


def in_process(pytester: pytest.Pytester, work: Path, *args: str, traffic_requests: int = 10) -> Rehearsed:
    """The suites with ``args``, run by pytester in this process, reports under ``work``."""
    reports = work / "reports"
    result = pytester.runpytest_inprocess(
        *SUITES_ARGS,
        "--report-dir",
        str(reports),
        "--traffic-requests",
        str(traffic_requests),
        # The test's own timeout (pytest-timeout's alarm) covers the whole run; the run's must not reset it.
        "-o",
        "timeout=0",
        *args,
    )
    return Rehearsed(
        int(result.ret), result.stdout.str(), result.stderr.str(), (reports / "latest").resolve(), work
    )


def existing_cluster_args(work: Path, kubeconfig: Path) -> list[str]:
    """Options that reach a cluster by its kubeconfig, as any existing cluster is reached, with the istioctl
    emulator of each default version given by path."""
    from kubesim.istio.istioctl import write_executable

    source, target = catalog.default_pair()
    ctl_from, ctl_to = (write_executable(v, work / "bin") for v in (source, target))
    return [
        "--cluster",
        "kubeconfig",
        "--rehearsal-kubeconfig",
        str(kubeconfig),
        "--istioctl-from",
        str(ctl_from),
        "--istioctl-to",
        str(ctl_to),
    ]


def rehearse(work: Path, *args: str, timeout: float = 600, traffic_requests: int = 10) -> Rehearsed:
    reports = work / "reports"
    result = subprocess.run(
        suites_argv("--report-dir", str(reports), "--traffic-requests", str(traffic_requests), *args),
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
    if not _shared:
        raise RuntimeError("tests/conftest.py did not call share_runs_in (run the tests with pytest tests)")
    work = _shared[0] / "rehearsal-runs" / name
    work.mkdir(parents=True, exist_ok=True)
    with open(work / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be running this scenario now
        done = work / "result.json"
        if done.exists():
            kept = json.loads(done.read_text())
            return Rehearsed(kept["returncode"], kept["stdout"], kept["stderr"], Path(kept["run_dir"]), work)
        result = _run_scenario(name, work)
        done.write_text(
            json.dumps(
                {
                    "returncode": result.returncode,
                    "stdout": result.stdout,
                    "stderr": result.stderr,
                    "run_dir": str(result.run_dir),
                }
            )
        )
        return result


def _run_scenario(name: str, work: Path) -> Rehearsed:
    if name == "upgraded":
        return rehearse(work)
    if name == "rolled-back":
        # The target's pilot image cannot be pulled once the pull check has pulled it (the registry starts
        # failing mid-run): the upgrade fails in the cluster's words and rolls back.
        _, target = catalog.default_pair()
        faults = work / "faults.yaml"
        image = f"{catalog.default_hub(target)}/pilot:{target}"
        faults.write_text(f"faults:\n  - type: image-pull\n    image: {image}\n    skip: 1\n")
        # Every setting at its default, the simulator's time scale (0) included.
        return rehearse(work, "--sim-faults", str(faults))
    if name == "precheck-failed":
        # A cluster older than the target supports: the source installs (istioctl only warns), the precheck
        # refuses the upgrade (a skip of minors is refused earlier, with the options: rehearsal/early.py).
        source, target = catalog.default_pair()
        major, minor = catalog.minor_of(target).precheck_min_k8s.split(".")
        old_k8s = f"{major}.{int(minor) - 1}.0"
        # As CI runs it: with a JUnit file of the user's own (the run folder keeps its junit.xml too).
        return rehearse(
            work,
            "--istio-from",
            source,
            "--istio-to",
            target,
            "--k8s-version",
            old_k8s,
            "--junitxml",
            str(work / "ci.xml"),
        )
    raise ValueError(name)
