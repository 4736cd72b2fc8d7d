"""``python -m kubesim serve``: one line when ready, a private kubeconfig, clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import yaml

from fixtures.sim import kubectl_binary


def test_serve_prints_ready_writes_kubeconfig_and_stops_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "kc"
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  - type: image-pull\n    image: registry.k8s.io/pause:3.10\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kubesim",
            "serve",
            "--kubeconfig",
            str(kubeconfig),
            "--k8s-version",
            "1.31.4",
            "--nodes",
            "2",
            "--faults",
            str(faults),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith(
            "simulated cluster rehearsal (Kubernetes v1.31.4, 2 node(s)) ready at https://127.0.0.1:"
        )
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["current-context"] == "kind-rehearsal"
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        nodes = subprocess.run(
            [kubectl_binary(), "get", "nodes", "-o", "name"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        assert nodes.stdout.split() == ["node/rehearsal-control-plane", "node/rehearsal-worker"]
        version = subprocess.run(
            [kubectl_binary(), "version", "-o", "json"], capture_output=True, text=True, env=env, timeout=30
        )
        assert '"gitVersion": "v1.31.4"' in version.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_serve_rejects_bad_input_with_one_clear_line(tmp_path):
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubesim",
            "serve",
            "--kubeconfig",
            str(tmp_path / "k"),
            "--k8s-version",
            "latest",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "'latest' is not a Kubernetes version like 1.33.1" in bad.stderr
    faults = tmp_path / "f.yaml"
    faults.write_text("faults: [{type: explode}]")
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubesim",
            "serve",
            "--kubeconfig",
            str(tmp_path / "k"),
            "--faults",
            str(faults),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "unknown type 'explode'" in bad.stderr
    assert not (tmp_path / "k").exists()
