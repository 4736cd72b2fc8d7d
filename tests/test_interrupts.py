"""Ctrl-C and SIGTERM during a rehearsal, at a point the test chooses (an API request the cluster holds): the
first interrupt rolls back, cleans up, releases the lease and writes the record; a second stops at once and
says how to roll back."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from rehearsal import exitcodes
from tests import holds


def _core(sim):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig_path)))


def _leases(sim) -> list[str]:
    from kubernetes import client, config

    api = client.CoordinationV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig_path)))
    return [
        str(lease.metadata.name) for lease in api.list_namespaced_lease("kube-system").items if lease.metadata
    ]


def test_sigint_mid_upgrade_rolls_back_releases_the_lease_and_writes_the_record(tmp_path):
    with holds.cluster(tmp_path) as sim:
        held = holds.HeldRequest(sim, "patch", "deployments", "istiod", nth=3)  # the apply's
        run = holds.start_rehearsal(tmp_path, sim)
        try:
            held.wait_reached()
            run.send_signal(signal.SIGINT)
        finally:
            held.release()
        out, err = run.communicate(timeout=900)
        assert run.returncode == exitcodes.INTERRUPTED, err[-2000:]
        folder = holds.run_dir(tmp_path)
        record = holds.record(folder)
        assert record["verdict"] == "rolled-back", (record.get("failure"), err[-2000:])
        assert "interrupted by SIGINT" in record["failure"]
        assert record["rollback"]["verified"]
        assert record["rollback"]["lease released"]
        assert "istio-upgrade-rehearsal" not in _leases(sim)
        assert "rehearsal-apps" not in {n.metadata.name for n in _core(sim).list_namespace().items}
        assert (folder / "report.html").exists()


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    with holds.cluster(tmp_path) as sim:
        held = holds.HeldRequest(sim, "patch", "deployments", "istiod", nth=3)
        run = holds.start_rehearsal(tmp_path, sim)
        try:
            held.wait_reached()
            run.send_signal(signal.SIGTERM)
        finally:
            held.release()
        run.communicate(timeout=900)
        record = holds.record(holds.run_dir(tmp_path))
        assert record["verdict"] == "rolled-back" and "interrupted by SIGTERM" in record["failure"]


def test_a_second_interrupt_stops_at_once_and_prints_the_rollback_command(tmp_path):
    with holds.cluster(tmp_path) as sim:
        held = holds.HeldRequest(sim, "patch", "deployments", "istiod", nth=3)
        run = holds.start_rehearsal(tmp_path, sim)
        try:
            held.wait_reached()
            # Two different signals are both delivered (two of the same may merge into one); the second is
            # handled while the first is being acted on.
            run.send_signal(signal.SIGINT)
            run.send_signal(signal.SIGTERM)
            out, err = run.communicate(timeout=900)
        finally:
            held.release()
        folder = holds.run_dir(tmp_path)
        assert run.returncode == exitcodes.STOPPED_AT_ONCE, err[-2000:]
        assert f"python -m rehearsal rollback {folder}" in err
        journal = (folder / "journal.json").read_text()
        assert '"restore_backup"' in journal and '"done": false' in journal
        replay = subprocess.run(
            [sys.executable, "-m", "rehearsal", "rollback", str(folder)],
            cwd=holds.ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "rehearsal-apps" not in {n.metadata.name for n in _core(sim).list_namespace().items}


RELAY_PROBE = """
import os, pathlib, signal, sys, types
from rehearsal.interrupts import Interrupts

run = types.SimpleNamespace(
    dir=pathlib.Path(sys.argv[1]), failure=None, settings=types.SimpleNamespace(rollback="on-failure")
)
Interrupts(run).install()  # type: ignore[arg-type]
# From now on only other threads (the relay) can take the signals, as when the kernel picks one of them.
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])
read_end, _ = os.pipe()
try:
    print("blocked", flush=True)  # the signal may come as soon as this is out, even before the read
    os.read(read_end, 1)  # nothing ever comes: only an interrupted system call ends this
except KeyboardInterrupt as exc:
    print(f"first: {exc} ({run.failure})", flush=True)
    os.read(read_end, 1)
"""


@pytest.mark.timeout(60)  # without the relay the probe never answers
def test_a_signal_taken_by_another_thread_still_interrupts_a_blocked_main_thread(tmp_path):
    probe = subprocess.Popen(
        [sys.executable, "-c", RELAY_PROBE, str(tmp_path)],
        cwd=holds.ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert probe.stdout is not None
        assert probe.stdout.readline().strip() == "blocked"
        probe.send_signal(signal.SIGINT)
        assert probe.stdout.readline().strip() == "first: interrupted by SIGINT (interrupted by SIGINT)"
        probe.send_signal(signal.SIGTERM)
        _, err = probe.communicate(timeout=60)
    finally:
        probe.kill()
    assert probe.returncode == 130, err
    assert f"python -m rehearsal rollback {tmp_path}" in err
