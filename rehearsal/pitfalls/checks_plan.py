"""Pitfall checks that need the plan, the two renders (target and rollback) and the catalog (harness library):
removed values, the Kubernetes range, PodDisruptionBudgets, version skew and the data plane ahead, native
sidecars, default flips, pruning."""

from __future__ import annotations

from typing import Any

from istiofacts import catalog, operator, registries
from istiofacts import pitfall_facts as facts

from . import Finding, Inputs, check, control_plane_version, name, proxy_version, selector_matches

Obj = dict[str, Any]


@check("unknown-values")
def unknown_values(inputs: Inputs) -> list[Finding]:
    """The plan decoded as the target's istioctl decodes it (values_types.proto of the target minor)."""
    try:
        operator.validate(inputs.plan, inputs.target)
    except operator.OperatorError as exc:
        removed = [
            p for p in catalog.minor_of(inputs.target).removed_values() if _has(inputs.plan, f"values.{p}")
        ]
        hint = f"; removed: {', '.join(removed)}" if removed else ""
        return [
            Finding(
                "unknown-values",
                "error",
                f"istioctl {inputs.target} rejects the plan: {exc}{hint}",
                tuple(f"values.{p}" for p in removed),
            )
        ]
    if inputs.target_render is None and "unknown field" in inputs.target_render_error:
        return [
            Finding(
                "unknown-values",
                "error",
                f"istioctl {inputs.target} manifest generate: {inputs.target_render_error[:300]}",
            )
        ]
    return []


def _has(spec: Obj, path: str) -> bool:
    return operator.get(spec, path) is not None


@check("k8s-out-of-range")
def k8s_range(inputs: Inputs) -> list[Finding]:
    """The cluster's Kubernetes against the target's supported range (and precheck's MinK8SVersion, IST0142),
    and against the source's, which a rollback needs."""
    findings = []
    k8s = inputs.k8s_version
    target = catalog.minor_of(inputs.target)
    minimum = facts.precheck_min_k8s(inputs.target)  # per patch (MinK8SVersion bumps inside a minor)
    have = facts.version_key(k8s)[:2]
    below = have < max(facts.version_key(target.k8s_min)[:2], facts.version_key(minimum)[:2])
    if below or not catalog.supports_kubernetes(inputs.target, k8s):
        findings.append(
            Finding(
                "k8s-out-of-range",
                "error" if below else "warning",
                f"Kubernetes {k8s} is {'below' if below else 'above'} Istio {target.minor}'s supported range "
                f"{target.k8s_min}-{target.k8s_max} (precheck IST0142 minimum {minimum} at {inputs.target})",
                ("Node versions",),
            )
        )
    if not catalog.supports_kubernetes(inputs.source, k8s):
        source = catalog.minor_of(inputs.source)
        findings.append(
            Finding(
                "k8s-out-of-range",
                "warning",
                f"a rollback to {inputs.source} runs on Kubernetes {k8s}, outside "
                f"Istio {source.minor}'s range {source.k8s_min}-{source.k8s_max}",
            )
        )
    return findings


def _blocking_pdbs(docs: list[Obj]) -> list[str]:
    """PodDisruptionBudgets whose minAvailable is at least the replicas of the Deployment they select (no
    disruption allowed: a drain cannot evict the pod)."""
    out = []
    deploys = [d for d in docs if d.get("kind") == "Deployment"]
    hpas = {
        (d["metadata"].get("namespace"), d["spec"]["scaleTargetRef"]["name"]): int(
            d["spec"].get("minReplicas") or 1
        )
        for d in docs
        if d.get("kind") == "HorizontalPodAutoscaler"
    }
    for pdb in (d for d in docs if d.get("kind") == "PodDisruptionBudget"):
        spec = pdb.get("spec") or {}
        minimum = spec.get("minAvailable")
        if not isinstance(minimum, int):
            continue
        ns = pdb["metadata"].get("namespace") or "istio-system"
        for d in deploys:
            if (d["metadata"].get("namespace") or "istio-system") != ns:
                continue
            labels = ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not selector_matches(spec.get("selector") or {}, labels):
                continue
            replicas = hpas.get((ns, d["metadata"]["name"]), int(d["spec"].get("replicas") or 1))
            if minimum >= replicas:
                out.append(
                    f"PodDisruptionBudget {ns}/{pdb['metadata']['name']} (minAvailable {minimum}, "
                    f"{replicas} replica of Deployment {d['metadata']['name']})"
                )
    return out


@check("single-replica-pdb")
def single_replica_pdb(inputs: Inputs) -> list[Finding]:
    """PodDisruptionBudgets that allow no disruption: live now, in the target render, and in the rollback
    render (up to 1.27 istiod's PDB is rendered even with one replica; from 1.28 only with more,
    PR #57202)."""
    findings = []
    now = _blocking_pdbs(
        inputs.kind("PodDisruptionBudget")
        + inputs.kind("Deployment")
        + inputs.kind("HorizontalPodAutoscaler")
    )
    if now:
        findings.append(
            Finding(
                "single-replica-pdb",
                "warning",
                "PodDisruptionBudgets that allow no disruption: "
                "kubectl drain and node-pool upgrades block ('Cannot evict pod as it would violate the "
                "pod's disruption budget')",
                tuple(now),
            )
        )
    target = _blocking_pdbs(inputs.target_render or [])
    if target:
        findings.append(
            Finding(
                "single-replica-pdb",
                "warning",
                f"the target {inputs.target} renders PodDisruptionBudgets that allow no disruption",
                tuple(target),
            )
        )
    rollback = _blocking_pdbs(inputs.rollback_render or [])
    if rollback and not target:
        findings.append(
            Finding(
                "single-replica-pdb",
                "warning",
                f"a rollback to {inputs.source} brings back "
                "PodDisruptionBudgets that allow no disruption (the target prunes them): drains block "
                "again after the rollback",
                tuple(rollback),
            )
        )
    return findings


@check("xds-skew-nack")
def xds_skew(inputs: Inputs) -> list[Finding]:
    """Live proxies the target's istiod is known to send config they reject (SKEW_BREAKS, by patch), and a
    data plane already ahead of the control plane (a rollback or upgrade from here leaves proxies newer than
    istiod, istio/istio#51459)."""
    findings = []
    broken, ahead = [], []
    control = control_plane_version(inputs.live, inputs.istio_namespace) or inputs.source
    reasons = set()
    for pod in inputs.kind("Pod"):
        version = proxy_version(pod)
        if version is None:
            continue
        for b in facts.skew_breaks(inputs.target, version):
            broken.append(f"{name(pod)} (proxy {version})")
            reasons.add(f"{b.reason}; fixed in {', '.join(b.fixed_in)} ({b.issue})")
        if facts.version_key(version) > facts.version_key(control):
            ahead.append(f"{name(pod)} (proxy {version}, istiod {control})")
    if broken:
        findings.append(
            Finding(
                "xds-skew-nack",
                "error",
                f"istiod {inputs.target} sends config these proxies reject: " + "; ".join(sorted(reasons)),
                tuple(broken),
            )
        )
    if ahead:
        findings.append(
            Finding(
                "xds-skew-nack",
                "error",
                "the data plane is ahead of the control plane: proxies newer "
                "than istiod get config they were not built for (and a rollback keeps them ahead)",
                tuple(ahead),
            )
        )
    return findings


def _plan_env(plan: Obj, var: str) -> Any:
    return operator.get(plan, f"values.pilot.env.{var}")


@check("native-sidecar-flip")
def native_sidecars(inputs: Inputs) -> list[Finding]:
    """Crossing 1.27 on kubelets >= 1.33 turns sidecars into native init containers (ENABLE_NATIVE_SIDECARS
    auto); other mutating webhooks on pods built on older k8s.io/api drop restartPolicy (#49221)."""
    if (
        not catalog.minor_of(inputs.target).native_sidecars_default
        or catalog.minor_of(inputs.source).native_sidecars_default
    ):
        return []
    compat = operator.get(inputs.plan, "compatibilityVersion") or operator.get(
        inputs.plan, "values.compatibilityVersion"
    )
    if (compat and facts.version_key(str(compat))[:2] <= (1, 26)) or str(
        _plan_env(inputs.plan, "ENABLE_NATIVE_SIDECARS")
    ).lower() == "false":
        return []
    kubelets = [
        ((n.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "") for n in inputs.kind("Node")
    ] or [inputs.k8s_version]
    if not any(k and facts.version_key(k)[:2] >= (1, 33) for k in kubelets):
        return []
    others = []
    for cfg in inputs.kind("MutatingWebhookConfiguration"):
        labels = cfg["metadata"].get("labels") or {}
        if "istio.io/rev" in labels or any(
            str(w.get("name", "")).endswith("istio.io") for w in cfg.get("webhooks") or []
        ):
            continue
        for w in cfg.get("webhooks") or []:
            if any(
                "pods" in (r.get("resources") or []) or "*" in (r.get("resources") or [])
                for r in w.get("rules") or []
            ):
                others.append(
                    f"MutatingWebhookConfiguration {cfg['metadata']['name']} (webhook {w.get('name')})"
                )
    if not others:
        return []
    return [
        Finding(
            "native-sidecar-flip",
            "warning",
            f"Istio {catalog.minor_of(inputs.target).minor} injects "
            "istio-proxy as a native sidecar (an init container with restartPolicy Always) on these "
            "kubelets; "
            "other webhooks that mutate pods may drop restartPolicy and get pods refused ('may not be "
            "set for "
            "init containers without restartPolicy=Always')",
            tuple(others),
        )
    ]


@check("default-flip")
def default_flip(inputs: Inputs) -> list[Finding]:
    """The defaults the minors after the source's changed (compatibility-version-*.yaml), that the plan
    neither pins nor keeps with compatibilityVersion. Advisory."""
    if operator.get(inputs.plan, "compatibilityVersion") or operator.get(
        inputs.plan, "values.compatibilityVersion"
    ):
        return []
    flips = [
        (minor, setting, source)
        for minor, setting, source in facts.default_flips(inputs.source, inputs.target)
        if operator.get(inputs.plan, f"values.{setting}") is None
        and operator.get(inputs.plan, setting) is None
    ]
    if not flips:
        return []
    return [
        Finding(
            "default-flip",
            "warning",
            f"defaults that change between {inputs.source} and {inputs.target} "
            f"and the plan does not pin (keep them with --set compatibilityVersion="
            f"{catalog.minor_name(inputs.source)}): " + ", ".join(f"{s} ({m}, {src})" for m, s, src in flips),
            tuple(s for _, s, _ in flips),
        )
    ]


@check("install-prunes")
def install_prunes(inputs: Inputs) -> list[Finding]:
    """Live objects carrying the install's ownership labels that the target render lacks: istioctl install
    prunes them (operator/pkg/uninstall/prune.go, by owner labels; not-pruned label excepted)."""
    if inputs.target_render is None:
        return []
    kinds = {k for _, k in catalog.PRUNED_KINDS}
    rendered = {
        (d.get("kind"), d["metadata"].get("namespace") or "", d["metadata"]["name"])
        for d in inputs.target_render
    }
    tag_webhooks = {"istio-revision-tag-default", "istiod-default-validator"}
    gone = []
    for kind in sorted(kinds):
        for obj in inputs.kind(kind):
            meta = obj["metadata"]
            labels = meta.get("labels") or {}
            if (
                "install.operator.istio.io/owning-resource" not in labels
                and "operator.istio.io/component" not in labels
            ):
                continue
            if (
                labels.get("install.operator.istio.io/owning-resource-not-pruned") == "true"
                or meta["name"] in tag_webhooks
            ):
                continue
            if meta.get("ownerReferences") or []:
                continue
            if (kind, meta.get("namespace") or "", meta["name"]) not in rendered:
                gone.append(name(dict(obj, kind=kind)))
    if not gone:
        return []
    return [
        Finding(
            "install-prunes",
            "warning",
            "objects of the installation the target render does not have: "
            "istioctl install prunes them ('Removed Deployment:...'); put them in the plan to keep them",
            tuple(gone),
        )
    ]


@check("debug-auth")
def debug_auth(inputs: Inputs) -> list[Finding]:
    """Crossing into the releases that enforce namespace-based authorization on istiod's debug endpoints
    (ENABLE_DEBUG_ENDPOINT_AUTH, default true): debug tooling outside the Istio namespace (Kiali) gets nothing
    or 401/403 from syncz/config_dump, unless the plan keeps the old behaviour or allows its namespace."""
    if facts.debug_auth(inputs.source) or not facts.debug_auth(inputs.target):
        return []
    env = operator.get(inputs.plan, "values.pilot.env") or {}
    if str(env.get("ENABLE_DEBUG_ENDPOINT_AUTH", "")).lower() == "false":
        return []
    allowed = set(str(env.get("DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES", "")).split(","))
    tools = []
    for d in inputs.kind("Deployment"):
        meta = d["metadata"]
        labels = meta.get("labels") or {}
        ns = meta.get("namespace") or ""
        who = {meta["name"], labels.get("app", ""), labels.get("app.kubernetes.io/name", "")}
        if ns != inputs.istio_namespace and ns not in allowed and who & set(facts.DEBUG_TOOLS):
            tools.append(name(dict(d, kind="Deployment")))
    if not tools:
        return []
    return [
        Finding(
            "debug-auth",
            "warning",
            f"istiod {inputs.target} authorizes its debug endpoints by namespace "
            f"(ENABLE_DEBUG_ENDPOINT_AUTH, on by default; {inputs.source} does not): these tools outside "
            f"{inputs.istio_namespace} lose proxy-status and config dumps ('is not authorized to receive "
            "debug info')",
            tuple(tools),
        )
    ]


def _render_images(render: list[Obj] | None) -> list[str]:
    images = []
    for doc in render or []:
        if doc.get("kind") not in ("Deployment", "DaemonSet"):
            continue
        spec = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
            if container.get("image"):
                images.append(str(container["image"]))
    return list(dict.fromkeys(images))


@check("retired-registry")
def retired_registry(inputs: Inputs) -> list[Finding]:
    """Images of the target and of the rollback render (the source, reinstalled) on a registry Istio
    retires (istiofacts.registries: registry.istio.io and gcr.io/istio-release, December 2026): gone now is
    an error, gone within 30 days a warning, since a rollback after that date cannot pull."""
    if inputs.at is None:
        return []
    findings = []
    for which, version, render in (
        ("the target", inputs.target, inputs.target_render),
        ("the rollback", inputs.source, inputs.rollback_render),
    ):
        gone = [i for i in _render_images(render) if registries.unavailable(i, inputs.at)]
        soon = {
            i: when
            for i in _render_images(render)
            if i not in gone and (when := registries.retires_within(i, inputs.at)) is not None
        }
        if gone:
            findings.append(
                Finding(
                    "retired-registry",
                    "error",
                    f"{which} (Istio {version}) pulls from a registry that is gone: "
                    f"{registries.unavailable(gone[0], inputs.at)}",
                    tuple(gone),
                )
            )
        elif soon:
            day = min(soon.values()).strftime("%Y-%m-%d %H:%M UTC")
            findings.append(
                Finding(
                    "retired-registry",
                    "warning",
                    f"{which} (Istio {version}) pulls from a registry Istio retires on {day}: after that "
                    "date this install, and a rollback to it, fails with ErrImagePull",
                    tuple(soon),
                )
            )
    return findings
