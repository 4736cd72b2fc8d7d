"""The simulated API server answers each conformance scenario as a real kube-apiserver v1.36.2 did.

The real answers are recordings (``tests/data/conformance/recordings.json``, made by
``python -m tests.conformance.record`` against the reference control plane); each scenario is replayed on a
simulated cluster and must agree on status code, reason, message, warnings and the normalised object (or the
watch events, or kubectl's exit code and output). The few it does not answer alike yet are listed with what
the simulator lacks in ``tests/data/conformance/differs.json`` (strict expected failures). With
``KUBESIM_REFERENCE`` set (a kubeconfig, or the directory of ``control-plane``), the same scenarios also run
live against the reference, so a recording that went stale shows up as a failure there.
"""

from __future__ import annotations

import json
import time

import pytest

from kubesim.clock import SimClock
from kubesim.cluster import SimCluster
from tests.conformance.record import RECORDINGS, namespace_for, reference_kubeconfig
from tests.conformance.runner import Cluster, run
from tests.conformance.scenarios import all_scenarios

SCENARIOS = all_scenarios()
RECORDED = json.loads(RECORDINGS.read_text())["scenarios"]
# Recorded answers the simulated server does not give yet, each with what it lacks: expected to fail,
# strictly, so one that starts agreeing must leave the list. The live comparison runs them all.
DIFFERS: dict[str, str] = json.loads((RECORDINGS.parent / "differs.json").read_text())


@pytest.fixture(scope="module")
def simulated():
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        yield Cluster(cluster.kubeconfig(), patience=3)


def test_recordings_cover_every_scenario_and_enough_of_them():
    assert {s.name for s in SCENARIOS} == set(RECORDED), "re-record: python -m tests.conformance.record"
    assert len(SCENARIOS) >= 80


def _known(scenario):
    if scenario.name not in DIFFERS:
        return scenario
    return pytest.param(
        scenario, marks=pytest.mark.xfail(reason="the simulator differs (issue 15)", strict=True)
    )


def test_known_differences_are_scenarios():
    assert set(DIFFERS) <= {s.name for s in SCENARIOS}
    assert len(DIFFERS) <= 5, "the simulator must not drift from the recordings: fix it, do not list it"


@pytest.mark.parametrize("scenario", [_known(s) for s in SCENARIOS], ids=[s.name for s in SCENARIOS])
def test_simulated_server_answers_as_recorded(simulated, scenario):
    index = SCENARIOS.index(scenario)
    assert run(simulated, scenario, namespace_for("sim", index)) == RECORDED[scenario.name]


@pytest.fixture(scope="module")
def reference():
    kubeconfig = reference_kubeconfig()
    if not kubeconfig:
        pytest.skip("no reference API server: set KUBESIM_REFERENCE to a kubeconfig or to ../shared/k8s")
    return Cluster(kubeconfig)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_reference_still_answers_as_recorded(reference, scenario, capsys):
    run_id = f"live{int(time.time()) % 100000}"

    def say(line: str) -> None:  # a long wait (a fresh reference's second compaction) shows as it goes
        with capsys.disabled():
            print(f"\nconformance: {line}", flush=True)

    answer = run(reference, scenario, namespace_for(run_id, SCENARIOS.index(scenario)), say)
    assert answer == RECORDED[scenario.name]
