"""The upgrade itself: precheck, generate, inspect, dry-run, apply, restart the control plane, restart
workloads.

Each step decides from the cluster whether it is needed and records why; ``apply`` registers the restore of
the backup in the journal before it changes anything.
"""

from __future__ import annotations

import json
import time
from typing import Any

import yaml

from istiofacts import catalog, operator

from .. import waits
from ..istio.istioctl import IstioctlFailed, IstioctlStopped
from ..istio.watch import install_watched
from ..kube import FAST_LOADER
from ..probe import targets as probe
from ..run import StepFailed
from . import ISTIO_NS, RUN_LABEL, Rehearsal, wait_for
from .mesh import plan_files

Obj = dict[str, Any]


def precheck(ctx: Rehearsal) -> None:
    """``istioctl x precheck --from-version <source minor>`` of the target (its upgrade checks), plus the
    harness's own: path, Kubernetes range, plan values as the target's istioctl decodes them."""
    s = ctx.settings
    with ctx.run.step("precheck") as step:
        problems = []
        if s.version_notes:
            step.add_data("warnings", list(s.version_notes))
        if s.hub_notes:
            step.add_data("hub choice", list(s.hub_notes))
        path_problem = catalog.upgrade_path_problem(s.istio_from, s.istio_to, "in-place")
        if path_problem:
            problems.append(f"upgrade path: {path_problem}")
        k8s = ctx.cluster.server_version()
        target = catalog.minor_of(s.istio_to)
        if not catalog.supports_kubernetes(s.istio_to, k8s):
            problems.append(
                f"Kubernetes {k8s} is outside Istio {target.minor}'s supported range "
                f"{target.k8s_min}-{target.k8s_max}"
            )
        try:
            operator.validate(s.install_spec(s.istio_to), s.istio_to)
        except operator.OperatorError as exc:
            problems.append(
                f"plan values for {s.istio_to}: {exc}{_values_hint(s.install_spec(s.istio_to), s.istio_to)}"
            )
        from_minor = catalog.minor_name(s.istio_from)
        result = ctx.istioctl_to.precheck(from_version=from_minor)
        if result.exit_code != 0:
            problems.append(f"istioctl x precheck: {(result.stdout.strip() or result.stderr.strip())[:500]}")
        step.add_data(
            "checks",
            {
                "upgrade path": path_problem or "allowed",
                "kubernetes": k8s,
                "istioctl precheck": " ".join(_own_args(result.argv)),
                "istioctl precheck exit code": result.exit_code,
            },
        )
        if problems:
            raise StepFailed("; ".join(problems))
        step.note(
            "; ".join(
                [f"warning: {note}" for note in s.version_notes]
                + [
                    f"{s.istio_from} -> {s.istio_to} allowed; Kubernetes {k8s} supported; plan values valid; "
                    f"istioctl {' '.join(_own_args(result.argv))} found no issues"
                ]
            )
        )


def _own_args(argv: tuple[str, ...]) -> list[str]:
    """The command's own arguments, without the binary and the connection flags the harness appends."""
    args = list(argv[1:])
    return args[: args.index("--kubeconfig")] if "--kubeconfig" in args else args


def _values_hint(spec: Obj, version: str) -> str:
    """Which planned values paths this version no longer has, or does not have yet (values_types.proto)."""
    paths = _value_paths(spec.get("values") or {}, "values")
    removed = [p for p in paths if operator.is_removed(p, version)]
    later = [p for p in paths if operator.is_unknown_yet(p, version)]
    minor = catalog.minor_of(version).minor
    hints = []
    if removed:
        hints.append(
            f"{', '.join(p.removeprefix('values.') for p in removed)} removed in Istio {minor} or earlier"
        )
    if later:
        hints.append(f"{', '.join(p.removeprefix('values.') for p in later)} added after Istio {minor}")
    return f" ({'; '.join(hints)})" if hints else ""


def _value_paths(spec: Obj, prefix: str = "") -> list[str]:
    paths = []
    for k, v in spec.items():
        path = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and v:
            paths += _value_paths(v, path)
        else:
            paths.append(path)
    return paths


def generate(ctx: Rehearsal) -> list[Obj]:
    s = ctx.settings
    with ctx.run.step("generate manifest") as step:
        try:
            text = ctx.istioctl_to.manifest_generate(
                plan_files(s), s.install_sets(s.istio_to), cluster_specific=True
            )
        except IstioctlFailed as exc:
            raise StepFailed(f"istioctl {s.istio_to} manifest generate: {exc}") from None
        path = ctx.run.write_artifact(f"manifests/istio-{s.istio_to}.yaml", text)
        step.add_artifact(path, "the generated target manifest", ctx.run.dir)
        docs = [d for d in yaml.load_all(text, Loader=FAST_LOADER) if d]
        step.note(f"{len(docs)} objects")
        return docs


def _images(docs: list[Obj]) -> dict[str, str]:
    images = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "DaemonSet"):
            for c in doc["spec"]["template"]["spec"].get("containers") or []:
                images[f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"] = c["image"]
    return images


def inspect(ctx: Rehearsal, docs: list[Obj]) -> None:
    """The manifest is what the plan asked for: images (the plan's hub, or the target version's own default
    hub), securityContext, Service type, CNI, pull secrets (on the ServiceAccounts, where Istio's charts put
    them)."""
    s = ctx.settings
    spec = s.install_spec(s.istio_to)
    with ctx.run.step("inspect manifest") as step:
        problems = []
        hub = spec.get("hub") or operator.get(spec, "values.global.hub") or catalog.default_hub(s.istio_to)
        images = _images(docs)
        for where, image in images.items():
            repo, _, tag = image.rpartition(":")
            if not repo.startswith(hub + "/") or tag.split("-")[0] != s.istio_to:
                problems.append(f"{where} uses image {image}, not {hub}/...:{s.istio_to}")
        planned_sc = operator.get(spec, "components.pilot.k8s.securityContext")
        istiod = next(
            (d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("istiod")),
            None,
        )
        if planned_sc and istiod is not None:
            actual = istiod["spec"]["template"]["spec"].get("securityContext") or {}
            missing = {k: v for k, v in planned_sc.items() if actual.get(k) != v}
            if missing:
                problems.append(f"istiod securityContext lacks the planned {missing}")
        planned_type = operator.get(spec, "components.ingressGateways[0].k8s.service.type") or operator.get(
            spec, "values.gateways.istio-ingressgateway.type"
        )
        gateway = next(
            (d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "istio-ingressgateway"),
            None,
        )
        if planned_type and gateway is not None and gateway["spec"].get("type") != planned_type:
            problems.append(
                f"the ingress gateway Service is {gateway['spec'].get('type')}, not the planned "
                f"{planned_type}"
            )
        cni_component = bool(operator.get(spec, "components.cni.enabled"))
        cni_values_only = bool(operator.get(spec, "values.cni.enabled")) and not cni_component
        has_cni = any(d["kind"] == "DaemonSet" and d["metadata"]["name"] == "istio-cni-node" for d in docs)
        if cni_values_only and not has_cni:
            problems.append(
                "values.cni.enabled=true is planned but the manifest has no istio-cni-node DaemonSet: in "
                "every Istio version only components.cni.enabled=true renders it (and switches injection to "
                "CNI mode); set components.cni.enabled=true"
            )
        elif cni_component and not has_cni:
            problems.append(
                "components.cni.enabled=true is planned but the manifest has no istio-cni-node DaemonSet"
            )
        secrets = [
            x if isinstance(x, str) else x.get("name")
            for x in operator.get(spec, "values.global.imagePullSecrets") or []
        ]
        if secrets:
            # Istio's charts put values.global.imagePullSecrets on the ServiceAccounts (istiod, gateway, CNI,
            # reader), never on pod specs; pods get them from their ServiceAccount.
            accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
            for doc in docs:
                if doc["kind"] not in ("Deployment", "DaemonSet"):
                    continue
                account = doc["spec"]["template"]["spec"].get("serviceAccountName") or "default"
                names = {p.get("name") for p in (accounts.get(account) or {}).get("imagePullSecrets") or []}
                if not set(secrets) <= names:
                    problems.append(
                        f"ServiceAccount {account} (used by {doc['kind']}/{doc['metadata']['name']}) lacks "
                        f"imagePullSecrets {secrets}"
                    )
        served = set()
        for doc in docs:
            served.add((doc["apiVersion"], doc["kind"]))
        for api_version, kind in sorted(served):
            if kind == "CustomResourceDefinition":
                continue
            try:
                ctx.kube.resource(api_version, kind)
            except Exception:
                problems.append(f"{kind} {api_version} is not served by this cluster")
        step.add_data("images", images)
        if problems:
            raise StepFailed("; ".join(problems))
        step.note(
            f"{len(images)} images at {hub}:{s.istio_to}"
            + ("; CNI DaemonSet present" if has_cni else "")
            + (f"; gateway Service {planned_type}" if planned_type else "")
            + (f"; pull secrets {secrets}" if secrets else "")
        )


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


def dry_run(ctx: Rehearsal, docs: list[Obj]) -> None:
    with ctx.run.step("dry-run") as step:
        accepted, skipped = 0, []
        for doc in with_operator_labels(docs, ctx.settings.istio_to):
            try:
                ctx.kube.resource(doc["apiVersion"], doc["kind"])
            except Exception:
                skipped.append(f"{doc['kind']}/{doc['metadata']['name']}")
                continue
            try:
                ctx.kube.apply([doc], dry_run=True, default_namespace=ISTIO_NS)
            except Exception as exc:
                raise StepFailed(
                    f"server-side dry run rejected {doc['kind']}/{doc['metadata']['name']}: "
                    f"{_api_message(exc)}"
                ) from None
            accepted += 1
        step.note(
            f"{accepted} objects accepted by a server-side dry run (dryRun=All)"
            + (f"; {len(skipped)} skipped until their CRDs exist" if skipped else "")
        )


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return json.loads(body).get("message", str(exc))
        except (ValueError, AttributeError):
            pass
    return str(exc).splitlines()[0][:300]


def apply(ctx: Rehearsal, docs: list[Obj]) -> None:
    s = ctx.settings
    with ctx.run.step("apply") as step:
        refused = [ref for ref in silent_prunes(ctx, docs) if ref not in s.allow_prune]
        if refused:
            # Before the journal and before any change: the run stops with nothing applied.
            raise StepFailed(
                f"the {s.istio_to} manifest does not render {len(refused)} object(s) the installed mesh has, "
                f"and applying it would delete them: {', '.join(refused)}. Add them to the plan (e.g. its "
                "components.ingressGateways) or allow their removal with "
                + " ".join(f"--allow-prune {ref}" for ref in refused)
            )
        ctx.journal.push(
            "restore Istio from the backup",
            "restore_backup",
            {"backup": str(ctx.state["backup"].relative_to(ctx.run.dir)), "source": s.istio_from},
            registered_by="apply",
        )
        ctx.journal.mark_changed()
        if s.strategy == "istioctl":
            try:
                install_watched(
                    ctx.istioctl_to,
                    ctx.kube,
                    s.install_spec(s.istio_to),
                    plan_files(s),
                    s.install_sets(s.istio_to),
                    f"{int(s.timeout)}s",
                    upgrade=True,
                )
            except IstioctlStopped as exc:
                raise waits.WaitFailed(str(exc), exc.cause, exc.evidence) from None
            except IstioctlFailed as exc:
                raise StepFailed(f"istioctl upgrade failed: {exc}") from None
            step.note(f"istioctl {s.istio_to} upgrade -y applied the plan")
            return
        labelled = with_operator_labels(docs, s.istio_to, _revision(ctx))
        crds = [d for d in labelled if d["kind"] == "CustomResourceDefinition"]
        rest = [d for d in labelled if d["kind"] != "CustomResourceDefinition"]
        namespaces = ctx.kube.resource("v1", "Namespace")
        try:
            namespaces.get(name=ISTIO_NS)
        except Exception:
            namespaces.create(body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ISTIO_NS}})
        try:
            ctx.kube.apply(crds, field_manager=ISTIOCTL_FIELD_MANAGER)
            wait_for(
                lambda: all(_established(ctx, c["metadata"]["name"]) for c in crds),
                s.timeout,
                "the Istio CRDs to be Established",
            )
            ctx.kube.invalidate_discovery()
            order, not_ready = apply_components(ctx, rest)
        except TimeoutError as exc:
            raise StepFailed(str(exc)) from None
        except Exception as exc:
            raise StepFailed(f"applying the manifest failed: {_api_message(exc)}") from None
        try:
            # istioctl prunes only after every component became ready (install.go lines 152-158).
            pruned = [] if not_ready else _prune(ctx, docs)
        except Exception as exc:
            raise StepFailed(
                f"pruning what {s.istio_to} no longer renders failed: {_api_message(exc)}"
            ) from None
        added = _ensure_default_tag(ctx)
        step.add_data("pruned", pruned)
        step.note(
            f"{len(crds)} CRDs applied and Established, then {len(rest)} objects component by component as "
            f"istioctl install does ({', '.join(order)}; server-side apply, field manager "
            f"{ISTIOCTL_FIELD_MANAGER})"
            + (f"; pruned what {s.istio_to} no longer renders: {', '.join(pruned)}" if pruned else "")
            + (
                f"; not ready when applied, so nothing pruned (the restart of the control plane waits on "
                f"them): {'; '.join(not_ready)}"
                if not_ready
                else ""
            )
            + (f"; then as istioctl install: {added}" if added else "")
        )


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


def _established(ctx: Rehearsal, name: str) -> bool:
    crd = ctx.kube.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition").get(name=name).to_dict()
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in (crd.get("status") or {}).get("conditions", [])
    )


def _revision(ctx: Rehearsal) -> str:
    return str(ctx.settings.install_spec(ctx.settings.istio_to).get("revision") or "")


def _prune_selector(ctx: Rehearsal) -> str:
    return (
        f"operator.istio.io/managed=Reconcile,istio.io/rev={_revision(ctx) or 'default'},"
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


def _prune(ctx: Rehearsal, docs: list[Obj]) -> list[str]:
    """Delete what the target no longer renders (``prune_candidates``): by then each was allowed
    (``--allow-prune``); it is in the backup, and the rollback brings it back."""
    pruned = []
    kinds = {kind: api_version for api_version, kind in catalog.PRUNED_KINDS}
    for ref in prune_candidates(ctx, docs):
        kind, namespace, name = ref.split("/", 2)
        ctx.kube.resource(kinds[kind], kind).delete(name=name, namespace=namespace or None)
        pruned.append(ref)
    return pruned


def _ensure_default_tag(ctx: Rehearsal) -> str:
    """What istioctl install does after applying a default (revision-less) installation: (re)create the
    default revision tag, which deactivates the revision's own injector webhooks (operator/pkg/webhook
    WebhooksToDeploy; istioctl/pkg/tag). A plain apply re-activates them; ``istioctl tag set default`` puts it
    right."""
    if _revision(ctx):
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
            _restart(ctx, "Deployment", "istiod", ISTIO_NS)
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


RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _set_restarted_at(ctx: Rehearsal, kind: str, name: str, namespace: str, value: str | None) -> None:
    """Put the pod template's restartedAt back as it was (``None`` removes it): the workload rolls out again
    and its spec ends as it was before the upgrade restarted it."""
    resource = ctx.kube.resource("apps/v1", kind)
    template = (
        resource.get(name=name, namespace=namespace).to_dict()["spec"]["template"].get("metadata")
    ) or {}
    if value is None and set(template.get("annotations") or {}) == {RESTARTED_AT}:
        # The annotations map was the restart's alone: remove it whole, not leave an empty map behind.
        resource.patch(
            name=name,
            namespace=namespace,
            content_type="application/json-patch+json",
            field_manager="kubectl-rollout",
            body=[
                {
                    "op": "test",
                    "path": "/spec/template/metadata/annotations",
                    "value": template["annotations"],
                },
                {"op": "remove", "path": "/spec/template/metadata/annotations"},
            ],
        )
        return
    resource.patch(
        name=name,
        namespace=namespace,
        content_type="application/strategic-merge-patch+json",
        field_manager="kubectl-rollout",
        body={"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: value}}}}},
    )


def _restart(ctx: Rehearsal, kind: str, name: str, namespace: str) -> None:
    """``kubectl rollout restart``: a restartedAt annotation on the pod template."""
    ctx.kube.resource("apps/v1", kind).patch(
        name=name,
        namespace=namespace,
        content_type="application/strategic-merge-patch+json",
        field_manager="kubectl-rollout",
        body={
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {
                            "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%S%z")
                        }
                    }
                }
            }
        },
    )


def _restart_marker(ctx: Rehearsal, kind: str, namespace: str, name: str) -> Any:
    return next(
        (
            e
            for e in ctx.journal.pending("upgrade")
            if e.action == "workload_restart"
            and (e.args["kind"], e.args["namespace"], e.args["name"]) == (kind, namespace, name)
        ),
        None,
    )


def expected_proxy_image(ctx: Rehearsal, revision: str = "default") -> str | None:
    name = "istio-sidecar-injector" + ("" if revision == "default" else f"-{revision}")
    cms = [c for c in ctx.objects("v1", "ConfigMap", ISTIO_NS) if c["metadata"]["name"] == name]
    if not cms:
        return None
    values = json.loads(cms[0].get("data", {}).get("values") or "{}").get("global", {})
    variant = values.get("variant") or ""
    return (
        f"{values.get('hub')}/{(values.get('proxy') or {}).get('image', 'proxyv2')}:{values.get('tag')}"
        + (f"-{variant}" if variant else "")
    )


def injected_namespaces(ctx: Rehearsal) -> list[str]:
    return [
        n["metadata"]["name"]
        for n in ctx.objects("v1", "Namespace")
        if (n["metadata"].get("labels") or {}).get("istio-injection") == "enabled"
        or "istio.io/rev" in (n["metadata"].get("labels") or {})
    ]


def restart_scope(ctx: Rehearsal) -> list[str]:
    """The namespaces whose workloads may be restarted: ``--restart-namespaces`` (with the sample apps' own
    namespace, which the run deployed to prove the upgrade with), else every injected one (the runbook's step
    9)."""
    asked = list(ctx.settings.restart_namespaces)
    if not asked:
        return injected_namespaces(ctx)
    if not ctx.settings.apps and ctx.apps_ns not in asked:
        if any(n["metadata"]["name"] == ctx.apps_ns for n in ctx.objects("v1", "Namespace")):
            asked.append(ctx.apps_ns)
    return asked


def restart_workloads(
    ctx: Rehearsal, step_name: str = "restart workloads", rolling_back: bool = False
) -> list[str]:
    """Restart workloads (in the restart scope) whose sidecars do not run the injector's current proxy image.
    The upgrade journals each pod template's restartedAt before changing it; the rollback puts it back, so a
    rolled-back workload's spec is as it was."""
    with ctx.run.step(step_name) as step:
        restarted = []
        scope = restart_scope(ctx)
        step.add_data(
            "restart scope",
            {
                "namespaces": scope,
                "chosen with": "--restart-namespaces"
                if ctx.settings.restart_namespaces
                else "injection labels",
            },
        )
        stale_workloads: list[tuple[str, str, Obj, str]] = []
        # The apps' namespace joins an explicit --restart-namespaces only for the run's own apps: a user's
        # workload that shares that namespace was not asked to be restarted.
        only_own = (
            ""
            if not ctx.settings.restart_namespaces or ctx.apps_ns in ctx.settings.restart_namespaces
            else ctx.apps_ns
        )
        for ns in scope:
            pods = ctx.objects("v1", "Pod", ns)
            for kind in ("Deployment", "StatefulSet", "DaemonSet"):
                for workload in ctx.objects("apps/v1", kind, ns):
                    if ns == only_own and RUN_LABEL not in (workload["metadata"].get("labels") or {}):
                        continue
                    selector = workload["spec"]["selector"].get("matchLabels") or {}
                    stale = []
                    for pod in pods:
                        labels = pod["metadata"].get("labels") or {}
                        if not all(labels.get(k) == v for k, v in selector.items()):
                            continue
                        revision = (pod["metadata"].get("annotations") or {}).get("istio.io/rev", "default")
                        expected = expected_proxy_image(ctx, revision)
                        images = [
                            c["image"]
                            for c in (pod["spec"].get("containers") or [])
                            + (pod["spec"].get("initContainers") or [])
                            if c["name"] == "istio-proxy"
                        ]
                        if expected and images and images[0] != expected:
                            stale.append(f"{pod['metadata']['name']} runs {images[0]}")
                    if stale:
                        stale_workloads.append((kind, ns, workload, stale[0]))
        # The injector's own answer, before any workload is restarted: the sidecar a pod created now gets in
        # each namespace (a server-side dry run), at the version the restart is meant to bring.
        from .validate import prove_injection

        proven: dict[str, str] = {}
        for _kind, ns, workload, _why in stale_workloads:
            if ns not in proven:
                version = ctx.settings.istio_from if rolling_back else ctx.settings.istio_to
                proven[ns] = prove_injection(ctx, ns, workload["spec"]["template"], version)
        for kind, ns, workload, why in stale_workloads:
            name = workload["metadata"]["name"]
            marker = _restart_marker(ctx, kind, ns, name) if rolling_back else None
            if marker is not None:
                _set_restarted_at(ctx, kind, name, ns, marker.args["previous"])
                ctx.journal.mark_done(marker)
            else:
                if not rolling_back:
                    template = workload["spec"]["template"].get("metadata") or {}
                    ctx.journal.push(
                        f"put back the pod template of {kind.lower()}/{ns}/{name}",
                        "workload_restart",
                        {
                            "kind": kind,
                            "namespace": ns,
                            "name": name,
                            "previous": (template.get("annotations") or {}).get(RESTARTED_AT),
                        },
                        registered_by=step_name,
                    )
                probe.mark(ctx, f"restart {kind.lower()}/{ns}/{name}")
                _restart(ctx, kind, name, ns)
            restarted.append((kind, ns, name, why))
        if proven:
            step.add_data("injection proven (server-side dry run of a pod)", proven)
        if not restarted:
            step.not_needed("every sidecar already runs the injector's proxy image")
            return []
        for ns in dict.fromkeys(ns for _, ns, _, _ in restarted):
            mine = [(kind, name) for kind, n, name, _ in restarted if n == ns]
            waits.rollouts(ctx.kube, mine, ns, ctx.settings.timeout)
        described = [f"{kind.lower()}/{ns}/{name} ({why})" for kind, ns, name, why in restarted]
        step.note("restarted " + ", ".join(described))
        return described
