"""The known-pitfall checks as rehearsal steps (harness library): read the cluster through the API, render the
target and the rollback with their own istioctl (read-only ``manifest generate``), run the named checks, and
record every finding in the run. ``error`` findings fail the step, so the upgrade is not attempted and nothing
changes; after the workload restart, an ``error`` fails the step and the automatic rollback runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import yaml

from ..istio.istioctl import IstioctlFailed
from ..kube import FAST_LOADER
from ..run import StepFailed
from ..steps import ISTIO_NS, Rehearsal
from ..steps.mesh import plan_files
from ..steps.validate import out_of_scope
from . import DURING, PRE, Finding, Inputs, run

# (apiVersion, kind) the checks read, cluster-wide
KINDS = (
    ("v1", "Namespace"),
    ("v1", "Node"),
    ("v1", "Pod"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "StatefulSet"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("networking.istio.io/v1alpha3", "EnvoyFilter"),
)
GATEWAY_API = "gateway.networking.k8s.io"


def live_state(ctx: Rehearsal) -> dict[str, list[dict[str, Any]]]:
    live: dict[str, list[dict[str, Any]]] = {}
    for api_version, kind in KINDS:
        # ConfigMaps: only the Istio namespace's (istio-ca-root-cert); a user's cluster may hold many.
        live[kind] = ctx.objects(api_version, kind, ISTIO_NS if kind == "ConfigMap" else None)
    for crd in live["CustomResourceDefinition"]:
        spec = crd.get("spec") or {}
        if spec.get("group") != GATEWAY_API:
            continue
        served = [v["name"] for v in spec.get("versions") or [] if v.get("served")]
        if served:
            live[spec["names"]["kind"]] = ctx.objects(f"{GATEWAY_API}/{served[-1]}", spec["names"]["kind"])
    return live


def _render(ctx: Rehearsal, which: str) -> tuple[list[dict[str, Any]] | None, str]:
    s = ctx.settings
    version, istioctl = (
        (s.istio_to, ctx.istioctl_to) if which == "target" else (s.istio_from, ctx.istioctl_from)
    )
    try:
        text = istioctl.manifest_generate(plan_files(s), s.install_sets(version), cluster_specific=True)
    except IstioctlFailed as exc:
        return None, str(exc)
    return [d for d in yaml.load_all(text, Loader=FAST_LOADER) if d], ""


def gather(ctx: Rehearsal, renders: bool = True) -> Inputs:
    s = ctx.settings
    target, target_error = _render(ctx, "target") if renders else (None, "")
    rollback, rollback_error = _render(ctx, "rollback") if renders else (None, "")
    return Inputs(
        source=s.istio_from,
        target=s.istio_to,
        k8s_version=ctx.cluster.server_version(),
        live=live_state(ctx),
        target_render=target,
        rollback_render=rollback,
        plan=s.install_spec(s.istio_to),
        target_render_error=target_error,
        rollback_render_error=rollback_error,
        istio_namespace=ISTIO_NS,
        at=world_date(s),
    )


def world_date(settings: Any) -> datetime | None:
    """The date Istio's registry dates are judged at: today on a real cluster, ``--sim-date`` on the
    simulated one (which applies no dates without it)."""
    if settings.cluster != "sim":
        return datetime.now(UTC)
    if settings.sim_date:
        from ..early import parse_sim_date

        moment = parse_sim_date(settings.sim_date)
        return moment if isinstance(moment, datetime) else None
    return None


def _record(step: Any, findings: list[Finding], phase: str) -> None:
    step.add_data("pitfall findings", [f.to_dict() for f in findings])
    step.add_data("pitfall checks", sorted((PRE if phase == "pre" else DURING).keys()))


def before_apply(ctx: Rehearsal) -> list[Finding]:
    """The pre-apply checks; an ``error`` finding fails the step (the upgrade is not attempted)."""
    with ctx.run.step("known pitfalls") as step:
        findings = run(gather(ctx))
        ctx.state["pitfall findings"] = findings
        _record(step, findings, "pre")
        errors = [f for f in findings if f.severity == "error"]
        if errors:
            raise StepFailed("; ".join(f.line() for f in errors)[:2000])
        warnings = [f for f in findings if f.severity == "warning"]
        step.note(
            f"{len(PRE)} known pitfalls checked; "
            + (
                f"{len(warnings)} warning(s): " + "; ".join(f"{f.pitfall}: {f.message}" for f in warnings)
                if warnings
                else "none found"
            )
        )
        return findings


def after_restart(ctx: Rehearsal) -> list[Finding]:
    """The checks after the workloads were restarted. The step records the findings; the validation that
    calls it fails on an ``error`` (so the automatic rollback runs, and the other validations still judge)."""
    with ctx.run.step("known pitfalls after restart") as step:
        inputs = gather(ctx, renders=False)
        inputs.apart = {pod: seen["reason"] for pod, seen in out_of_scope(ctx).items()}
        findings = run(inputs, DURING)
        _record(step, findings, "during")
        step.note(
            f"{len(DURING)} checks after the restart; "
            + ("; ".join(f"{f.pitfall}: {f.message}" for f in findings) if findings else "none found")
        )
        return findings
