"""Deterministic points in a running rehearsal, for tests that interrupt or kill it: a simulated cluster in
this process whose API server holds one chosen request until the test lets it go.

No sleeping or polling against the clock: the test waits (bounded, generously) for the event "the request
arrived", does what it wants to the run (a signal, a kill), then releases the request, which then fails with
504 so that a change the run no longer waits for never lands behind its back.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubesim.istio
from istiofacts import catalog
from kubesim import SimCluster
from kubesim.machinery import errors
from tests import runs

ROOT = Path(__file__).resolve().parent.parent
SOURCE, TARGET = catalog.default_pair()
# Long enough for any machine, however loaded; reaching it is the only thing waited for.
GENEROUS = 900.0


class HeldRequest:
    """Holds the ``nth`` request matching (verb, plural, name) in the API server until :meth:`release`."""

    def __init__(self, cluster: SimCluster, verb: str, plural: str, name: str, nth: int) -> None:
        self.cluster, self.verb, self.plural, self.name, self.nth = cluster, verb, plural, name, nth
        self.seen = 0
        self.reached = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._original = cluster.faults.api_fault
        cluster.faults.api_fault = self._fault  # type: ignore[method-assign]

    def _fault(self, verb: str, rt: Any, namespace: str, name: str, user_agent: str = "") -> Any:
        if verb == self.verb and rt.plural == self.plural and name == self.name:
            with self._lock:
                self.seen += 1
                mine = self.seen == self.nth
            if mine:
                self.reached.set()
                self.released.wait(GENEROUS)
                return errors.timeout()
        return self._original(verb, rt, namespace, name, user_agent)

    def wait_reached(self) -> None:
        assert self.reached.wait(GENEROUS), f"the run never sent {self.verb} {self.plural}/{self.name}"

    def release(self) -> None:
        self.released.set()


@contextmanager
def cluster(tmp_path: Path) -> Iterator[SimCluster]:
    with SimCluster(
        "rehearsal-held",
        time_scale=0,
        kubeconfig=tmp_path / "cluster.kubeconfig",
        addons=[kubesim.istio.addon],
    ) as sim:
        yield sim


def start_rehearsal(tmp_path: Path, sim: SimCluster, *args: str) -> subprocess.Popen[str]:
    """The suites against ``sim`` by kubeconfig (as a user reaches a cluster), the emulator as istioctl."""
    assert sim.kubeconfig_path is not None  # cluster() writes one
    return subprocess.Popen(
        runs.suites_argv(
            *runs.existing_cluster_args(tmp_path, sim.kubeconfig_path),
            "--istio-from",
            SOURCE,
            "--istio-to",
            TARGET,
            "--report-dir",
            str(tmp_path / "reports"),
            "--traffic-requests",
            "5",
            *args,
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_dir(tmp_path: Path) -> Path:
    found = sorted((tmp_path / "reports").glob("run-*/journal.json"))
    assert len(found) == 1, found
    return found[0].parent


def record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "rehearsal.json").read_text())
