"""Validations after the upgrade (and after a rollback): each returns findings as data; empty means healthy.

The suites assert on these; the rollback uses the same functions to prove the cluster is back.
"""

from __future__ import annotations

import time
from typing import Any

import yaml

from istiofacts import operator

from ..istio.istioctl import Istioctl
from . import ISTIO_NS, Rehearsal, wait_for
from .mesh import answering_proxies, echo_request_count, observe_versions, send_traffic

# Istio's support statement on skew (istio/istio.io, content/en/docs/releases/supported-releases/index.md,
# "Control Plane/Data Plane Skew"), quoted in the warnings about proxies the run did not restart.
SKEW_POLICY = (
    'Istio: "The Istio control plane can be one version ahead of the data plane. However, the data plane '
    'cannot be ahead of control plane." (istio.io docs/releases/supported-releases, Control Plane/Data '
    "Plane Skew)"
)


def judged_namespaces(ctx: Rehearsal) -> list[str]:
    """Where the upgrade is judged: istio-system, the apps' namespace and the restart scope (the namespaces
    whose workloads the run restarts onto the new sidecars)."""
    from .upgrade import restart_scope

    return list(dict.fromkeys([ISTIO_NS, ctx.apps_ns, *restart_scope(ctx)]))


def terminating_pods(ctx: Rehearsal, namespaces: list[str] | None = None) -> dict[str, float]:
    """Pods being deleted (``name.namespace``, as istioctl names proxies) and their grace periods, in
    ``namespaces`` (every namespace when None)."""
    return {
        f"{p['metadata']['name']}.{p['metadata']['namespace']}": float(
            p["metadata"].get("deletionGracePeriodSeconds") or 0
        )
        for p in ctx.objects("v1", "Pod")
        if p["metadata"].get("deletionTimestamp")
        and (namespaces is None or p["metadata"]["namespace"] in namespaces)
    }


def settle_terminating_pods(ctx: Rehearsal, timeout: float) -> dict[str, Any]:
    """Wait, bounded, for pods that are shutting down to be gone: their proxies stay connected to istiod (and
    listed by ``istioctl version``) until they exit, which may take the whole grace period (an app that
    ignores SIGTERM, a native sidecar draining after its app). Only pods where the run judges the upgrade
    (:func:`judged_namespaces`: what it restarted, and istio-system) are waited for, never the whole cluster's
    churn; bounded by the longest grace period (plus a margin for the kubelet) and by ``timeout``, with a live
    line naming the namespaces; returns what it waited for and what is still terminating."""
    namespaces = judged_namespaces(ctx)
    first = terminating_pods(ctx, namespaces)
    if not first:
        return {"waited_seconds": 0.0, "terminating": [], "still_terminating": []}
    bound = min(timeout, max(first.values()) + 15.0)
    started = time.monotonic()
    try:
        wait_for(
            lambda: not terminating_pods(ctx, namespaces),
            bound,
            f"{len(first)} terminating pod(s) in {', '.join(sorted({p.rsplit('.', 1)[1] for p in first}))} "
            "to go",
            0.5,
        )
        remaining: dict[str, float] = {}
    except TimeoutError:
        remaining = terminating_pods(ctx, namespaces)
    return {
        "waited_seconds": round(time.monotonic() - started, 1),
        "terminating": sorted(first),
        "still_terminating": sorted(remaining),
    }


def _proxy_version(pod: dict[str, Any]) -> str | None:
    for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or []):
        if c["name"] == "istio-proxy":
            return str(c["image"].rsplit(":", 1)[-1].split("-")[0])
    return None


def out_of_scope(ctx: Rehearsal) -> dict[str, dict[str, str]]:
    """Proxies the run does not restart and so does not judge (``name.namespace`` -> version and why): pods
    outside :func:`judged_namespaces`, finished pods (a Job's, or a CronJob's history) and pods of Jobs,
    which no rollout restart replaces."""
    namespaces = set(judged_namespaces(ctx))
    cron_jobs = {
        (j["metadata"]["namespace"], j["metadata"]["name"])
        for j in ctx.objects("batch/v1", "Job")
        if any(o.get("kind") == "CronJob" for o in j["metadata"].get("ownerReferences") or [])
    }
    apart: dict[str, dict[str, str]] = {}
    for pod in ctx.objects("v1", "Pod"):
        meta = pod["metadata"]
        version = _proxy_version(pod)
        if version is None or meta.get("deletionTimestamp"):
            continue
        ns = meta["namespace"]
        phase = (pod.get("status") or {}).get("phase") or ""
        job = next((o["name"] for o in meta.get("ownerReferences") or [] if o.get("kind") == "Job"), None)
        if job and (ns, job) in cron_jobs:
            reason = f"pod of CronJob history (job {job}, {phase or 'unknown phase'})"
        elif phase in ("Succeeded", "Failed"):
            reason = f"finished pod ({phase})" + (f" of job {job}" if job else "")
        elif job:
            reason = f"pod of job {job}: a rollout restart does not replace it"
        elif ns not in namespaces:
            reason = "namespace outside the restart scope"
        else:
            continue
        apart[f"{meta['name']}.{ns}"] = {"version": version, "reason": reason}
    return apart


def skew_warnings(apart: dict[str, dict[str, str]], version: str) -> list[str]:
    """Warnings for proxies left apart that Istio does not support next to a control plane at ``version``:
    more than one minor behind it, or ahead of it."""
    from istiofacts import catalog

    target = catalog.parse_version(version)[:2]
    warnings = []
    for proxy, seen in sorted(apart.items()):
        try:
            minor = catalog.parse_version(seen["version"])[:2]
        except catalog.UnknownVersion:
            continue  # an image tag that is no version (a digest, "latest"): nothing to compare
        if minor[0] != target[0] or minor[1] < target[1] - 1:
            warnings.append(
                f"proxy {proxy} ({seen['reason']}) runs {seen['version']}, more than one minor behind the "
                f"control plane at {version}; {SKEW_POLICY}"
            )
        elif minor > target:
            warnings.append(
                f"proxy {proxy} ({seen['reason']}) runs {seen['version']}, ahead of the control plane at "
                f"{version}; {SKEW_POLICY}"
            )
    return warnings


def version_findings(ctx: Rehearsal, istioctl: Istioctl, version: str) -> tuple[dict[str, Any], list[str]]:
    """Control plane and every proxy that will remain where the run restarted (istioctl's view and the pod
    specs, containers and initContainers alike) at ``version``. Pods still shutting down are waited for first
    (bounded), and a proxy whose pod is still terminating at the end of that wait is reported apart, not as
    skew; so are proxies the run did not restart (:func:`out_of_scope`), with a warning when Istio does not
    support them next to ``version``."""
    observed = settled_versions(ctx, istioctl)
    apart = observed["out_of_scope"]
    findings = []
    if observed["control_plane"] != [version]:
        findings.append(f"control plane runs {observed['control_plane'] or 'nothing ready'}, not {version}")
    for proxy, v in sorted(observed["data_plane"].items()):
        if v != version and proxy not in observed["leaving"] and proxy not in apart:
            findings.append(f"proxy {proxy} reports {v}")
    for pod, v in sorted(observed["pod_specs"].items()):
        if v != version and pod not in apart:
            findings.append(f"pod {pod} has istio-proxy image tag {v}")
    observed["warnings"] = skew_warnings(apart, version)
    return observed, findings


def settled_versions(ctx: Rehearsal, istioctl: Istioctl) -> dict[str, Any]:
    """:func:`~rehearsal.steps.mesh.observe_versions` once pods shutting down are gone (bounded), with the
    proxies that are leaving under ``leaving`` (see :func:`settle_terminating_pods`) and those the run does
    not judge under ``out_of_scope``."""
    settled = settle_terminating_pods(ctx, ctx.settings.timeout)
    observed = observe_versions(ctx, istioctl)
    observed["settled"] = settled
    # Pods that will remain: not being deleted. A proxy of any other pod (terminating, or already gone while
    # istiod has not yet seen its connection close) is leaving, and is listed apart.
    remaining = {
        f"{p['metadata']['name']}.{p['metadata']['namespace']}"
        for p in ctx.objects("v1", "Pod")
        if not p["metadata"].get("deletionTimestamp")
    }
    observed["leaving"] = {p: v for p, v in observed["data_plane"].items() if p not in remaining}
    observed["out_of_scope"] = out_of_scope(ctx)
    return observed


def versions_after(ctx: Rehearsal, istioctl: Istioctl) -> dict[str, Any]:
    """The versions a run's record keeps as the mesh after a change: those of :func:`settled_versions`,
    without the proxies that are leaving (an old pod's proxy still connected to istiod while its pod shuts
    down is not part of the upgraded mesh, and an auditor would read it as skew), and with the proxies the
    run did not restart listed apart, as "not restarted (out of scope)"."""
    observed = settled_versions(ctx, istioctl)
    apart = observed["out_of_scope"]
    version = istioctl.version
    return {
        "control_plane": observed["control_plane"],
        "data_plane": {
            p: v for p, v in observed["data_plane"].items() if p not in observed["leaving"] and p not in apart
        },
        "pod_specs": {p: v for p, v in observed["pod_specs"].items() if p not in apart},
        "out_of_scope": apart,
        "warnings": skew_warnings(apart, version),
    }


def injected_proxy(ctx: Rehearsal, namespace: str, template: dict[str, Any]) -> str | None:
    """The istio-proxy image the injector gives a pod of ``template`` created now in ``namespace``: a
    server-side dry-run create (admission webhooks run, nothing is stored), so the answer is the injector's
    own, not what its ConfigMap says it would do. None when no sidecar is injected."""
    meta = template.get("metadata") or {}
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "rehearsal-injection-check-",
            "namespace": namespace,
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
        },
        "spec": template.get("spec") or {},
    }
    created = ctx.kube.resource("v1", "Pod").create(body=body, namespace=namespace, dry_run="All").to_dict()
    for c in (created["spec"].get("containers") or []) + (created["spec"].get("initContainers") or []):
        if c["name"] == "istio-proxy":
            return str(c["image"])
    return None


def prove_injection(ctx: Rehearsal, namespace: str, template: dict[str, Any], version: str) -> str:
    """Before workloads of ``namespace`` are restarted: a pod created now gets a sidecar at ``version``
    (:func:`injected_proxy`); else :class:`~rehearsal.run.StepFailed` says what it would get instead, so no
    workload is restarted onto the wrong proxy."""
    from istiofacts import catalog

    from ..retry import api_error_line, is_api_error
    from ..run import StepFailed

    try:
        image = injected_proxy(ctx, namespace, template)
    except Exception as exc:
        said = api_error_line(exc) if is_api_error(exc) else str(exc).splitlines()[0]
        raise StepFailed(
            f"namespace {namespace}: a trial pod (server-side dry run) was refused: {said}"
        ) from None
    if image is None:
        raise StepFailed(
            f"namespace {namespace}: a pod created now gets no istio-proxy sidecar, so restarting its "
            "workloads would take their sidecars away; nothing was restarted"
        )
    tag = image.rsplit(":", 1)[-1].split("-")[0] if ":" in image.rsplit("/", 1)[-1] else ""
    try:
        same = catalog.parse_version(tag) == catalog.parse_version(version)
    except catalog.UnknownVersion:
        same = False
    if not same:
        raise StepFailed(
            f"namespace {namespace}: the injector gives a pod created now the sidecar {image}, not Istio "
            f"{version}'s; restarting its workloads would put them on it, so nothing was restarted"
        )
    return image


def pod_health_findings(ctx: Rehearsal, restarts_before: dict[str, int]) -> list[str]:
    findings = []
    for ns in (ISTIO_NS, ctx.apps_ns):
        for pod in ctx.objects("v1", "Pod", ns):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            name = f"{ns}/{pod['metadata']['name']}"
            status = pod.get("status") or {}
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
            )
            if status.get("phase") != "Running" or not ready:
                findings.append(f"{name} is {status.get('phase')} and {'ready' if ready else 'not ready'}")
            statuses = status.get("containerStatuses", []) + status.get("initContainerStatuses", [])
            restarts = sum(s.get("restartCount", 0) for s in statuses)
            if restarts > restarts_before.get(name, 0):
                findings.append(
                    f"{name} restarted {restarts - restarts_before.get(name, 0)} time(s) since the upgrade"
                )
            for s in statuses:
                if ((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                    findings.append(f"{name}/{s['name']} is crash-looping")
    return findings


def _revision_suffix(ctx: Rehearsal) -> str:
    """``-<revision>`` when the one control plane left is a revision (after a canary), else empty: the
    charts name a revision's istiod Service, injector and validator with it."""
    revisions = {
        (d["metadata"].get("labels") or {}).get("istio.io/rev", "default")
        for d in ctx.objects("apps/v1", "Deployment", ISTIO_NS, label_selector="app=istiod")
    }
    return f"-{revisions.pop()}" if len(revisions) == 1 and "default" not in revisions else ""


def service_findings(ctx: Rehearsal) -> list[str]:
    spec = ctx.settings.install_spec(ctx.settings.istio_to)
    planned = (
        operator.get(spec, "components.ingressGateways[0].k8s.service.type")
        or operator.get(spec, "values.gateways.istio-ingressgateway.type")
        or "LoadBalancer"
    )
    services = {s["metadata"]["name"]: s for s in ctx.objects("v1", "Service", ISTIO_NS)}
    findings = []
    for name in (f"istiod{_revision_suffix(ctx)}", "istio-ingressgateway"):
        if name not in services:
            findings.append(f"Service {ISTIO_NS}/{name} is missing")
    gateway = services.get("istio-ingressgateway")
    if gateway and gateway["spec"].get("type") != planned:
        findings.append(f"istio-ingressgateway is {gateway['spec'].get('type')}, planned {planned}")
    return findings


def installation_findings(ctx: Rehearsal, istioctl: Istioctl) -> tuple[str, list[str]]:
    """``verify-install`` where the version has it; the harness's own readiness checks where it does not."""
    s = ctx.settings
    if istioctl.minor.verify_install:
        # verify-install takes only -f/-d/-r (no --set): the plan, --set values included, goes in as one
        # IstioOperator file, as a user would write it.
        plan = ctx.run.write_artifact(
            f"verify-install/istio-{istioctl.version}.yaml",
            yaml.safe_dump(
                {
                    "apiVersion": "install.istio.io/v1alpha1",
                    "kind": "IstioOperator",
                    "spec": s.install_spec(istioctl.version) | {"tag": istioctl.version},
                },
                sort_keys=False,
            ),
        )
        result = istioctl.verify_install([plan])
        return (
            "istioctl verify-install -f <the plan as an IstioOperator file>",
            [] if result.exit_code == 0 else [(result.stdout + result.stderr).strip()[-800:]],
        )
    findings = []
    checks: list[tuple[str, str | None]] = [("app=istiod", ISTIO_NS), ("app=istio-ingressgateway", ISTIO_NS)]
    cni = any(d["metadata"]["name"] == "istio-cni-node" for d in ctx.objects("apps/v1", "DaemonSet"))
    if cni:
        checks.append(("k8s-app=istio-cni-node", None))
    for selector, ns in checks:
        pods = [
            p
            for p in ctx.objects("v1", "Pod", ns, label_selector=selector)
            if not p["metadata"].get("deletionTimestamp")
        ]
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        ]
        if not ready or len(ready) < len(pods):
            findings.append(f"pods {selector}: {len(ready)}/{len(pods)} ready")
    hooks = {
        h["metadata"]["name"]
        for h in ctx.objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
    }
    validators = {
        h["metadata"]["name"]
        for h in ctx.objects("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration")
    }
    injector = f"istio-sidecar-injector{_revision_suffix(ctx)}"
    if injector not in hooks:
        findings.append(f"MutatingWebhookConfiguration {injector} is missing")
    if not validators & {
        f"istio-validator{_revision_suffix(ctx)}-istio-system",
        "istiod-default-validator",
    }:
        findings.append("no Istio ValidatingWebhookConfiguration")
    return "readiness of istiod, the ingress gateway" + (
        ", the CNI agents" if cni else ""
    ) + " and the webhooks", findings


def analyze_findings(istioctl: Istioctl) -> list[str]:
    return [
        f"{m.level} [{m.code}] ({m.origin}) {m.message}" for m in istioctl.analyze() if m.level == "Error"
    ]


def traffic_findings(ctx: Rehearsal, version: str) -> tuple[dict[str, Any], list[str]]:
    """Every request answered 200, and every answering pod's proxy at ``version``: the echo app names the pod,
    joined with that pod's spec and with istioctl's view of its proxy."""
    result = send_traffic(ctx, ctx.settings.traffic_requests)
    findings = []
    if result["codes"] != {"200": result["requests"]}:
        findings.append(f"answers {result['codes']} to {result['requests']} requests: {result['failures']}")
    proxies = answering_proxies(ctx, ctx.istioctl_to, result["answered_by"])
    result["answering_proxies"] = proxies
    if result["codes"].get("200") and not proxies:
        findings.append("the echo app did not say which pod answered (no os.hostname in its answers)")
    for pod, seen in proxies.items():
        if seen["gone"]:
            continue  # it answered and has since gone away: nothing remains to judge
        if seen["pod_spec"] is None:
            findings.append(
                f"pod {ctx.apps_ns}/{pod} answered {seen['requests']} request(s) but has no istio-proxy"
            )
        elif seen["pod_spec"] != version:
            findings.append(
                f"pod {ctx.apps_ns}/{pod} answered {seen['requests']} request(s) with proxy "
                f"{seen['pod_spec']}"
            )
        if seen["istioctl"] is None:
            findings.append(f"istioctl does not list the proxy of {pod}.{ctx.apps_ns}, which answered")
        elif seen["istioctl"] != version:
            findings.append(f"istioctl reports the proxy of {pod}.{ctx.apps_ns} at {seen['istioctl']}")
    return result, findings


def telemetry_findings(ctx: Rehearsal) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    before = echo_request_count(ctx, problems)
    if problems:
        # No count to compare: say why now rather than send traffic whose count nothing can read.
        return {"before": None, "after": None, "sent": 0, "answered": 0, "problems": problems}, problems
    sent = send_traffic(ctx, ctx.settings.traffic_requests, "/echo/telemetry")
    after = echo_request_count(ctx, problems)
    if problems:
        return {"before": before, "after": None, "sent": sent["requests"], "problems": problems}, problems
    data = {
        "before": before,
        "after": after,
        "sent": sent["requests"],
        "answered": sent["codes"].get("200", 0),
    }
    findings = []
    if after - before != data["answered"]:
        findings.append(
            f'istio_requests_total{{reporter="destination",destination_workload="echo",'
            f'response_code="200"}} grew by {after - before}, expected {data["answered"]}'
        )
    return data, findings
