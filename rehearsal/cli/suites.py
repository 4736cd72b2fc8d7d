"""``python -m rehearsal run`` and ``demo``: the rehearsal suites under pytest, as ``pytest suites``.

The process *becomes* that pytest run (``os.execv``): its exit status (:mod:`rehearsal.exitcodes`), its
handling of Ctrl-C and SIGTERM (:mod:`rehearsal.interrupts`) and its output are the rehearsal's own, with no
parent process in between that could take the signal first. Options are pytest's and the rehearsal plugin's
(``fixtures/plugin.py``), which checks them, names a misspelled one with the closest known option, and names
the option whose value is wrong.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SUITES = ROOT / "suites"

RUN_USAGE = """usage: python -m rehearsal run [OPTIONS]

Rehearse an Istio upgrade: the rehearsal suites under pytest (the same as pytest suites [OPTIONS]), with every
option of pytest suites --help ("Istio upgrade rehearsal": --cluster {sim,kind,kubeconfig}, --istio-from,
--istio-to, --plan, --set, --strategy, --rollback, --report-dir, ...) and pytest's own (-x, -q, --junitxml).

exit status: 0 upgraded, 1 not upgraded (failed or rolled back), 2 interrupted once, 4 bad option,
130 interrupted twice (stopped at once)."""

DEMO_USAGE = """usage: python -m rehearsal demo [OPTIONS]

Rehearse an Istio upgrade on the embedded simulated cluster: install the source version and the sample apps,
back up, precheck, generate, inspect, dry-run and apply the target, restart, validate, and roll back on
failure. Prints a line per step, then the verdict and where report.html is.

options (all optional; the same as for pytest suites):
  --istio-from VERSION      the Istio version running today (default: newest patch of the second newest minor)
  --istio-to VERSION        the Istio version to upgrade to (default: the newest release)
  --plan FILE               an IstioOperator file with your install settings
  --set KEY=VALUE           an install setting as istioctl's --set (repeatable)
  --strategy NAME           in-place (generate, dry-run, apply), istioctl (istioctl upgrade) or canary
  --rollback MODE           on-failure (default), always or never
  --report-dir DIR          where run folders go (default reports/)
  --sim-faults FILE         a YAML file of simulator faults, armed once the baseline is established
  --sim-time-scale SECONDS  wall seconds per simulated second (demo default 0.02; 0 = no simulated waiting)
  --k8s-version VERSION     Kubernetes version of the simulated cluster
  --step-timeout SECONDS    the deadline of any one wait (default 300)
  --traffic-requests N      requests per traffic check (default 50)
  --rehearsal-config FILE   a YAML file of defaults for these options
Any other pytest option (-x, -k, -v ...) passes on to pytest."""


def command(argv: list[str]) -> list[str]:
    """The pytest command line of a rehearsal with the user's ``argv``."""
    return [sys.executable, "-m", "pytest", str(SUITES), "-p", "no:cacheprovider", *argv]


def _become(args: list[str]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(args[0], args)
    return 0  # not reached


def run(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(RUN_USAGE)
        return 0
    return _become(command(argv))


def demo(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(DEMO_USAGE)
        return 0
    args = ["-q", "-rfE"]
    if not any(a.startswith("--sim-time-scale") for a in argv):
        args += ["--sim-time-scale", "0.02"]
    print(
        "Rehearsing an Istio upgrade on the embedded simulated cluster "
        "(options: python -m rehearsal demo --help)"
    )
    # The verdict, the cause and the report's path are the last lines pytest prints (the rehearsal plugin).
    return _become(command(args + argv))
