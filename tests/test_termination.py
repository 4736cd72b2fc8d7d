"""Graceful pod shutdown on the simulated cluster, on a manual clock: the kubelet honours the grace period and
how each program reacts to SIGTERM, Istio's proxies stay connected (and listed by ``istioctl version``) until
they exit, and the harness's skew check judges the pods that will remain."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

import kubesim.istio
from istiofacts import catalog
from kubesim import SimClock, SimCluster
from kubesim.istio.istioctl import write_executable
from rehearsal.istio.istioctl import Istioctl
from rehearsal.journal import RollbackJournal
from rehearsal.kube import Kube, load_manifests, rollout_complete
from rehearsal.run import Run
from rehearsal.settings import Settings
from rehearsal.steps import APPS_NS, SAMPLE_APPS, Rehearsal, validate

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


def _rolled_out(cluster: SimCluster, *workloads: tuple[str, str]) -> Callable[[], bool]:
    """A condition on the store: every (namespace, name) Deployment has finished rolling out."""

    def done() -> bool:
        for namespace, name in workloads:
            obj = cluster.store.get(("apps", "deployments"), namespace, name)
            if obj is None or not rollout_complete(obj):
                return False
        return True

    return done


def _install_by_apply(cluster: SimCluster, kube: Kube, istioctl: Istioctl) -> None:
    """The control plane ``istioctl manifest generate`` renders, applied at once; simulated time passes in
    explicit steps until it has rolled out (``istioctl install`` would block while time must move)."""
    manifest = [d for d in yaml.safe_load_all(istioctl.manifest_generate()) if d]
    kube.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}])
    kube.apply([d for d in manifest if d["kind"] == "CustomResourceDefinition"])
    kube.apply([d for d in manifest if d["kind"] != "CustomResourceDefinition"])
    control_plane = _rolled_out(cluster, ("istio-system", "istiod"), ("istio-system", "istio-ingressgateway"))
    cluster.pass_time(300, step=0.5, until=control_plane)
    assert control_plane(), "the control plane did not roll out in 300 simulated s"


def test_an_upgrade_with_a_lingering_proxy_is_judged_on_the_pods_that_remain(tmp_path: Path, monkeypatch):
    # Simulated time moves only by explicit steps (pass_time), never while a blocking call runs: the old
    # client pod's 30 s grace period must still be running when the skew check first looks, whatever the
    # machine's speed.
    source, target = catalog.default_pair()
    clock = SimClock.manual_clock()
    with SimCluster(clock=clock, addons=[kubesim.istio.addon], kubeconfig=tmp_path / "kubeconfig") as cluster:
        istioctl = {
            v: Istioctl(v, write_executable(v, tmp_path / "bin"), cluster.kubeconfig_path)
            for v in (source, target)
        }
        kube = Kube(cluster.api_client())
        _install_by_apply(cluster, kube, istioctl[source])
        kube.apply(_client_that_ignores_sigterm())
        apps = _rolled_out(cluster, (APPS_NS, "echo"), (APPS_NS, "client"))
        cluster.pass_time(300, step=0.5, until=apps)
        assert apps(), "the sample apps did not roll out in 300 simulated s"
        _install_by_apply(cluster, kube, istioctl[target])
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

        def old_pod_terminating() -> bool:
            old = cluster.store.get(PODS, APPS_NS, old_client)
            return old is not None and bool(old["metadata"].get("deletionTimestamp"))

        restarted = _rolled_out(cluster, (APPS_NS, "client"))
        cluster.pass_time(120, step=0.5, until=lambda: old_pod_terminating() and restarted())
        assert restarted() and old_pod_terminating()
        deleted_at = clock.now()
        lingering = f"{old_client}.{APPS_NS}"
        proxies = {p["ID"]: p["IstioVersion"] for p in istioctl[target].version_info()["dataPlaneVersion"]}
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
        # The skew check runs in a thread (it blocks while it waits); the test lets simulated time pass only
        # once the check has seen the terminating pod, so what it sees first does not depend on wall time.
        looked = threading.Event()
        first_look = validate.terminating_pods

        def terminating_pods(ctx: Rehearsal, namespaces: list[str] | None = None) -> dict[str, float]:
            seen = first_look(ctx, namespaces)
            looked.set()
            return seen

        monkeypatch.setattr(validate, "terminating_pods", terminating_pods)
        outcome: dict = {}
        judge = threading.Thread(
            target=lambda: outcome.update(
                zip(
                    ("observed", "findings"),
                    validate.version_findings(ctx, istioctl[target], target),
                    strict=True,
                )
            ),
            daemon=True,
        )
        judge.start()
        assert looked.wait(60), "the skew check never listed the pods"  # a hang bound, not pacing
        assert judge.is_alive() and cluster.store.get(PODS, APPS_NS, old_client) is not None
        # The grace period runs out, the kubelet kills the pod.
        # Time stops once the pod is gone; the check, waiting on the cluster, then judges what remains.
        cluster.pass_time(60, step=0.5, until=lambda: cluster.store.get(PODS, APPS_NS, old_client) is None)
        assert 30 <= clock.now() - deleted_at <= 31, "the kubelet did not honour the 30 s grace period"
        judge.join(60)  # a hang bound: the check needs no more simulated time
        assert not judge.is_alive(), "the skew check did not end once the terminating pod was gone"
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
