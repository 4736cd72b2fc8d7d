"""Restarting workloads onto the injector's sidecar, shared by the strategies and the rollback (harness
library, below :mod:`rehearsal.strategies`): which namespaces may be restarted, which workloads run a stale
proxy, ``kubectl rollout restart`` with its undo journaled first.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import waits
from ..probe import targets as probe
from ..steps import ISTIO_NS, RUN_LABEL, Rehearsal

Obj = dict[str, Any]


RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def set_restarted_at(ctx: Rehearsal, kind: str, name: str, namespace: str, value: str | None) -> None:
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


def restart(ctx: Rehearsal, kind: str, name: str, namespace: str) -> None:
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
        from ..steps.validate import prove_injection

        proven: dict[str, str] = {}
        for _kind, ns, workload, _why in stale_workloads:
            if ns not in proven:
                version = ctx.settings.istio_from if rolling_back else ctx.settings.istio_to
                proven[ns] = prove_injection(ctx, ns, workload["spec"]["template"], version)
        for kind, ns, workload, why in stale_workloads:
            name = workload["metadata"]["name"]
            marker = _restart_marker(ctx, kind, ns, name) if rolling_back else None
            if marker is not None:
                set_restarted_at(ctx, kind, name, ns, marker.args["previous"])
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
                restart(ctx, kind, name, ns)
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
