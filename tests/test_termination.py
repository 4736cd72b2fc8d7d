"""Graceful pod shutdown on the simulated cluster, on a manual clock: the kubelet honours the grace period and
how each program reacts to SIGTERM, Istio's proxies stay connected (and listed by ``istioctl version``) until
they exit, and the harness's skew check judges the pods that will remain."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import kubesim.istio
from istiofacts import catalog
from kubesim import SimClock, SimCluster
from kubesim.istio.istioctl import write_executable
from rehearsal.istio.istioctl import Istioctl
from rehearsal.journal import RollbackJournal
from rehearsal.kube import Kube, load_manifests
from rehearsal.run import Run
from rehearsal.settings import Settings
from rehearsal.steps import APPS_NS, SAMPLE_APPS, Rehearsal
from rehearsal.steps.validate import version_findings

PODS = ("", "pods")


def pod(name: str, containers: list[dict], sidecars: list[dict] | None = None, grace: int = 30) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "initContainers": [dict(c, restartPolicy="Always") for c in sidecars or []],
            "containers": containers,
        },
    }


def state_of(cluster: SimCluster, name: str) -> dict[str, dict]:
    p = cluster.store.get(PODS, "default", name)
    assert p is not None, f"pod {name} is gone"
    statuses = p["status"].get("containerStatuses", []) + p["status"].get("initContainerStatuses", [])
    return {s["name"]: s["state"] for s in statuses}


@pytest.fixture
def manual_cluster() -> Iterator[tuple[SimCluster, SimClock]]:
    clock = SimClock.manual_clock()
    with SimCluster(clock=clock, system_workloads=False) as cluster:
        yield cluster, clock


def test_a_pid_1_sleep_ignores_sigterm_for_the_whole_grace_period(manual_cluster):
    cluster, clock = manual_cluster
    sleeper = {"name": "app", "image": "docker.io/library/busybox:1.36", "command": ["sleep", "infinity"]}
    echo = {"name": "app", "image": "docker.io/mendhak/http-https-echo:37"}
    cluster.api.create(cluster.api.type_of(*PODS), pod("sleeper", [sleeper], grace=30), "default")
    cluster.api.create(cluster.api.type_of(*PODS), pod("echo", [echo], grace=30), "default")
    cluster.pass_time(5, step=0.5)
    assert "running" in state_of(cluster, "sleeper")["app"] and "running" in state_of(cluster, "echo")["app"]
    for name in ("sleeper", "echo"):
        cluster.api.delete(cluster.api.type_of(*PODS), "default", name)
    cluster.pass_time(2, step=0.5)
    assert cluster.store.get(PODS, "default", "echo") is None  # the echo server exits on SIGTERM
    cluster.pass_time(26, step=0.5)
    assert "running" in state_of(cluster, "sleeper")["app"]  # 28 s in: still running
    cluster.pass_time(3, step=0.5)
    assert cluster.store.get(PODS, "default", "sleeper") is None  # SIGKILLed at 30 s


def test_native_sidecars_get_sigterm_only_after_the_app_exited(manual_cluster):
    cluster, clock = manual_cluster
    app = {"name": "app", "image": "docker.io/library/busybox:1.36", "command": ["sleep", "infinity"]}
    sidecar = {
        "name": "helper",
        "image": "docker.io/library/busybox:1.36",
        "command": ["sh", "-c", "trap exit TERM; tail -f /dev/null"],
    }
    cluster.api.create(cluster.api.type_of(*PODS), pod("p", [app], [sidecar], grace=20), "default")
    cluster.pass_time(5, step=0.5)
    cluster.api.delete(cluster.api.type_of(*PODS), "default", "p")
    cluster.pass_time(10, step=0.5)
    states = state_of(cluster, "p")
    # The sidecar would exit at once on SIGTERM, but is not signalled while the app still runs.
    assert "running" in states["app"] and "running" in states["helper"]
    killing = [
        e["involvedObject"].get("fieldPath")
        for e in cluster.store.items(("", "events"), "default")
        if e["reason"] == "Killing" and e["involvedObject"]["name"] == "p"
    ]
    assert killing == ["spec.containers{app}"]
    cluster.pass_time(11, step=0.5)
    assert cluster.store.get(PODS, "default", "p") is None


def _client_that_ignores_sigterm() -> list[dict]:
    docs = load_manifests(SAMPLE_APPS, SAMPLE_APPS / "mesh")
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "client":
            doc["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    return docs


def test_an_upgrade_with_a_lingering_proxy_is_judged_on_the_pods_that_remain(tmp_path: Path):
    source, target = catalog.default_pair()
    clock = SimClock.manual_clock()
    with SimCluster(clock=clock, addons=[kubesim.istio.addon], kubeconfig=tmp_path / "kubeconfig") as cluster:
        pumping = threading.Event()
        pumping.set()
        stop = threading.Event()

        def pump() -> None:
            # Simulated time moves only while the test lets it: installs and rollouts need minutes of it.
            while not stop.is_set():
                if pumping.is_set():
                    clock.advance(0.5)
                stop.wait(0.01)

        driver = threading.Thread(target=pump, daemon=True)
        driver.start()
        try:
            istioctl = {
                v: Istioctl(v, write_executable(v, tmp_path / "bin"), cluster.kubeconfig_path)
                for v in (source, target)
            }
            istioctl[source].install()
            kube = Kube(cluster.api_client())
            docs = _client_that_ignores_sigterm()
            kube.apply(docs)
            for name in ("echo", "client"):
                kube.wait_rollout("Deployment", name, APPS_NS, 120)
            manifest = [d for d in yaml.safe_load_all(istioctl[target].manifest_generate()) if d]
            kube.apply([d for d in manifest if d["kind"] == "CustomResourceDefinition"])
            kube.apply([d for d in manifest if d["kind"] != "CustomResourceDefinition"])
            kube.wait_rollout("Deployment", "istiod", "istio-system", 120)
            kube.wait_rollout("Deployment", "istio-ingressgateway", "istio-system", 120)
            old_client = next(
                p["metadata"]["name"]
                for p in cluster.store.items(PODS, APPS_NS)
                if p["metadata"]["labels"].get("app") == "client"
            )
            # Restart only the client: its old pod ignores SIGTERM; echo keeps its old proxy (a real skew).
            kube.resource("apps/v1", "Deployment").patch(
                name="client",
                namespace=APPS_NS,
                content_type="application/strategic-merge-patch+json",
                body={"spec": {"template": {"metadata": {"annotations": {"rehearsal/restart": "1"}}}}},
            )
            kube.wait_rollout("Deployment", "client", APPS_NS, 120)
            pumping.clear()
            cluster.settle()
            lingering = f"{old_client}.{APPS_NS}"
            old = cluster.store.get(PODS, APPS_NS, old_client)
            assert old is not None and old["metadata"].get("deletionTimestamp")
            proxies = {
                p["ID"]: p["IstioVersion"] for p in istioctl[target].version_info()["dataPlaneVersion"]
            }
            assert proxies[lingering] == source  # still connected while its app ignores SIGTERM

            settings = Settings(istio_from=source, istio_to=target, timeout=120)
            run = Run(settings, tmp_path / "reports")
            ctx = Rehearsal(
                settings,
                run,
                RollbackJournal(run.dir / "journal.json"),
                None,  # type: ignore[arg-type]
                kube,
                istioctl[source],
                istioctl[target],
            )
            outcome: dict = {}
            judge = threading.Thread(
                target=lambda: outcome.update(
                    zip(
                        ("observed", "findings"), version_findings(ctx, istioctl[target], target), strict=True
                    )
                )
            )
            judge.start()
            # The check waits for the terminating pod; the grace period runs out, the kubelet kills it.
            judge.join(2.0)
            assert judge.is_alive(), "the skew check judged while a pod was still terminating"
            pumping.set()
            judge.join(120)
            assert not judge.is_alive()
        finally:
            stop.set()
            driver.join()
        observed, findings = outcome["observed"], outcome["findings"]
        assert (
            lingering in observed["settled"]["terminating"] and not observed["settled"]["still_terminating"]
        )
        # Gone from istioctl's view, or (its connection closing a moment after its pod went) listed as
        # leaving.
        assert lingering not in observed["data_plane"] or lingering in observed["leaving"]
        echo_proxies = [p for p in observed["data_plane"] if p.startswith("echo-")]
        assert echo_proxies and all(f"proxy {p} reports {source}" in findings for p in echo_proxies)
        assert not any(lingering in f or "client-" in f for f in findings), findings


def test_a_cni_agent_stopping_after_its_replacement_started_leaves_the_node_ready():
    # During the CNI DaemonSet's rollout the old agent's process ends after the new one started (its drain);
    # the node keeps a running agent, so new pods' istio-validation must pass (it failed, and the rehearsal
    # waited for a rollout that could never finish).
    from kubesim.istio.mesh import InstallCNI, IstioValidation
    from kubesim.node.programs import ContainerContext

    cluster = SimCluster(system_workloads=False, addons=[kubesim.istio.addon])

    def ctx(uid: str, name: str) -> ContainerContext:
        pod = {"metadata": {"uid": uid, "name": uid, "namespace": "istio-system"}, "spec": {"nodeName": "n1"}}
        return ContainerContext(
            pod, {"name": name}, "172.18.0.2", cluster.network, lambda _: None, None, cluster
        )

    old, new = InstallCNI(ctx("old", "install-cni")), InstallCNI(ctx("new", "install-cni"))
    old.start()
    new.start()
    old.stop()
    validation = IstioValidation(ctx("app", "istio-validation"))
    validation.start()
    assert validation.exit_after() == (0.2, 0)
    new.stop()
    stranded = IstioValidation(ctx("app2", "istio-validation"))
    stranded.start()
    assert stranded.exit_after() == (0.5, 126)
