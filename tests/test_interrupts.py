"""Ctrl-C and SIGTERM during a rehearsal, at a point the test chooses (an API request the cluster holds): the
first interrupt rolls back, cleans up, releases the lease and writes the record; a second stops at once and
says how to roll back."""

from __future__ import annotations

import signal
import subprocess
import sys

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
        assert run.returncode != 0
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
        assert run.returncode == 130, err[-2000:]
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
