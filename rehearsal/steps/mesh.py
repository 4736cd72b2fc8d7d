"""Steps that set the stage: provision the cluster, install the source version, deploy the sample apps, and
the traffic and version observations every later step and validation reuses."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from .. import waits
from ..cluster import Cluster, ClusterError, KindProvider, KubeconfigProvider, SimProvider, SimRegistry
from ..istio import istioctl as istioctl_mod
from ..istio.istioctl import Istioctl, IstioctlError, IstioctlFailed
from ..kube import http_session, load_manifests, with_registry
from ..run import Run, StepFailed
from ..settings import Settings
from . import APPS_NS, ISTIO_NS, SAMPLE_APPS, Rehearsal


def provision(settings: Settings, run: Run) -> Cluster:
    """Create (sim, kind) or connect to (kubeconfig) the cluster the rehearsal runs on."""
    with run.step("provision") as step:
        if settings.cluster == "sim":
            # The simulated world has the public registries; the user's own exist only if they say so
            # (--sim-registry), so a mistyped hub fails with ErrImagePull here as on a real cluster.
            try:
                registries = [SimRegistry.parse(text) for text in settings.sim_registries]
            except ClusterError as exc:
                raise StepFailed(str(exc)) from None
            provider: Any = SimProvider(
                k8s_version=settings.k8s_version,
                time_scale=settings.sim_time_scale,
                registries=registries,
            )
        elif settings.cluster == "kind":
            provider = KindProvider(cluster_name=settings.kind_name, keep=settings.keep_cluster)
        else:
            provider = KubeconfigProvider(Path(str(settings.kubeconfig)), settings.context)
        try:
            cluster = provider.provision(run.artifacts)
        except ClusterError as exc:
            raise StepFailed(str(exc)) from None
        run.cluster_name = cluster.stable_name
        step.note(f"{cluster.stable_name}, Kubernetes v{cluster.server_version()}")
        return cluster


def make_istioctl(
    settings: Settings, run: Run, cluster: Cluster, version: str, explicit: str | None
) -> Istioctl:
    """The istioctl of ``version`` for this cluster: an explicit path, else the simulator's emulator on a
    simulated cluster, else the real one (PATH, cache or a verified download)."""
    try:
        if cluster.simulator is not None and not explicit:
            path = cluster.simulator.istioctl(version, run.dir / "bin")
        else:
            path = istioctl_mod.resolve(version, explicit)
    except (IstioctlError, ClusterError) as exc:
        raise StepFailed(str(exc)) from None
    ctl = Istioctl(version, path, cluster.kubeconfig, cluster.context, timeout=settings.timeout + 60)
    ctl.evidence.listeners.append(run.on_command)
    return ctl


def plan_files(settings: Settings) -> list[str]:
    return [settings.plan] if settings.plan else []


def install_source(ctx: Rehearsal) -> None:
    """Install the source version with the plan's settings: the production mesh being rehearsed."""
    s = ctx.settings
    with ctx.run.step("install source") as step:
        try:
            ctx.istioctl_from.install(
                plan_files(s), s.install_sets(s.istio_from), readiness_timeout=f"{int(s.timeout)}s"
            )
        except IstioctlFailed as exc:
            raise StepFailed(f"istioctl {s.istio_from} install failed: {exc}") from None
        step.note(f"Istio {s.istio_from} installed")


def deploy_apps(ctx: Rehearsal) -> None:
    with ctx.run.step("deploy sample apps") as step:
        docs = with_registry(load_manifests(SAMPLE_APPS, SAMPLE_APPS / "mesh"), ctx.settings.apps_registry)
        ctx.kube.invalidate_discovery()
        ctx.kube.apply(docs)
        for doc in docs:
            if doc["kind"] == "Deployment":
                waits.rollout(
                    ctx.kube,
                    "Deployment",
                    doc["metadata"]["name"],
                    doc["metadata"]["namespace"],
                    ctx.settings.timeout,
                )
        step.note(
            f"{len(docs)} objects from sample_apps/ applied and rolled out"
            + (f" (images from {ctx.settings.apps_registry})" if ctx.settings.apps_registry else "")
        )


def pod_problems(ctx: Rehearsal, namespace: str) -> str:
    """Why pods in ``namespace`` are not ready, in the kubelet's words."""
    reasons = []
    for pod in ctx.objects("v1", "Pod", namespace):
        for status in (pod.get("status") or {}).get("containerStatuses", []) + (pod.get("status") or {}).get(
            "initContainerStatuses", []
        ):
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in ("PodInitializing", "ContainerCreating"):
                reasons.append(
                    f"{pod['metadata']['name']}/{status['name']}: {waiting['reason']}"
                    + (f" ({waiting.get('message')})" if waiting.get("message") else "")
                )
    events = [e for e in ctx.objects("v1", "Event", namespace) if e.get("type") == "Warning"]
    for event in events[-3:]:
        reasons.append(f"{event.get('reason')}: {event.get('message')}")
    return "; ".join(reasons[:6]) or "no pod reported a reason"


def send_traffic(ctx: Rehearsal, count: int, path: str = "/echo/rehearsal") -> dict[str, Any]:
    """``count`` requests through the ingress gateway (via the API server's service proxy, which reaches a
    ClusterIP gateway as well as a LoadBalancer one, on any cluster). The echo app reports which pod answered
    (mendhak/http-https-echo: ``os.hostname``, the pod's name); no Istio proxy adds a header naming itself."""
    session = http_session(ctx.kube.api_client)
    base = (
        f"{ctx.kube.api_client.configuration.host}/api/v1/namespaces/{ISTIO_NS}/services/"
        "istio-ingressgateway:http2/proxy"
    )
    codes: dict[str, int] = {}
    answered_by: dict[str, int] = {}
    failures: list[str] = []
    started = time.monotonic()
    for n in range(count):
        try:
            response = session.get(f"{base}{path}/{n}", timeout=10)
            code = str(response.status_code)
            if response.status_code == 200:
                pod = _answering_pod(response)
                if pod:
                    answered_by[pod] = answered_by.get(pod, 0) + 1
            elif len(failures) < 5:
                failures.append(f"{code}: {response.text[:120]}")
        except requests.RequestException as exc:
            code = type(exc).__name__
            if len(failures) < 5:
                failures.append(code)
        codes[code] = codes.get(code, 0) + 1
    return {
        "requests": count,
        "codes": codes,
        "answered_by": answered_by,
        "failures": failures,
        "seconds": round(time.monotonic() - started, 3),
    }


def _answering_pod(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    hostname = (body.get("os") or {}).get("hostname") if isinstance(body, dict) else None
    return str(hostname) if hostname else None


def answering_proxies(ctx: Rehearsal, istioctl: Istioctl, answered_by: dict[str, int]) -> dict[str, Any]:
    """Which proxy served each answering pod, two ways a real cluster tells: the pod's spec (the istio-proxy
    image tag, in containers or, with native sidecars, initContainers) and istioctl's view (the proxy
    ``<pod>.<namespace>`` in ``istioctl version``'s data plane, and the version it reports)."""
    info = istioctl.version_info()
    connected = {p["ID"]: p["IstioVersion"] for p in info.get("dataPlaneVersion", [])}
    pods = {p["metadata"]["name"]: p for p in ctx.objects("v1", "Pod", APPS_NS)}
    by_pod: dict[str, dict[str, Any]] = {}
    for name, requests_served in sorted(answered_by.items()):
        pod = pods.get(name)
        spec_version = None
        if pod is not None:
            for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or []):
                if c["name"] == "istio-proxy":
                    spec_version = c["image"].rsplit(":", 1)[-1].split("-")[0]
        by_pod[name] = {
            "requests": requests_served,
            "pod_spec": spec_version,
            "istioctl": connected.get(f"{name}.{APPS_NS}"),
            "gone": pod is None,
        }
    return by_pod


def echo_request_count(ctx: Rehearsal) -> int:
    """istio_requests_total (reporter=destination, 200) summed over the echo pods, from :15020."""
    from kubernetes import client

    core = client.CoreV1Api(ctx.kube.api_client)
    total = 0
    for pod in core.list_namespaced_pod(APPS_NS, label_selector="app=echo").items:
        if pod.metadata.deletion_timestamp or pod.status.phase != "Running":
            continue
        try:
            text = core.connect_get_namespaced_pod_proxy_with_path(
                f"{pod.metadata.name}:15020", APPS_NS, "stats/prometheus"
            )
        except Exception:
            continue
        for line in text.splitlines():
            if (
                line.startswith("istio_requests_total{")
                and 'reporter="destination"' in line
                and 'response_code="200"' in line
                and 'destination_workload="echo"' in line
            ):
                total += int(float(line.rsplit(" ", 1)[1]))
    return total


def observe_versions(ctx: Rehearsal, istioctl: Istioctl) -> dict[str, Any]:
    """Control plane and data plane versions, from ``istioctl version -o json`` and from the pod specs."""
    info = istioctl.version_info()
    pods = {}
    for pod in ctx.objects("v1", "Pod"):
        for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or []):
            if c["name"] == "istio-proxy" and not pod["metadata"].get("deletionTimestamp"):
                pods[f"{pod['metadata']['name']}.{pod['metadata']['namespace']}"] = (
                    c["image"].rsplit(":", 1)[-1].split("-")[0]
                )
    return {
        "control_plane": sorted({m["Info"]["version"] for m in info.get("meshVersion", [])}),
        "data_plane": {p["ID"]: p["IstioVersion"] for p in info.get("dataPlaneVersion", [])},
        "pod_specs": pods,
    }


def restart_counts(ctx: Rehearsal) -> dict[str, int]:
    counts = {}
    for ns in (ISTIO_NS, APPS_NS):
        for pod in ctx.objects("v1", "Pod", ns):
            statuses = (pod.get("status") or {}).get("containerStatuses", []) + (pod.get("status") or {}).get(
                "initContainerStatuses", []
            )
            counts[f"{ns}/{pod['metadata']['name']}"] = sum(s.get("restartCount", 0) for s in statuses)
    return counts


def baseline(ctx: Rehearsal) -> dict[str, Any]:
    """Prove the source mesh works before anything changes: versions, traffic, telemetry."""
    with ctx.run.step("baseline") as step:
        versions = observe_versions(ctx, ctx.istioctl_from)
        ctx.run.versions["before"] = versions
        traffic = send_traffic(ctx, ctx.settings.traffic_requests)
        step.add_data("traffic", traffic)
        if traffic["codes"] != {"200": traffic["requests"]}:
            raise StepFailed(
                f"the sample app does not answer through the ingress before the upgrade: "
                f"{json.dumps(traffic['codes'])} {traffic['failures']}"
            )
        step.note(
            f"control plane {versions['control_plane']}, {len(versions['data_plane'])} proxies, "
            f"{traffic['requests']} requests answered 200"
        )
        return {"versions": versions, "traffic": traffic}
