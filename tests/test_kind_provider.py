"""The kind provider against fake ``kind`` and ``docker`` executables (no Docker here): the pinned version, a
cluster created with ``--wait``, a leftover cluster reused only when the harness made it, a slow node image
pull, and images loaded from the local Docker."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rehearsal.cluster import KIND_NODE_IMAGE, KIND_VERSION, ClusterError, KindProvider
from rehearsal.cluster import base as base_module
from rehearsal.cluster import kind as kind_module

FAKE_KIND = textwrap.dedent("""\
    #!{python}
    # A stand-in for kind: it "creates" a cluster by starting a simulated one in the background.
    import json, os, subprocess, sys
    from pathlib import Path
    state = Path(os.environ["FAKE_KIND_STATE"])
    state.mkdir(exist_ok=True)
    with (state / "calls.log").open("a") as f:
        f.write(json.dumps(sys.argv[1:]) + "\\n")
    args = sys.argv[1:]
    def option(name):
        for n, a in enumerate(args):
            if a.startswith(name + "="):
                return a.split("=", 1)[1]
            if a == name:
                return args[n + 1]
    if args[:1] == ["version"]:
        print(f"kind {{os.environ.get('FAKE_KIND_VERSION', 'v0.29.0')}} go1.24.2 linux/amd64")
    elif args[:2] == ["get", "clusters"]:
        for p in sorted(state.glob("*.pid")):
            print(p.stem)
    elif args[:2] == ["get", "kubeconfig"]:
        print((state / (option("--name") + ".kubeconfig")).read_text(), end="")
    elif args[:2] == ["create", "cluster"]:
        name, kubeconfig = option("--name"), option("--kubeconfig")
        proc = subprocess.Popen([sys.executable, "-m", "kubesim", "serve", "--name", name,
                                 "--kubeconfig", kubeconfig], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        (state / f"{{name}}.pid").write_text(str(proc.pid))
        (state / f"{{name}}.kubeconfig").write_text(Path(kubeconfig).read_text())
    elif args[:2] == ["delete", "cluster"]:
        pid_file = state / (option("--name") + ".pid")
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)
            pid_file.unlink()
    elif args[:2] == ["load", "docker-image"]:
        pass
    else:
        sys.exit(f"fake kind: unsupported {{args}}")
""")

FAKE_DOCKER = textwrap.dedent("""\
    #!{python}
    # A stand-in for docker: `image inspect` finds the images listed in FAKE_DOCKER_IMAGES.
    import os, sys
    args = sys.argv[1:]
    if args[:2] == ["image", "inspect"]:
        sys.exit(0 if args[2] in os.environ.get("FAKE_DOCKER_IMAGES", "").split(",") else 1)
    sys.exit(f"fake docker: unsupported {{args}}")
""")


@pytest.fixture
def fake_kind(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("kind", FAKE_KIND), ("docker", FAKE_DOCKER)):
        path = bin_dir / name
        path.write_text(text.format(python=sys.executable))
        path.chmod(0o755)
    monkeypatch.setenv(
        "PATH", f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )
    monkeypatch.setenv("FAKE_KIND_STATE", str(tmp_path / "kind-state"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "kind-state" / "calls.log"


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def quiet(text: str) -> None:
    pass


def test_creates_with_wait_and_the_pinned_image_then_deletes(fake_kind, tmp_path):
    cluster = KindProvider(cluster_name="rehearse-me", say=quiet).provision(tmp_path / "run")
    try:
        assert cluster.context == "kind-rehearse-me" and cluster.server_version() == "1.33.1"
        create = next(c for c in calls(fake_kind) if c[:2] == ["create", "cluster"])
        assert "--name=rehearse-me" in create and f"--image={KIND_NODE_IMAGE}" in create
        assert any(a.startswith("--wait=") for a in create)
    finally:
        cluster.close()
    assert any(c[:2] == ["delete", "cluster"] for c in calls(fake_kind))


def test_a_leftover_cluster_the_rehearsal_created_is_reused(fake_kind, tmp_path):
    KindProvider(cluster_name="kept", keep=True, say=quiet).provision(tmp_path / "first").close()
    assert not any(c[:2] == ["delete", "cluster"] for c in calls(fake_kind))
    # A new run, with a new folder: the kubeconfig comes from kind, not from the old run.
    cluster = KindProvider(cluster_name="kept", say=quiet).provision(tmp_path / "second")
    try:
        assert cluster.details["reused"] and cluster.server_version() == "1.33.1"
        assert sum(c[:2] == ["create", "cluster"] for c in calls(fake_kind)) == 1
    finally:
        cluster.close()


def test_a_leftover_cluster_someone_else_made_is_not_touched(fake_kind, tmp_path):
    from kubernetes import client

    cluster = KindProvider(cluster_name="theirs", keep=True, say=quiet).provision(tmp_path / "first")
    # Make it someone else's: without the harness's mark.
    client.CoreV1Api(cluster.api_client()).delete_namespaced_config_map(
        "istio-upgrade-rehearsal", "kube-system"
    )
    with pytest.raises(ClusterError) as raised:
        KindProvider(cluster_name="theirs", say=quiet).provision(tmp_path / "second")
    assert "kind delete cluster --name theirs" in str(raised.value)
    assert not any(c[:2] == ["delete", "cluster"] for c in calls(fake_kind))
    assert cluster.server_version() == "1.33.1"  # still there, untouched
    KindProvider(cluster_name="theirs", say=quiet)._run(
        Path(cluster.details["kind"]), "delete", "cluster", "--name", "theirs"
    )


def test_another_kind_version_is_refused_before_anything_is_created(fake_kind, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KIND_VERSION", "v0.27.0")
    with pytest.raises(
        ClusterError, match=f"is kind v0.27.0, but the rehearsal is pinned to kind {KIND_VERSION}"
    ):
        KindProvider(say=quiet).provision(tmp_path)
    assert [c[:1] for c in calls(fake_kind)] == [["version"]]


class PullClock:
    """The provider's clock (``time`` in its modules): wall time plus the minutes a node image pull takes,
    added when ``kind create cluster`` returns, so the test needs no sleep and no machine is too slow."""

    def __init__(self) -> None:
        self.pulled = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.pulled

    sleep = staticmethod(time.sleep)  # the provider's own retry back-off, passed through


def test_a_slow_node_image_pull_is_not_counted_against_node_readiness(fake_kind, tmp_path, monkeypatch):
    # The pull takes far longer than the whole node-Ready budget: that budget starts once kind returns.
    clock, pull = PullClock(), 600.0
    monkeypatch.setattr(kind_module, "time", clock)
    monkeypatch.setattr(base_module, "time", clock)
    run = KindProvider._run

    def slow_create(self: KindProvider, kind: Path, *args: str, **kwargs: object) -> str:
        out = run(self, kind, *args, **kwargs)  # type: ignore[arg-type]
        if args[:2] == ("create", "cluster"):
            clock.pulled += pull
        return out

    monkeypatch.setattr(KindProvider, "_run", slow_create)
    cluster = KindProvider(cluster_name="slow", ready_timeout=60, say=quiet).provision(tmp_path)
    try:
        assert cluster.server_version() == "1.33.1"
        assert cluster.details["create_seconds"] >= pull  # the pull happened, on the provider's clock
    finally:
        cluster.close()


def test_images_docker_has_are_loaded_into_the_nodes(fake_kind, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_IMAGES", "docker.io/istio/pilot:1.30.1")
    wanted = ["docker.io/istio/pilot:1.30.1", "docker.io/istio/proxyv2:1.30.1"]
    cluster = KindProvider(cluster_name="loads", preload_images=wanted, say=quiet).provision(tmp_path)
    try:
        loads = [c for c in calls(fake_kind) if c[:2] == ["load", "docker-image"]]
        assert loads == [["load", "docker-image", "--name", "loads", "docker.io/istio/pilot:1.30.1"]]
        assert cluster.details["loaded images"] == ["docker.io/istio/pilot:1.30.1"]
    finally:
        cluster.close()


def test_without_kind_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClusterError, match=f"kind was not found on PATH; install kind {KIND_VERSION}"):
        KindProvider(say=quiet).provision(tmp_path)
