"""istioctl install/upgrade watched by the harness: a pod past hope stops it at once, the cause names the pod
and the cluster's reason first, istioctl's words next and the command last; the subprocess budget is the
readiness timeout per component plus a margin; the emulator waits per component and says what it waits for."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from istiofacts import catalog
from kubesim import SimClock, SimCluster
from rehearsal.istio import istioctl as istioctl_mod
from rehearsal.istio import watch as watch_mod
from rehearsal.istio.istioctl import Istioctl, IstioctlStopped
from rehearsal.kube import Kube

# A stand-in istioctl that says it waits and never ends by itself (it blocks on a signal).
HANGING = """#!{python}
import signal, sys
sys.stderr.write("- Processing resources for Istiod. Waiting for Deployment/istio-system/istiod\\n")
sys.stderr.flush()
import os
open(sys.argv[0] + ".said", "w").write(str(os.getpid()))
signal.pause()
"""
QUICK = """#!{python}
print("done")
"""


def _script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "istioctl"
    path.write_text(text.format(python=sys.executable))
    path.chmod(0o755)
    return path


CAUSE = {
    "object": "pod istio-system/istiod-abc-1 container discovery",
    "reason": "ImagePullBackOff",
    "image": "registry.invalid/istio/pilot:1.0",
    "host": "registry.invalid",
    "message": "image registry.invalid/istio/pilot:1.0 cannot be pulled (2 attempts, the last after a "
    "back-off): dial tcp: lookup registry.invalid: no such host",
    "evidence": {"events": [{"reason": "Failed", "message": "Error: ErrImagePull"}]},
}


def test_a_hopeless_pod_stops_istioctl_with_the_cause_first(tmp_path, monkeypatch):
    monkeypatch.setattr(istioctl_mod, "WATCH_INTERVAL", 0.02)
    looks: list[int] = []

    script = _script(tmp_path, HANGING)

    def watch() -> dict | None:  # hopeless once istioctl has said what it waits for
        looks.append(1)
        return dict(CAUSE) if len(looks) >= 3 and Path(f"{script}.said").exists() else None

    ticks: list[tuple[float, float]] = []
    ctl = Istioctl("1.0.0", script)
    started = time.monotonic()
    with pytest.raises(IstioctlStopped) as stopped:
        ctl.install(
            sets=["hub=registry.invalid/istio"],
            readiness_timeout="5m0s",
            watch=watch,
            components=3,
            ticker=lambda e, d: ticks.append((e, d)),
        )
    assert time.monotonic() - started < 30  # stopped, not waited out
    text = str(stopped.value)
    assert text.startswith("pod istio-system/istiod-abc-1 container discovery: ErrImagePull")
    first, said, command = (
        text.index(s) for s in ("registry host registry.invalid", "istioctl said", "`istioctl install")
    )
    assert first < said < command
    assert "Waiting for Deployment/istio-system/istiod" in text
    assert stopped.value.record.exit_code == -2
    assert stopped.value.evidence["events"][0]["message"] == "Error: ErrImagePull"
    assert ticks and ticks[-1][1] == 3 * 300 + istioctl_mod.INSTALL_MARGIN


def test_an_interrupted_watch_does_not_leave_istioctl_running(tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(istioctl_mod, "WATCH_INTERVAL", 0.02)
    script = _script(tmp_path, HANGING)
    said = Path(f"{script}.said")

    def watch() -> dict | None:
        if said.exists() and said.read_text():
            raise KeyboardInterrupt  # Ctrl-C while istioctl waits
        return None

    with pytest.raises(KeyboardInterrupt):
        Istioctl("1.0.0", script).install(watch=watch)
    with pytest.raises(ProcessLookupError):
        os.kill(int(said.read_text()), 0)


def test_a_watched_istioctl_that_ends_returns_its_record(tmp_path, monkeypatch):
    monkeypatch.setattr(istioctl_mod, "WATCH_INTERVAL", 0.02)
    record = Istioctl("1.0.0", _script(tmp_path, QUICK)).install(watch=lambda: None)
    assert record.exit_code == 0 and record.stdout.strip() == "done"


def test_the_install_budget_is_the_readiness_timeout_per_component_plus_a_margin(monkeypatch):
    seen: dict = {}

    def run(self, *args, **kwargs):
        seen.update(kwargs)

    monkeypatch.setattr(Istioctl, "run", run)
    Istioctl("1.0.0", Path("istioctl"), timeout=360).install(readiness_timeout="5m0s", components=4)
    assert seen["timeout"] == 4 * 300 + istioctl_mod.INSTALL_MARGIN
    assert istioctl_mod.go_seconds("1m30s") == 90 and istioctl_mod.go_seconds("300") == 300
    assert watch_mod.components_of({}) == 3  # base, istiod, the default profile's ingress gateway
    spec = {"components": {"cni": {"enabled": True}, "ingressGateways": [{"name": "g", "enabled": False}]}}
    assert watch_mod.components_of(spec) == 3
    gateways = {"components": {"ingressGateways": [{"name": "g", "namespace": "istio-ingress"}]}}
    assert watch_mod.namespaces_of(gateways) == ["istio-system", "istio-ingress"]


def test_the_pod_watch_names_err_image_pull_the_image_and_the_host_after_one_back_off():
    image = f"registry.invalid/istio/pilot:{catalog.default_pair()[0]}"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "istiod", "namespace": "istio-system"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "istiod"}},
            "template": {
                "metadata": {"labels": {"app": "istiod"}},
                "spec": {"containers": [{"name": "discovery", "image": image}]},
            },
        },
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        kube = Kube(cluster.api_client())
        kube.apply([namespace, deployment])
        watch = watch_mod.PodWatch(kube, ["istio-system", "istio-ingress"])
        cluster.pass_time(5, step=0.5)
        assert watch() is None  # one failed pull may be a hiccup
        assert "istiod-" in watch.states() and "Pending" in watch.states()
        found: list[dict] = []
        cluster.pass_time(60, step=0.5, until=lambda: bool(found.append(watch()) or found[-1]))
        cause = found[-1]
    assert cause is not None and cause["reason"] == "ImagePullBackOff" and cause["host"] == "registry.invalid"
    assert cause["object"].startswith("pod istio-system/istiod-")
    assert any(e["message"] == "Error: ErrImagePull" for e in cause["evidence"]["events"])
    text = watch_mod.stopped_message(cause, "", "istioctl install -y")
    assert "ErrImagePull" in text and image in text and "registry host registry.invalid" in text
    assert "no such host" in text


def test_a_mistyped_hub_fails_the_source_install_in_under_a_minute_naming_err_image_pull(
    suites_run, tmp_path
):
    started = time.monotonic()
    result = suites_run(tmp_path, "--set", "hub=registry.invalid/istio")  # default settings otherwise
    took = time.monotonic() - started
    data = result.data
    assert data["verdict"] == "failed" and took < 60, (data.get("failure"), took)
    image = f"registry.invalid/istio/pilot:{data['from']}"
    failed = next(s for s in data["steps"] if s["outcome"] == "failed")
    assert image in failed["reason"] and "registry.invalid" in failed["reason"], failed["reason"]
    if failed["name"] != "install source":  # a pull check before the install found it even sooner
        assert "ImagePullBackOff" in failed["reason"] or "ErrImagePull" in failed["reason"]
        return
    install = failed
    reason = install["reason"]
    assert reason.startswith("pod istio-system/istiod-"), reason
    assert "ErrImagePull" in reason and "registry host registry.invalid" in reason
    assert f"registry.invalid/istio/pilot:{data['from']}" in reason
    said = next(e for e in install["evidence"] if e.get("title") == "what the cluster said")["data"]
    assert any("ErrImagePull" in e["message"] for e in said["events"])


def test_an_istiod_asking_more_than_a_node_has_fails_naming_failed_scheduling_quickly(suites_run, tmp_path):
    started = time.monotonic()
    result = suites_run(tmp_path, "--set", "components.pilot.k8s.resources.requests.memory=1Ti")
    took = time.monotonic() - started
    data = result.data
    assert data["verdict"] == "failed" and took < 60, (data.get("failure"), took)
    install = next(s for s in data["steps"] if s["name"] == "install source")
    assert install["reason"].startswith("pod istio-system/istiod-"), install["reason"]
    assert "FailedScheduling" in install["reason"] and "Insufficient memory" in install["reason"]
    assert "(unschedulable for " in install["reason"]  # after the grace, not the readiness timeout of 300 s


def test_a_pod_broken_before_istioctl_started_does_not_stop_it():
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}}
    broken = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "someone-elses", "namespace": "istio-system"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/theirs:1"}]},
    }
    with SimCluster(clock=SimClock.manual_clock(), system_workloads=False) as cluster:
        kube = Kube(cluster.api_client())
        kube.apply([namespace])
        # Pods are admitted once the namespace's default ServiceAccount exists (its controller makes it).
        cluster.pass_time(
            10,
            step=0.5,
            until=lambda: bool(cluster.store.get(("", "serviceaccounts"), "istio-system", "default")),
        )
        kube.apply([broken])
        before = watch_mod.PodWatch(kube, ["istio-system"])
        cluster.pass_time(2, step=1)
        before.start()  # istioctl starts now
        cluster.pass_time(60, step=1)
        assert before.last_pods == {} and before() is None
        assert watch_mod.PodWatch(kube, ["istio-system"])() is not None  # without the start, it would stop
