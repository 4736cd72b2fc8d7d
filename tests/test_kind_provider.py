"""The kind provider against fake ``kind`` and ``docker`` executables (no Docker here): any kind from v0.29
with its release's node image, a cluster created with ``--wait``, a leftover cluster reused only when the
harness made it, a slow node image pull, images loaded from the local Docker (best effort, through an
archive for multi-arch images), and the registry mirror."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rehearsal.cluster import KIND_NODE_IMAGE, ClusterError, KindProvider, kind_world
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
        print(f"Creating cluster '{{name}}' ...", flush=True)
        proc = subprocess.Popen([sys.executable, "-m", "kubesim", "serve", "--name", name, "--kubeconfig",
                                 kubeconfig, "--time-scale", "0"], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()
        (state / f"{{name}}.pid").write_text(str(proc.pid))
        (state / f"{{name}}.kubeconfig").write_text(Path(kubeconfig).read_text())
    elif args[:2] == ["delete", "cluster"]:
        pid_file = state / (option("--name") + ".pid")
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), 15)
            pid_file.unlink()
    elif args[:2] == ["load", "docker-image"]:
        if args[-1] in os.environ.get("FAKE_KIND_LOAD_FAILS", "").split(","):
            sys.exit("ERROR: failed to load image: command 'docker save -o /tmp/images.tar " + args[-1]
                     + "' failed with error: exit status 1 (content digest not found)")
    elif args[:2] == ["load", "image-archive"]:
        if os.environ.get("FAKE_KIND_ARCHIVE_FAILS"):
            sys.exit("ERROR: failed to load image archive")
    elif args[:2] == ["get", "nodes"]:
        print(option("--name") + "-control-plane")
    else:
        sys.exit(f"fake kind: unsupported {{args}}")
""")

FAKE_DOCKER = textwrap.dedent("""\
    #!{python}
    # A stand-in for docker: `image inspect` finds the images listed in FAKE_DOCKER_IMAGES; `save` writes an
    # archive; the registry mirror's container commands are logged and succeed.
    import json, os, sys
    from pathlib import Path
    args = sys.argv[1:]
    state = Path(os.environ["FAKE_KIND_STATE"])
    state.mkdir(exist_ok=True)
    with (state / "docker.log").open("a") as f:
        f.write(json.dumps(args) + "\\n")
    if args[:2] == ["image", "inspect"]:
        sys.exit(0 if args[2] in os.environ.get("FAKE_DOCKER_IMAGES", "").split(",") else 1)
    if args[:1] == ["save"]:
        Path(args[args.index("-o") + 1]).write_text("an image archive")
        sys.exit(0)
    if args[:1] == ["inspect"]:
        sys.exit(1)  # no mirror container yet
    if args[:1] in (["run"], ["exec"], ["network"]):
        sys.stdin.read() if "-i" in args else None
        sys.exit(0)
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
    said: list[str] = []
    cluster = KindProvider(cluster_name="rehearse-me", say=said.append).provision(tmp_path / "run")
    try:
        assert "  Creating cluster 'rehearse-me' ..." in said  # kind's own lines, passed on as they come
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
    assert "choose another name (--cluster-name)" in str(raised.value)  # an option that exists
    assert not any(c[:2] == ["delete", "cluster"] for c in calls(fake_kind))
    assert cluster.server_version() == "1.33.1"  # still there, untouched
    KindProvider(cluster_name="theirs", say=quiet)._run(
        Path(cluster.details["kind"]), "delete", "cluster", "--name", "theirs"
    )


def test_a_kind_older_than_the_oldest_accepted_is_refused_before_anything_is_created(
    fake_kind, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_KIND_VERSION", "v0.27.0")
    with pytest.raises(ClusterError, match=f"is kind v0.27.0, older than kind {kind_world.MIN_KIND_VERSION}"):
        KindProvider(say=quiet).provision(tmp_path)
    assert [c[:1] for c in calls(fake_kind)] == [["version"]]


@pytest.mark.parametrize("release", sorted(kind_world.NODE_IMAGES))
def test_each_kind_release_creates_with_its_own_default_node_image(fake_kind, tmp_path, monkeypatch, release):
    monkeypatch.setenv("FAKE_KIND_VERSION", release)
    kind = KindProvider(cluster_name="each", say=quiet)
    kind.check()
    assert kind.image() == kind_world.NODE_IMAGES[release]
    assert kind_world.parse_version(f"kind {release}-alpha+1a2b go1.25 linux/arm64") == kind.kind_version


def test_a_kind_newer_than_the_table_uses_its_own_default_and_kind_image_overrides(fake_kind, monkeypatch):
    newest = max(kind_world.NODE_IMAGES, key=kind_world.version_tuple)
    major, minor, _ = kind_world.version_tuple(newest)
    monkeypatch.setenv("FAKE_KIND_VERSION", f"v{major}.{minor + 1}.0")
    kind = KindProvider(say=quiet)
    kind.check()
    assert kind.image() is None  # kind's own default: no --image
    assert KindProvider(node_image="kindest/node:v1.30.0", say=quiet).image() == "kindest/node:v1.30.0"
    monkeypatch.setenv("FAKE_KIND_VERSION", "v0.31.1")  # a patch release: its minor's image
    kind.check()
    assert kind.image() == kind_world.NODE_IMAGES["v0.31.0"]


def test_a_failing_load_falls_back_to_an_archive_of_the_nodes_platform(fake_kind, tmp_path, monkeypatch):
    image = "docker.io/istio/pilot:1.30.1"
    monkeypatch.setenv("FAKE_DOCKER_IMAGES", image)
    monkeypatch.setenv("FAKE_KIND_LOAD_FAILS", image)  # a multi-arch image, containerd image store
    cluster = KindProvider(cluster_name="archive", preload_images=[image], say=quiet).provision(tmp_path)
    try:
        assert cluster.details["loaded images"] == [image] and "warnings" not in cluster.details
        saves = [c for c in calls(fake_kind.parent / "docker.log") if c[:1] == ["save"]]
        assert saves and saves[0][1:3] == ["--platform", kind_world.node_platform()]
        assert any(c[:2] == ["load", "image-archive"] for c in calls(fake_kind))
    finally:
        cluster.close()


def test_a_load_that_fails_both_ways_warns_and_the_cluster_stays(fake_kind, tmp_path, monkeypatch):
    image = "docker.io/istio/pilot:1.30.1"
    monkeypatch.setenv("FAKE_DOCKER_IMAGES", image)
    monkeypatch.setenv("FAKE_KIND_LOAD_FAILS", image)
    monkeypatch.setenv("FAKE_KIND_ARCHIVE_FAILS", "1")
    said: list[str] = []
    cluster = KindProvider(cluster_name="warns", preload_images=[image], say=said.append).provision(tmp_path)
    try:
        assert cluster.details["loaded images"] == []
        assert image in cluster.details["warnings"][0]
        assert any(line.startswith("warning: could not load") for line in said)
        assert cluster.server_version() == "1.33.1"  # still there
        assert not any(c[:2] == ["delete", "cluster"] for c in calls(fake_kind))
    finally:
        cluster.close()


def test_the_registry_mirror_runs_a_pull_through_cache_and_patches_containerd(fake_kind, tmp_path):
    cluster = KindProvider(cluster_name="mirrored", registry_mirror=True, say=quiet).provision(tmp_path)
    try:
        docker = calls(fake_kind.parent / "docker.log")
        run = next(c for c in docker if c[:1] == ["run"])
        assert kind_world.MIRROR_NAME in run and "registry:2" in run
        assert f"REGISTRY_PROXY_REMOTEURL={kind_world.MIRROR_REMOTE}" in run
        assert ["network", "connect", "kind", kind_world.MIRROR_NAME] in docker
        assert any(c[:3] == ["exec", "-i", "mirrored-control-plane"] for c in docker)
        create = next(c for c in calls(fake_kind) if c[:2] == ["create", "cluster"])
        config = next(a for a in create if a.startswith("--config=")).split("=", 1)[1]
        assert 'config_path = "/etc/containerd/certs.d"' in Path(config).read_text()
    finally:
        cluster.close()


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
    with pytest.raises(
        ClusterError, match=f"kind was not found on PATH; install kind {kind_world.MIN_KIND_VERSION} or newer"
    ):
        KindProvider(say=quiet).provision(tmp_path)


def test_a_fake_kind_v0_31_from_kind_bin_ends_upgraded_warns_on_a_failed_load_and_keeps_the_mesh(
    fake_kind, tmp_path, monkeypatch, suites_run
):
    from kubernetes import client, config

    from istiofacts import catalog
    from kubesim.istio.istioctl import write_executable

    # The kind on PATH is too old: only --kind-bin's (v0.31.0) can make this run pass.
    monkeypatch.setenv("FAKE_KIND_VERSION", "v0.27.0")
    own = tmp_path / "own-kind"
    own.mkdir()
    kind_bin = own / "kind-v0.31.0"
    kind_bin.write_text(f'#!/bin/sh\nFAKE_KIND_VERSION=v0.31.0 exec {tmp_path / "bin" / "kind"} "$@"\n')
    kind_bin.chmod(0o755)
    from rehearsal.settings import resolve
    from rehearsal.steps.mesh import kind_images

    source, target = catalog.default_pair()
    # The source's pilot as the run preloads it (the right hub for that version).
    pilot = next(i for i in kind_images(resolve({"cluster": "kind"})) if i.endswith(f"/pilot:{source}"))
    monkeypatch.setenv("FAKE_DOCKER_IMAGES", pilot)  # Docker has it, but loading it fails both ways
    monkeypatch.setenv("FAKE_KIND_LOAD_FAILS", pilot)
    monkeypatch.setenv("FAKE_KIND_ARCHIVE_FAILS", "1")
    ctl_from, ctl_to = (write_executable(v, tmp_path / "ctl") for v in (source, target))
    result = suites_run(
        tmp_path / "work",
        "--cluster",
        "kind",
        "--kind-bin",
        str(kind_bin),
        "--cluster-name",
        "fake-kind",
        "--keep-cluster",
        "--istioctl-from",
        str(ctl_from),
        "--istioctl-to",
        str(ctl_to),
        traffic_requests=5,
    )
    data = result.data
    try:
        assert data["verdict"] == "upgraded", data.get("failure")
        provision = next(s for s in data["steps"] if s["name"] == "provision")
        warnings = [e["data"] for e in provision["evidence"] if e.get("title") == "warning"]
        assert warnings and pilot in warnings[0]
        create = next(c for c in calls(fake_kind) if c[:2] == ["create", "cluster"])
        assert f"--image={kind_world.NODE_IMAGES['v0.31.0']}" in create
        assert data["rollback"]["cleanup"]["ran"] is False  # kept: no uninstall
        kubeconfig = tmp_path / "kind-state" / "fake-kind.kubeconfig"
        apps = client.AppsV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
        istiod = apps.read_namespaced_deployment("istiod", "istio-system")
        assert istiod.spec.template.spec.containers[0].image.endswith(f":{target}")
        # Sized for a laptop, as the plan set no requests (Istio's demo profile).
        assert istiod.spec.template.spec.containers[0].resources.requests == {"cpu": "10m", "memory": "100Mi"}
    finally:
        KindProvider(cluster_name="fake-kind", say=quiet)._run(
            kind_bin, "delete", "cluster", "--name", "fake-kind"
        )


def test_help_shows_each_kind_option_once(tmp_path):
    import subprocess

    from tests.runs import suites_argv

    result = subprocess.run(suites_argv("--help"), cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for option in (
        "--kind-bin",
        "--kind-image",
        "--cluster-name",
        "--keep-cluster",
        "--kind-registry-mirror",
    ):
        assert result.stdout.count(f"  {option}") == 1, option


def test_kind_bin_is_the_kind_run_and_pytest_kinds_unused_options_are_refused(tmp_path, suites_run):
    from rehearsal import exitcodes

    missing = tmp_path / "no-such-kind"
    # With pytest-kind installed (its options, read by the harness) and without it (the harness's own).
    for n, plugins in enumerate(([], ["-p", "no:pytest-kind"])):
        data = suites_run(tmp_path / f"a{n}", *plugins, "--cluster", "kind", "--kind-bin", str(missing)).data
        assert f"kind was not found at {missing}" in data["failure"]
    refused = suites_run(tmp_path / "b", "--cluster", "kind", "--kubeconfig", str(tmp_path / "kubeconfig"))
    assert refused.returncode == exitcodes.BAD_OPTION and "--kubeconfig" in refused.stderr
    assert not (tmp_path / "b" / "reports").exists()


def test_on_kind_istiod_and_the_gateway_are_sized_for_a_laptop_unless_the_plan_sizes_them():
    from rehearsal.settings import KIND_SIZING, resolve

    sized = resolve({"cluster": "kind"})
    assert sized.sizing == KIND_SIZING["pilot"] + KIND_SIZING["ingress gateway"]
    assert set(sized.sizing) <= set(sized.install_sets(sized.istio_to))
    assert any("demo profile" in note for note in sized.version_notes)
    own = resolve({"cluster": "kind", "sets": ["components.pilot.k8s.resources.requests.memory=3Gi"]})
    assert own.sizing == KIND_SIZING["ingress gateway"]
    spec = own.install_spec(own.istio_to)
    assert spec["components"]["pilot"]["k8s"]["resources"]["requests"]["memory"] == "3Gi"
    assert resolve({"cluster": "sim"}).sizing == ()
