"""Cluster providers: the simulator, an existing cluster by kubeconfig, and kind (through a fake binary)."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
import yaml

from kubesim import SimCluster
from rehearsal.cluster import KIND_NODE_IMAGE, ClusterError, KindProvider, KubeconfigProvider, SimProvider


def test_sim_provider_gives_a_reachable_cluster(tmp_path):
    cluster = SimProvider(k8s_version="1.32.2").provision(tmp_path)
    try:
        assert cluster.server_version() == "1.32.2"
        assert stat.S_IMODE(cluster.kubeconfig.stat().st_mode) == 0o600
        assert cluster.stable_name == "sim:kind-rehearsal"
    finally:
        cluster.close()


def test_kubeconfig_provider_uses_an_existing_cluster_and_never_deletes_it(tmp_path):
    with SimCluster(time_scale=0, kubeconfig=tmp_path / "existing") as existing:
        cluster = KubeconfigProvider(tmp_path / "existing", "kind-rehearsal").provision(tmp_path / "work")
        assert cluster.details["version"] == "1.33.1"
        cluster.close()
        assert existing.store.get(("", "namespaces"), "", "default") is not None


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("clusters: [unclosed"), "cannot be read as YAML"),
        (lambda p: p.write_text("just a string"), "is not a kubeconfig"),
        (
            lambda p: p.write_text(yaml.safe_dump({"contexts": [{"name": "a"}], "current-context": "b"})),
            "context 'b' is not in kubeconfig",
        ),
    ],
)
def test_kubeconfig_provider_explains_bad_input(tmp_path, setup, message):
    path = tmp_path / "config"
    setup(path)
    with pytest.raises(ClusterError, match=message):
        KubeconfigProvider(path).provision(tmp_path)


def test_kubeconfig_provider_reports_an_unreachable_cluster(tmp_path):
    with SimCluster(time_scale=0, kubeconfig=tmp_path / "gone"):
        pass  # stopped: the kubeconfig now points at nothing
    with pytest.raises(ClusterError, match="cannot reach the Kubernetes API of kubeconfig:kind-rehearsal"):
        KubeconfigProvider(tmp_path / "gone", connect_timeout=1).provision(tmp_path)


FAKE_KIND = textwrap.dedent("""\
    #!{python}
    # A stand-in for kind: it "creates" a cluster by starting a simulated one in the background.
    import json, os, subprocess, sys, time
    from pathlib import Path
    state = Path(os.environ["FAKE_KIND_STATE"])
    state.mkdir(exist_ok=True)
    log = state / "calls.log"
    with log.open("a") as f:
        f.write(json.dumps(sys.argv[1:]) + "\\n")
    args = sys.argv[1:]
    if args[:1] == ["version"]:
        print("kind v0.29.0 go1.24.2 linux/amd64")
    elif args[:2] == ["get", "clusters"]:
        for p in state.glob("*.pid"):
            print(p.stem)
    elif args[:2] == ["create", "cluster"]:
        opts = dict(a.split("=", 1) for a in args[2:] if "=" in a)
        name, kubeconfig = opts["--name"], opts["--kubeconfig"]
        proc = subprocess.Popen([sys.executable, "-m", "kubesim", "serve", "--name", name,
                                 "--kubeconfig", kubeconfig], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        (state / f"{{name}}.pid").write_text(str(proc.pid))
    elif args[:2] == ["delete", "cluster"]:
        name = [a for a in args if a.startswith("--name=")][0].split("=", 1)[1] if any(
            a.startswith("--name=") for a in args) else args[args.index("--name") + 1]
        pid_file = state / f"{{name}}.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)
            pid_file.unlink()
    else:
        sys.exit(f"fake kind: unsupported {{args}}")
""")


@pytest.fixture
def fake_kind(tmp_path, monkeypatch):
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kind = bin_dir / "kind"
    kind.write_text(FAKE_KIND.format(python=sys.executable))
    kind.chmod(0o755)
    monkeypatch.setenv(
        "PATH", f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    monkeypatch.setenv("FAKE_KIND_STATE", str(tmp_path / "kind-state"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "kind-state" / "calls.log"


def test_kind_provider_creates_and_deletes_through_pytest_kind(fake_kind, tmp_path):
    import json

    provider = KindProvider(cluster_name="rehearse-me")
    cluster = provider.provision(tmp_path)
    try:
        assert cluster.context == "kind-rehearse-me"
        assert cluster.server_version() == "1.33.1"
        calls = [json.loads(line) for line in fake_kind.read_text().splitlines()]
        create = next(c for c in calls if c[:2] == ["create", "cluster"])
        assert "--name=rehearse-me" in create and f"--image={KIND_NODE_IMAGE}" in create
    finally:
        cluster.close()
    calls = [json.loads(line) for line in fake_kind.read_text().splitlines()]
    assert any(c[:2] == ["delete", "cluster"] for c in calls)


def test_kind_provider_keep_leaves_the_cluster(fake_kind, tmp_path):
    import json

    cluster = KindProvider(cluster_name="kept", keep=True).provision(tmp_path)
    cluster.close()
    calls = [json.loads(line) for line in fake_kind.read_text().splitlines()]
    assert not any(c[:2] == ["delete", "cluster"] for c in calls)
    KindProvider(cluster_name="kept").provision(tmp_path).close()  # reused, then deleted


def test_kind_provider_without_kind_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClusterError, match="kind was not found on PATH; install kind v0.29.0"):
        KindProvider().provision(tmp_path)
