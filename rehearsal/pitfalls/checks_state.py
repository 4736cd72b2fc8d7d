"""Pitfall checks that read the cluster's own objects (webhooks, namespaces, pods, CRDs, EnvoyFilters), as any
API client sees them (harness library). Each cites the Istio behaviour it relies on."""

from __future__ import annotations

import base64
import re
from typing import Any

from istiofacts import pitfall_facts as facts

from . import Finding, Inputs, check, name, proxy_version, selector_matches

Obj = dict[str, Any]


def _istio_webhook(cfg: Obj) -> bool:
    """webhook.go isIstioWebhook / extractRevisions: a configuration with an istio.io/rev label or a webhook
    name ending in istio.io."""
    labels = cfg["metadata"].get("labels") or {}
    return "istio.io/rev" in labels or any(
        str(w.get("name", "")).endswith("istio.io") for w in cfg.get("webhooks") or []
    )


def _revisions(cfgs: list[Obj]) -> set[str]:
    revs: set[str] = set()
    for cfg in cfgs:
        labels = cfg["metadata"].get("labels") or {}
        if "istio.io/rev" in labels:
            revs.add(labels["istio.io/rev"])
        for w in cfg.get("webhooks") or []:
            for sel in (w.get("namespaceSelector"), w.get("objectSelector")):
                if not sel:
                    continue
                if "istio.io/rev" in (sel.get("matchLabels") or {}):
                    revs.add(sel["matchLabels"]["istio.io/rev"])
                for expr in sel.get("matchExpressions") or []:
                    if expr.get("key") == "istio.io/rev":
                        revs.update(expr.get("values") or [])
    return revs


@check("injector-overlap")
def injector_overlap(inputs: Inputs) -> list[Finding]:
    """IST0139, as pkg/config/analysis/analyzers/webhook/webhook.go computes it: every namespace/object label
    permutation (none, istio-injection / sidecar.istio.io/inject enabled or disabled, each with every
    revision) must match at most one Istio injection webhook."""
    cfgs = [c for c in inputs.kind("MutatingWebhookConfiguration") if _istio_webhook(c)]
    revs = sorted(_revisions(cfgs))
    ns_sets: list[dict[str, str]] = [{}, {"istio-injection": "enabled"}, {"istio-injection": "disabled"}]
    obj_sets: list[dict[str, str]] = [
        {},
        {"sidecar.istio.io/inject": "true"},
        {"sidecar.istio.io/inject": "false"},
    ]
    ns_sets += [dict(base, **{"istio.io/rev": r}) for r in revs for base in ns_sets[:3]]
    obj_sets += [dict(base, **{"istio.io/rev": r}) for r in revs for base in obj_sets[:3]]
    overlaps: dict[str, set[str]] = {}
    for nl in ns_sets:
        for ol in obj_sets:
            matches = {
                f"{c['metadata']['name']}/{w['name']}"
                for c in cfgs
                for w in c.get("webhooks") or []
                if selector_matches(w.get("namespaceSelector"), nl)
                and selector_matches(w.get("objectSelector"), ol)
            }
            if len(matches) > 1:
                for m in matches:
                    overlaps.setdefault(m, set()).update(matches - {m})
    if not overlaps:
        return []
    configs = sorted({m.split("/")[0] for m in overlaps})
    first = sorted(overlaps)[0]
    return [
        Finding(
            "injector-overlap",
            "error",
            f"IST0139: webhook {first} overlaps with others: {sorted(overlaps[first])}. This may cause "
            "injection to occur twice, and istioctl install refuses to create the default tag over it "
            "('creating default tag would conflict')",
            tuple(f"MutatingWebhookConfiguration {c}" for c in configs),
        )
    ]


def _injection_namespaces(inputs: Inputs) -> list[tuple[str, dict[str, str]]]:
    out = []
    for ns in inputs.kind("Namespace"):
        labels = ns["metadata"].get("labels") or {}
        if labels.get("istio-injection") == "enabled" or (
            labels.get("istio.io/rev") and labels.get("istio-injection") != "disabled"
        ):
            out.append((ns["metadata"]["name"], labels))
    return out


@check("tag-drift")
def tag_drift(inputs: Inputs) -> list[Finding]:
    """Namespaces labelled for injection that no injection webhook matches (a tag deleted, #47423, or never
    created, #55980), and validators a removed tag left behind (#60537). Matching is the API server's
    (namespaceSelector / objectSelector of each webhook, a pod without labels)."""
    cfgs = [c for c in inputs.kind("MutatingWebhookConfiguration") if _istio_webhook(c)]
    findings = []
    orphaned = []
    for ns, labels in _injection_namespaces(inputs):
        injected = any(
            selector_matches(w.get("namespaceSelector"), labels)
            and selector_matches(w.get("objectSelector"), {})
            for c in cfgs
            for w in c.get("webhooks") or []
        )
        if not injected:
            label = (
                "istio-injection=enabled"
                if labels.get("istio-injection") == "enabled"
                else f"istio.io/rev={labels['istio.io/rev']}"
            )
            orphaned.append(f"Namespace {ns} ({label})")
    if orphaned:
        tags = sorted(
            (c["metadata"].get("labels") or {}).get("istio.io/tag", "")
            for c in cfgs
            if (c["metadata"].get("labels") or {}).get("istio.io/tag")
        )
        findings.append(
            Finding(
                "tag-drift",
                "error",
                "namespaces labelled for injection that no injection webhook matches: pods the upgrade "
                f"restarts there come back without a sidecar (IST0103); tags present: "
                f"{', '.join(tags) or 'none'}",
                tuple(orphaned),
            )
        )
    mutating_tags = {
        (c["metadata"].get("labels") or {}).get("istio.io/tag")
        for c in inputs.kind("MutatingWebhookConfiguration")
    }
    left = [
        c
        for c in inputs.kind("ValidatingWebhookConfiguration")
        if (c["metadata"].get("labels") or {}).get("istio.io/tag")
        and (c["metadata"].get("labels") or {}).get("istio.io/tag") not in mutating_tags
    ]
    if left:
        findings.append(
            Finding(
                "tag-drift",
                "warning",
                "validating webhooks of revision tags that no longer exist (istioctl tag remove leaves them "
                "up to 1.30, #60537): they keep validating for a revision nobody chose",
                tuple(name(c) for c in left),
            )
        )
    return findings


@check("webhook-gap")
def webhook_gap(inputs: Inputs) -> list[Finding]:
    """Istio webhooks whose service does not exist (a removed revision: 'service "istiod-1-11-2" not found'),
    and an istiod the target renders with one replica (no endpoints while it restarts)."""
    services = {(s["metadata"].get("namespace"), s["metadata"]["name"]) for s in inputs.kind("Service")}
    findings = []
    dangling_fail: list[str] = []
    dangling_ignore: list[str] = []
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for cfg in inputs.kind(kind):
            if not _istio_webhook(cfg):
                continue
            for w in cfg.get("webhooks") or []:
                svc = (w.get("clientConfig") or {}).get("service")
                if svc and (svc.get("namespace"), svc.get("name")) not in services:
                    target = f"{svc.get('namespace')}/{svc.get('name')}"
                    where = f"{kind} {cfg['metadata']['name']} (webhook {w.get('name')} -> service {target})"
                    (dangling_fail if w.get("failurePolicy", "Fail") == "Fail" else dangling_ignore).append(
                        where
                    )
    if dangling_fail:
        findings.append(
            Finding(
                "webhook-gap",
                "error",
                "Istio webhooks call a service that does not exist, with failurePolicy "
                "Fail: every matching request is refused ('service ... not found')",
                tuple(dangling_fail),
            )
        )
    if dangling_ignore:
        findings.append(
            Finding(
                "webhook-gap",
                "warning",
                "Istio webhooks call a service that does not exist (failurePolicy "
                "Ignore: their validation or injection is silently skipped)",
                tuple(dangling_ignore),
            )
        )
    replicas = _istiod_replicas(inputs.target_render or [])
    if replicas is not None and replicas < 2:
        findings.append(
            Finding(
                "webhook-gap",
                "warning",
                f"the target renders istiod with {replicas} replica: while it restarts "
                "the validation and injection webhooks have no endpoints ('no endpoints available for "
                'service "istiod"\'), so pods and Istio resources created then are refused or not injected',
                ("Deployment istio-system/istiod",),
            )
        )
    return findings


def _istiod_replicas(docs: list[Obj]) -> int | None:
    deploys = [
        d for d in docs if d.get("kind") == "Deployment" and str(d["metadata"]["name"]).startswith("istiod")
    ]
    if not deploys:
        return None
    hpas = [
        d
        for d in docs
        if d.get("kind") == "HorizontalPodAutoscaler"
        and str((d.get("spec") or {}).get("scaleTargetRef", {}).get("name", "")).startswith("istiod")
    ]
    if hpas:
        return int(hpas[0]["spec"].get("minReplicas") or 1)
    return int(deploys[0]["spec"].get("replicas") or 1)


@check("stale-sidecars")
def stale_sidecars(inputs: Inputs) -> list[Finding]:
    """Injected pods the restart step cannot move onto the new sidecar: bare Pods, Jobs' pods, StatefulSets
    with updateStrategy OnDelete, and pods pinning sidecar.istio.io/proxyImage (istio/istio#41354)."""
    ondelete = {
        (s["metadata"].get("namespace"), s["metadata"]["name"])
        for s in inputs.kind("StatefulSet")
        if ((s.get("spec") or {}).get("updateStrategy") or {}).get("type") == "OnDelete"
    }
    stuck = []
    for pod in inputs.kind("Pod"):
        meta = pod["metadata"]
        if meta.get("namespace") == inputs.istio_namespace or proxy_version(pod) is None:
            continue
        owners = meta.get("ownerReferences") or []
        why = None
        if (meta.get("annotations") or {}).get("sidecar.istio.io/proxyImage"):
            why = "pins sidecar.istio.io/proxyImage"
        elif not owners:
            why = "a bare Pod (no controller restarts it)"
        elif owners[0].get("kind") == "Job":
            why = "a Job's pod"
        elif (
            owners[0].get("kind") == "StatefulSet"
            and (meta.get("namespace"), owners[0].get("name")) in ondelete
        ):
            why = "a StatefulSet with updateStrategy OnDelete"
        if why:
            stuck.append(f"Pod {meta.get('namespace')}/{meta['name']}: {why}")
    if not stuck:
        return []
    return [
        Finding(
            "stale-sidecars",
            "warning",
            "injected pods a rollout restart does not move onto the new "
            "sidecar: they stay at their proxy version after the upgrade (IST0158)",
            tuple(stuck),
        )
    ]


@check("stale-sidecars", phase="during")
def stale_sidecars_after(inputs: Inputs) -> list[Finding]:
    """After the workloads were restarted: every injected pod in the restart scope (its istio-proxy, in
    containers or initContainers in native mode) must run the target version. Pods the run does not restart
    (outside --restart-namespaces, finished, Jobs') are judged apart by the validations, not here."""
    old = [
        f"Pod {p['metadata'].get('namespace')}/{p['metadata']['name']} runs proxy {proxy_version(p)}"
        for p in inputs.kind("Pod")
        if proxy_version(p) not in (None, inputs.target)
        and not p["metadata"].get("deletionTimestamp")
        and f"{p['metadata']['name']}.{p['metadata'].get('namespace')}" not in inputs.apart
    ]
    if not old:
        return []
    return [
        Finding(
            "stale-sidecars",
            "error",
            f"pods still on an old proxy after the restart, not {inputs.target} "
            "(the data plane is left behind the control plane)",
            tuple(old),
            phase="during",
        )
    ]


@check("gateway-api-crd-window")
def gateway_api_window(inputs: Inputs) -> list[Finding]:
    """Gateway API CRDs whose bundle-version the target's istiod ignores (crdwatcher minimum/maximum bundle
    versions; a CRD without the annotation is ignored too), and those a rollback to the source would
    ignore."""
    findings = []
    for crd in inputs.kind("CustomResourceDefinition"):
        crd_name = crd["metadata"]["name"]
        if not crd_name.endswith(".gateway.networking.k8s.io"):
            continue
        bundle = (crd["metadata"].get("annotations") or {}).get(facts.BUNDLE_VERSION_ANNOTATION)
        kind = ((crd.get("spec") or {}).get("names") or {}).get("kind", "")
        users = tuple(name(o) for o in inputs.kind(kind)) if kind else ()
        for version, role in ((inputs.target, "the target"), (inputs.source, "a rollback to the source")):
            for bound in facts.gateway_api_bounds(version, crd_name):
                why = "has no bundle-version annotation" if not bundle else bound.rejects(bundle)
                if not why:
                    continue
                severity = "error" if role == "the target" else "warning"
                findings.append(
                    Finding(
                        "gateway-api-crd-window",
                        severity,
                        f"istiod {version} ({role}) ignores CRD {crd_name} bundle-version {bundle or '-'}: "
                        f"{why} ({bound.source}); its routes stop being programmed (attachedRoutes 0)",
                        (f"CustomResourceDefinition {crd_name}", *users[:10]),
                    )
                )
    return findings


@check("envoyfilter-break")
def envoyfilter_break(inputs: Inputs) -> list[Finding]:
    """EnvoyFilter patches whose match.proxy.proxyVersion regex matches the source's proxies but not the
    target's: istiod (pilot/pkg/model/envoyfilter.go proxyMatch, Go regexp MatchString) silently stops
    applying them as pods are restarted onto the new proxy."""
    stop = []
    for ef in inputs.kind("EnvoyFilter"):
        for i, patch in enumerate((ef.get("spec") or {}).get("configPatches") or []):
            regex = (((patch.get("match") or {}).get("proxy") or {}).get("proxyVersion")) or ""
            if not regex:
                continue
            try:
                pattern = re.compile(regex)
            except re.error:
                continue
            if pattern.search(inputs.source) and not pattern.search(inputs.target):
                stop.append(f"{name(ef)} configPatches[{i}] proxyVersion {regex!r}")
    if not stop:
        return []
    return [
        Finding(
            "envoyfilter-break",
            "error",
            f"EnvoyFilter patches match the {inputs.source} proxies but not "
            f"{inputs.target}: they stop applying, silently, to every restarted pod",
            tuple(stop),
        )
    ]


@check("stale-cabundle")
def stale_cabundle(inputs: Inputs) -> list[Finding]:
    """Istio webhooks whose caBundle does not hold the mesh's root certificate (istio-ca-root-cert in the
    Istio namespace): the API server answers x509 errors, or fails open. Needs both to be present (a real
    cluster); otherwise nothing to compare."""
    root = next(
        (
            (c.get("data") or {}).get("root-cert.pem", "").strip()
            for c in inputs.kind("ConfigMap")
            if c["metadata"]["name"] == "istio-ca-root-cert"
            and c["metadata"].get("namespace") == inputs.istio_namespace
        ),
        "",
    )
    if not root:
        return []
    stale = []
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for cfg in inputs.kind(kind):
            if not _istio_webhook(cfg):
                continue
            for w in cfg.get("webhooks") or []:
                bundle = (w.get("clientConfig") or {}).get("caBundle")
                if not bundle:
                    continue
                try:
                    text = base64.b64decode(bundle).decode()
                except ValueError:
                    text = ""
                if root.split("-----END")[0] not in text:
                    stale.append(f"{kind} {cfg['metadata']['name']} (webhook {w.get('name')})")
    if not stale:
        return []
    return [
        Finding(
            "stale-cabundle",
            "warning",
            "Istio webhooks with a caBundle that does not hold the root "
            "certificate of istio-ca-root-cert: x509: certificate signed by unknown authority",
            tuple(stale),
        )
    ]
