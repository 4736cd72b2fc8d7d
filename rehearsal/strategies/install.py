"""What ``istioctl install`` does to a cluster, shared by the strategies (harness library, below
:mod:`rehearsal.strategies`): its ownership labels, its field manager, its component order and readiness
waits, its prune, the default revision tag; and the control plane's restart after a change.

The in-place strategy applies the generated manifest with these; the canary strategy applies a revision's with
the same. Nothing here decides which strategy runs.
"""

from __future__ import annotations

import json
from typing import Any

from istiofacts import catalog, operator

from .. import waits
from ..istio.istioctl import IstioctlFailed
from ..run import StepFailed
from ..steps import ISTIO_NS, Rehearsal
from .workloads import restart

Obj = dict[str, Any]


def with_operator_labels(docs: list[Obj], version: str, revision: str = "") -> list[Obj]:
    """What istioctl adds at apply time that a plain apply of the manifest forgets: its ownership labels."""
    out = []
    for doc in docs:
        doc = json.loads(json.dumps(doc))
        doc["metadata"].setdefault("labels", {}).update(
            operator.apply_time_labels(version, ISTIO_NS, revision or "default")
        )
        out.append(doc)
    return out


def api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return json.loads(body).get("message", str(exc))
        except (ValueError, AttributeError):
            pass
    return str(exc).splitlines()[0][:300]


# istioctl install's field manager (istio/istio 1.30.3 operator/pkg/install/install.go serverSideApply,
# lines 195-215: fieldOwnerOperator, Force), so a later istioctl install or upgrade owns the same fields.
ISTIOCTL_FIELD_MANAGER = "istio-operator"
# The order istioctl installs components in, each after those it depends on are ready (install.go lines
# 107-151 and componentDependencies, lines 294-306: Base before Pilot and CNI, Pilot before the gateways).
COMPONENT_ORDER = ("Base", "Pilot", "Cni", "IngressGateways", "EgressGateways")
COMPONENT_LABEL = "operator.istio.io/component"


def apply_components(ctx: Rehearsal, docs: list[Obj]) -> tuple[list[str], list[str]]:
    """Apply ``docs`` component by component in istioctl's order, waiting after each for its Deployments and
    DaemonSets to be ready (install.go applyManifestSet: WaitForResources, lines 164-193). As istioctl, a
    component that does not become ready is noted and its dependents are still applied (install.go lines
    130-141 signal them either way). Returns the components applied, in order, and those not ready."""
    by_component: dict[str, list[Obj]] = {}
    for doc in docs:
        component = (doc["metadata"].get("labels") or {}).get(COMPONENT_LABEL) or "Base"
        by_component.setdefault(component, []).append(doc)
    order = [c for c in COMPONENT_ORDER if c in by_component] + sorted(
        c for c in by_component if c not in COMPONENT_ORDER
    )
    not_ready: list[str] = []
    for component in order:
        items = by_component[component]
        ctx.kube.apply(items, default_namespace=ISTIO_NS, field_manager=ISTIOCTL_FIELD_MANAGER)
        workloads: dict[str, list[tuple[str, str]]] = {}
        for doc in items:
            if doc["kind"] in ("Deployment", "DaemonSet"):
                ns = doc["metadata"].get("namespace") or ISTIO_NS
                workloads.setdefault(ns, []).append((doc["kind"], doc["metadata"]["name"]))
        for ns, names in workloads.items():
            if not_ready:
                # One component already cannot become ready: the rest is applied, and the restart of the
                # control plane judges it (with the cause), rather than a second wait here.
                break
            try:
                waits.rollouts(ctx.kube, names, ns, ctx.settings.timeout)
            except waits.WaitFailed as exc:
                cause = exc.cause or {}
                not_ready.append(f"{component} ({cause.get('object') or ns}: {cause.get('reason') or exc})")
    return order, not_ready


def established(ctx: Rehearsal, name: str) -> bool:
    crd = ctx.kube.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition").get(name=name).to_dict()
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (crd.get("status") or {}).get("conditions", [])
    )


def revision_of(ctx: Rehearsal) -> str:
    return str(ctx.settings.install_spec(ctx.settings.istio_to).get("revision") or "")


def _prune_selector(ctx: Rehearsal) -> str:
    return (
        f"operator.istio.io/managed=Reconcile,istio.io/rev={revision_of(ctx) or 'default'},"
        f"install.operator.istio.io/owning-resource-namespace={ISTIO_NS},operator.istio.io/component"
    )


def _ref(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace or ''}/{name}"


def prune_candidates(ctx: Rehearsal, docs: list[Obj]) -> list[str]:
    """What applying ``docs`` as istioctl install does would delete, as KIND/NAMESPACE/NAME (namespace empty
    when cluster-scoped): objects an istioctl install of this revision owns (its ownership labels: managed by
    the operator, this revision, a component; istio/istio 1.30.3 operator/pkg/install/install.go prune,
    lines 229-292), in any namespace, that the target does not render, except what is marked
    owning-resource-not-pruned (the tag webhooks). Unlike istioctl, any istioctl version's objects count: an
    upgrade is exactly when old ones are left."""
    rendered = {
        _ref(
            d["kind"],
            d["metadata"].get("namespace") or ("" if _cluster_scoped(d) else ISTIO_NS),
            d["metadata"]["name"],
        )
        for d in docs
    }
    out = []
    for api_version, kind in catalog.PRUNED_KINDS:
        for obj in ctx.objects(api_version, kind, None, label_selector=_prune_selector(ctx)):
            meta = obj["metadata"]
            if (meta.get("labels") or {}).get(
                "install.operator.istio.io/owning-resource-not-pruned"
            ) == "true":
                continue
            ref = _ref(kind, meta.get("namespace"), meta["name"])
            if ref not in rendered and not meta.get("deletionTimestamp"):
                out.append(ref)
    return sorted(out)


def silent_prunes(ctx: Rehearsal, docs: list[Obj]) -> list[str]:
    """The would-be prunes that lose something the user runs: every object of a component instance (its
    namespace and ``app`` label: a gateway, the CNI DaemonSet and their Services, accounts and roles) whose
    Deployment or DaemonSet the target does not render. What the target's chart merely stopped rendering for
    a workload it keeps (1.28's single-replica PodDisruptionBudgets) is pruned as istioctl would, and
    listed."""
    kept = {
        ((d["metadata"].get("namespace") or ISTIO_NS), (d["metadata"].get("labels") or {}).get("app", ""))
        for d in docs
        if d["kind"] in ("Deployment", "DaemonSet")
    }
    kept_apps = {app for _, app in kept}
    refs = prune_candidates(ctx, docs)
    kinds = {kind: api_version for api_version, kind in catalog.PRUNED_KINDS}
    out = []
    for ref in refs:
        kind, namespace, name = ref.split("/", 2)
        try:
            obj = ctx.kube.resource(kinds[kind], kind).get(name=name, namespace=namespace or None).to_dict()
        except Exception:
            continue
        app = (obj["metadata"].get("labels") or {}).get("app", "")
        if (namespace, app) in kept or (not namespace and app in kept_apps):
            continue
        out.append(ref)
    return out


_CLUSTER_KINDS = {
    "ClusterRole",
    "ClusterRoleBinding",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "CustomResourceDefinition",
    "Namespace",
}


def _cluster_scoped(doc: Obj) -> bool:
    return doc["kind"] in _CLUSTER_KINDS


def prune(ctx: Rehearsal, docs: list[Obj]) -> list[str]:
    """Delete what the target no longer renders (``prune_candidates``): by then each was allowed
    (``--allow-prune``); it is in the backup, and the rollback brings it back."""
    pruned = []
    kinds = {kind: api_version for api_version, kind in catalog.PRUNED_KINDS}
    for ref in prune_candidates(ctx, docs):
        kind, namespace, name = ref.split("/", 2)
        ctx.kube.resource(kinds[kind], kind).delete(name=name, namespace=namespace or None)
        pruned.append(ref)
    return pruned


def ensure_default_tag(ctx: Rehearsal) -> str:
    """What istioctl install does after applying a default (revision-less) installation: (re)create the
    default revision tag, which deactivates the revision's own injector webhooks (operator/pkg/webhook
    WebhooksToDeploy; istioctl/pkg/tag). A plain apply re-activates them; ``istioctl tag set default`` puts it
    right."""
    if revision_of(ctx):
        return ""
    try:
        ctx.istioctl_to.tag_set("default", "default", overwrite=True)
    except IstioctlFailed as exc:
        raise StepFailed(f"istioctl tag set default --revision default: {exc}") from None
    return "istioctl tag set default --revision default --overwrite (the default tag webhook)"


def restart_control_plane(ctx: Rehearsal, backup: dict[str, list[Obj]]) -> None:
    """Wait for (or start) the control plane's rollout when its image, config or CNI changed."""
    s = ctx.settings
    with ctx.run.step("restart control plane") as step:
        before = backup.get("istio-system", [])
        now = {
            (o["kind"], o["metadata"]["name"]): o
            for o in ctx.objects("apps/v1", "Deployment", ISTIO_NS)
            + ctx.objects("apps/v1", "DaemonSet", ISTIO_NS)
            + ctx.objects("v1", "ConfigMap", ISTIO_NS)
        }
        reasons = []
        for kind, name in [(k, n) for k, n in now if k in ("Deployment", "DaemonSet")]:
            old = next((o for o in before if o["kind"] == kind and o["metadata"]["name"] == name), None)
            image_now = now[(kind, name)]["spec"]["template"]["spec"]["containers"][0]["image"]
            image_then = old["spec"]["template"]["spec"]["containers"][0]["image"] if old else None
            if image_now != image_then:
                reasons.append(f"{kind.lower()} {name}: image {image_then or '(new)'} -> {image_now}")
        mesh_then = next(
            (
                o.get("data", {}).get("mesh")
                for o in before
                if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "istio"
            ),
            None,
        )
        mesh_now = (now.get(("ConfigMap", "istio")) or {}).get("data", {}).get("mesh")
        config_only = mesh_then != mesh_now and not any("istiod" in r for r in reasons)
        if config_only:
            reasons.append("mesh config changed: restarting istiod to load it")
            restart(ctx, "Deployment", "istiod", ISTIO_NS)
        if not reasons:
            step.not_needed("no control plane image, config or CNI change")
            return
        # The control plane first: a gateway that cannot become ready because istiod never did is not the
        # cause.
        workloads = sorted(
            ((k, n) for k, n in now if k in ("Deployment", "DaemonSet")),
            key=lambda w: not w[1].startswith("istiod"),
        )
        waits.rollouts(ctx.kube, workloads, ISTIO_NS, s.timeout)
        step.note("; ".join(reasons))
