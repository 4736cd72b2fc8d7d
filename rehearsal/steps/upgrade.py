"""The upgrade itself: precheck, generate, inspect, dry-run, then apply, restart the control plane and move
the workloads through the strategy of ``--strategy`` (:mod:`rehearsal.strategies`).

Each step decides from the cluster whether it is needed and records why; a strategy's ``apply`` registers the
restore of the backup in the journal before it changes anything. How the target reaches the cluster lives in
the strategies, so this module does not grow with them.
"""

from __future__ import annotations

from typing import Any

import yaml

from istiofacts import catalog, operator

from .. import strategies
from ..istio.istioctl import IstioctlFailed
from ..kube import FAST_LOADER
from ..run import StepFailed
from ..strategies.install import (  # noqa: F401  (re-exported: the runbook's names for them)
    ISTIOCTL_FIELD_MANAGER,
    api_message,
    prune_candidates,
    silent_prunes,
    with_operator_labels,
)
from ..strategies.workloads import (  # noqa: F401  (re-exported)
    expected_proxy_image,
    injected_namespaces,
    restart_scope,
)
from ..strategies.workloads import restart_workloads as _restart_workloads
from . import ISTIO_NS, Rehearsal
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
        path_problem = catalog.upgrade_path_problem(
            s.istio_from, s.istio_to, strategies.of(s.strategy).path_policy
        )
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
            sets = [*s.install_sets(s.istio_to), *strategies.of(s.strategy).install_sets(ctx)]
            text = ctx.istioctl_to.manifest_generate(plan_files(s), sets, cluster_specific=True)
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
                    f"{api_message(exc)}"
                ) from None
            accepted += 1
        step.note(
            f"{accepted} objects accepted by a server-side dry run (dryRun=All)"
            + (f"; {len(skipped)} skipped until their CRDs exist" if skipped else "")
        )


def apply(ctx: Rehearsal, docs: list[Obj]) -> None:
    """The target onto the cluster, as the strategy does it (its plan recorded first)."""
    strategy = strategies.of(ctx.settings.strategy)
    ctx.run.strategy_plan = strategy.plan(ctx)
    strategy.apply(ctx, docs)


def restart_control_plane(ctx: Rehearsal, backup: dict[str, list[Obj]]) -> None:
    strategies.of(ctx.settings.strategy).restart(ctx, backup)


def restart_workloads(
    ctx: Rehearsal, step_name: str = "restart workloads", rolling_back: bool = False
) -> list[str]:
    """The workloads onto the target as the strategy moves them, then the strategy's own end state. The
    rollback's restart (``rolling_back``) is the same restart for every strategy."""
    if rolling_back:
        return _restart_workloads(ctx, step_name, rolling_back=True)
    strategy = strategies.of(ctx.settings.strategy)
    moved = strategy.move(ctx)
    strategy.verify(ctx)
    return moved
