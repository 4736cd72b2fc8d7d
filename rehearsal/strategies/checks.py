"""Checks per revision for the canary strategy (harness library, beside :mod:`.canary`): each control plane
by ``istioctl version --revision`` (the source's istioctl for the old revision, the target's for the new, each
printing as its version does), a moved namespace's pods and proxies (``istioctl proxy-status --revision``),
and the end state: one revision left, tags consistent (``istioctl tag list``), each namespace's label
resolving to the new revision, one injector webhook per revision, no IST0139 (overlapping injector
webhooks, ``istioctl analyze``).
"""

from __future__ import annotations

from typing import Any

from ..istio.istioctl import Istioctl, IstioctlFailed
from ..run import StepFailed
from ..steps import ISTIO_NS, Rehearsal
from ..steps.detect import revision_tags
from .canary_moves import INJECTION_LABEL, REV_LABEL, istiod_revisions
from .workloads import injected_namespaces

Obj = dict[str, Any]


def control_planes(ctx: Rehearsal, expected: dict[str, str]) -> dict[str, str]:
    """revision -> the version ``istioctl version --revision`` reports for it; StepFailed unless each
    revision answers at its expected version."""
    seen, problems = {}, []
    for revision, version in expected.items():
        istioctl = ctx.istioctl_from if version == ctx.settings.istio_from else ctx.istioctl_to
        versions = revision_versions(istioctl, revision)
        seen[revision] = ", ".join(versions) or "nothing"
        if versions != [version]:
            problems.append(f"revision {revision} answers {versions or 'nothing'}, not {version}")
        injector = "istio-sidecar-injector" + ("" if revision == "default" else f"-{revision}")
        if injector not in injector_names(ctx):
            problems.append(f"revision {revision} has no injector webhook {injector}")
    if problems:
        raise StepFailed("; ".join(problems))
    return seen


def injector_names(ctx: Rehearsal) -> set[str]:
    return {
        h["metadata"]["name"]
        for h in ctx.objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
    }


def revision_versions(istioctl: Istioctl, revision: str) -> list[str]:
    try:
        info = istioctl.version_info(revision=revision)
    except (IstioctlFailed, ValueError):
        return []
    return sorted({m["Info"]["version"] for m in info.get("meshVersion") or []})


def proxies_of(istioctl: Istioctl, revision: str) -> dict[str, str]:
    """``istioctl proxy-status --revision``: proxy NAME -> VERSION, as the table prints them."""
    result = istioctl.run("proxy-status", "--revision", revision, check=False)
    lines = result.stdout.splitlines()
    if result.exit_code != 0 or not lines:
        return {}
    headers = lines[0].split()
    # 1.27+ prints "NAME CLUSTER ISTIOD VERSION SUBSCRIBED TYPES" (its types in one cell with spaces after
    # VERSION); earlier ones end with VERSION after the sync columns, whose cells carry "(age)".
    at = headers.index("VERSION") if istioctl.minor.proxy_status_columns == "subscribed" else -1
    out = {}
    for line in lines[1:]:
        cells = line.split()
        if cells and "VERSION" in headers:
            out[cells[0]] = cells[at]
    return out


def validate_namespace(ctx: Rehearsal, namespace: str, version: str) -> dict[str, Any]:
    """After a namespace moved: its pods running and ready, each sidecar at ``version`` (pod spec), injected
    by the new revision, seen by that revision's istiod; traffic through the ingress for the sample apps."""
    from ..steps.mesh import send_traffic

    plan = ctx.state["canary"]
    new = plan["new revision"]
    problems: list[str] = []
    pods = {}
    for pod in ctx.objects("v1", "Pod", namespace):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])
        images = [
            c["image"]
            for c in (pod["spec"].get("containers") or []) + (pod["spec"].get("initContainers") or [])
            if c["name"] == "istio-proxy"
        ]
        tag = images[0].rsplit(":", 1)[-1].split("-")[0] if images else None
        injected_by = (pod["metadata"].get("annotations") or {}).get(REV_LABEL)
        pods[name] = {"ready": ready, "proxy": tag, "revision": injected_by}
        if status.get("phase") != "Running" or not ready:
            problems.append(f"pod {name} is {status.get('phase')} and {'ready' if ready else 'not ready'}")
        if images and (tag != version or injected_by != new):
            problems.append(
                f"pod {name} has proxy {tag} from revision {injected_by}, not {version} from {new}"
            )
    proxies = proxies_of(ctx.istioctl_to, new)
    missing = [n for n, p in pods.items() if p["proxy"] and f"{n}.{namespace}" not in proxies]
    if missing:
        problems.append(f"istioctl proxy-status --revision {new} does not list {', '.join(missing)}")
    skew = revision_skew(ctx)
    problems += [f"{proxy}: {why}" for proxy, why in sorted(skew.items())]
    findings: dict[str, Any] = {"pods": pods, "proxies of the new revision": len(proxies), "skew": skew}
    if namespace == ctx.apps_ns:
        traffic = send_traffic(ctx, ctx.settings.traffic_requests, f"/echo/canary-{namespace}")
        findings["traffic"] = {"requests": traffic["requests"], "codes": traffic["codes"]}
        if traffic["codes"] != {"200": traffic["requests"]}:
            problems.append(f"traffic answered {traffic['codes']}")
    findings["problems"] = problems
    return findings


def revision_skew(ctx: Rehearsal) -> dict[str, str]:
    """Skew judged per revision: each proxy against the control plane it is connected to (``istioctl
    proxy-status --revision <rev>`` by the istioctl of that revision's version), not against the one
    target; a proxy of the old revision at the old version is no skew while the canary moves."""
    out = {}
    for revision, version in istiod_revisions(ctx).items():
        istioctl = ctx.istioctl_from if version == ctx.settings.istio_from else ctx.istioctl_to
        for proxy, seen in proxies_of(istioctl, revision).items():
            if seen != version:
                out[proxy] = f"runs {seen}, connected to revision {revision} at {version}"
    return out


def tags_consistent(ctx: Rehearsal, expected: dict[str, str]) -> list[str]:
    """After ``tag set``: ``istioctl tag list`` shows each tag on its revision, as the webhooks say, and no
    two injector webhooks match the same pods (IST0139, ``istioctl analyze``)."""
    problems = []
    tags, listed = revision_tags(ctx), tag_list(ctx.istioctl_to)
    for tag, revision in expected.items():
        if tags.get(tag) != revision or listed.get(tag) != revision:
            problems.append(
                f"tag {tag}: the webhooks say {tags.get(tag)}, istioctl tag list {listed.get(tag)}, "
                f"not {revision}"
            )
    overlap = [m for m in ctx.istioctl_to.analyze() if m.code == "IST0139"]
    problems += [f"istioctl analyze: {m.code} {m.message}" for m in overlap[:3]]
    return problems


def end_state(ctx: Rehearsal, plan: dict[str, Any]) -> dict[str, Any]:
    old, new = plan["old revision"], plan["new revision"]
    problems: list[str] = []
    found = istiod_revisions(ctx)
    if found != {new: ctx.settings.istio_to}:
        problems.append(f"control planes left: {found}, not only {new} at {ctx.settings.istio_to}")
    if revision_versions(ctx.istioctl_to, old):
        problems.append(f"istioctl version --revision {old} still answers")
    tags = revision_tags(ctx)
    listed = tag_list(ctx.istioctl_to)
    if listed != tags:
        problems.append(f"istioctl tag list shows {listed}, the webhooks say {tags}")
    stale = {t: r for t, r in tags.items() if r != new}
    if stale:
        problems.append(f"tags not on {new}: {stale}")
    for namespace in injected_namespaces(ctx):
        labels = (
            ctx.kube.resource("v1", "Namespace").get(name=namespace).to_dict()["metadata"].get("labels") or {}
        )
        if labels.get(INJECTION_LABEL) == "enabled":
            via, revision = "default", tags.get("default")
        else:
            via = labels.get(REV_LABEL, "")
            revision = tags.get(via, via)
        if revision != new:
            problems.append(f"namespace {namespace} ({via}) resolves to {revision}, not {new}")
    injectors = sorted(
        (h["metadata"].get("labels") or {}).get(REV_LABEL, "default")
        for h in ctx.objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
        if (h["metadata"].get("labels") or {}).get("app") == "sidecar-injector"
        and "istio.io/tag" not in (h["metadata"].get("labels") or {})
    )
    if injectors != [new]:
        problems.append(f"injector webhooks per revision: {injectors}, not [{new!r}]")
    overlap = [m for m in ctx.istioctl_to.analyze() if m.code == "IST0139"]
    if overlap:
        problems.append("istioctl analyze: " + "; ".join(f"{m.code} {m.message}" for m in overlap[:3]))
    leftovers = [
        o["metadata"]["name"]
        for o in ctx.objects("v1", "ConfigMap", ISTIO_NS, f"{REV_LABEL}={old}")
        if old != "default"
    ]
    if leftovers:
        problems.append(f"the old revision's ConfigMaps are left: {leftovers}")
    return {"revisions": found, "tags": tags, "injectors": injectors, "problems": problems}


def tag_list(istioctl: Istioctl) -> dict[str, str]:
    """``istioctl tag list``: TAG -> REVISION as the table prints them."""
    lines = istioctl.run("tag", "list").stdout.splitlines()
    if not lines or not lines[0].startswith("TAG"):
        return {}
    return {cells[0]: cells[1] for line in lines[1:] if len(cells := line.split()) >= 2}
