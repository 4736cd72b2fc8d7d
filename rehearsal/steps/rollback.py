"""Rollback: replay the journal last-in first-out, then prove the cluster is back where it was.

The one undo the upgrade registers is ``restore_backup``: re-apply the backed-up manifests (CRDs first, then
istio-system, then every Istio custom resource), remove what the upgrade added, wait for the control plane,
and restart workloads whose sidecars no longer match the restored injector. The proof: versions back at the
source (istioctl and pod specs), pods healthy, traffic answering through the ingress, and every Istio custom
resource identical to the backup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..journal import JournalEntry
from ..kube import RolloutTimeout
from . import ISTIO_NS, Rehearsal
from .backup import CLUSTER, NAMESPACED, clean, custom_resources, istio_crds, istio_related, key, load_backup
from .upgrade import restart_workloads
from .validate import version_findings

Obj = dict[str, Any]


def restore_backup(ctx: Rehearsal, entry: JournalEntry) -> dict[str, Any]:
    backup = load_backup(ctx.run.dir / entry.args["backup"])
    kube = ctx.kube
    restored = 0
    crds = [o for o in backup.get("cluster", []) if o["kind"] == "CustomResourceDefinition"]
    others = [o for o in backup.get("cluster", []) if o["kind"] != "CustomResourceDefinition"]
    kube.apply(crds)
    kube.invalidate_discovery()
    for group in (
        others,
        backup.get("istio-system", []),
        backup.get("secrets", []),
        backup.get("custom-resources", []),
    ):
        kube.apply(group, default_namespace=ISTIO_NS)
        restored += len(group)
    restored += len(crds)
    wanted = {key(o) for part in backup.values() for o in part}
    removed = []
    current: list[tuple[Obj, str, str]] = []
    for api_version, kind in NAMESPACED:
        current += [
            (o, api_version, kind)
            for o in ctx.objects(api_version, kind, ISTIO_NS)
            if not (
                kind == "ConfigMap" and o["metadata"]["name"] in ("kube-root-ca.crt", "istio-ca-root-cert")
            )
        ]
    for api_version, kind in CLUSTER:
        current += [(o, api_version, kind) for o in ctx.objects(api_version, kind) if istio_related(o)]
    for crd in istio_crds(ctx):
        current.append((crd, "apiextensions.k8s.io/v1", "CustomResourceDefinition"))
    for obj in custom_resources(ctx, istio_crds(ctx)):
        current.append((obj, obj["apiVersion"], obj["kind"]))
    for obj, api_version, kind in current:
        if key({**obj, "kind": kind}) not in wanted:
            resource = kube.resource(api_version, kind)
            resource.delete(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"))
            removed.append(
                f"{kind}/{obj['metadata'].get('namespace', '') + '/' if obj['metadata'].get('namespace') else ''}"
                f"{obj['metadata']['name']}"
            )
    waited = []
    for kind in ("Deployment", "DaemonSet"):
        for obj in ctx.objects("apps/v1", kind, ISTIO_NS):
            kube.wait_rollout(kind, obj["metadata"]["name"], ISTIO_NS, ctx.settings.timeout)
            waited.append(f"{kind.lower()}/{obj['metadata']['name']}")
    return {"restored": restored, "removed": removed, "rolled out": waited}


ACTIONS: dict[str, Callable[[Rehearsal, JournalEntry], dict[str, Any]]] = {"restore_backup": restore_backup}


def custom_resource_differences(ctx: Rehearsal, backup: dict[str, list[Obj]]) -> list[str]:
    def body(o: Obj) -> Obj:
        c = clean(o)
        c["metadata"] = {
            k: v for k, v in c["metadata"].items() if k in ("name", "namespace", "labels", "annotations")
        }
        c.pop("apiVersion", None)
        return c

    saved = {key(o): body(o) for o in backup.get("custom-resources", [])}
    now = {key(o): body(o) for o in custom_resources(ctx, istio_crds(ctx))}
    differences = [f"{k[0]} {k[1]}/{k[2]} is missing" for k in saved if k not in now]
    differences += [f"{k[0]} {k[1]}/{k[2]} was added" for k in now if k not in saved]
    differences += [
        f"{k[0]} {k[1]}/{k[2]} differs from the backup" for k in saved if k in now and saved[k] != now[k]
    ]
    return differences


def verify_source(ctx: Rehearsal, backup_folder: Path | None) -> dict[str, Any]:
    """Prove the cluster is at the source version, healthy, serving, with the user's Istio resources intact."""
    from .mesh import send_traffic
    from .validate import pod_health_findings

    source = ctx.settings.istio_from
    findings: dict[str, list[str]] = {}
    deadline = time.monotonic() + ctx.settings.timeout
    # Proxies of restarted pods reconnect within moments; give the view a short, bounded time to settle.
    while True:
        observed, findings["versions"] = version_findings(ctx, ctx.istioctl_from, source)
        # Nothing changed (the upgrade stopped before apply): what is seen now is what there is; no waiting.
        if not findings["versions"] or time.monotonic() > deadline or not ctx.journal.changed_cluster:
            break
        time.sleep(0.5)
    findings["pods"] = [f for f in pod_health_findings(ctx, {}) if "restarted" not in f]
    traffic = send_traffic(ctx, ctx.settings.traffic_requests, "/echo/after-rollback")
    findings["traffic"] = (
        []
        if traffic["codes"] == {"200": traffic["requests"]}
        else [f"answers {traffic['codes']}: {traffic['failures']}"]
    )
    if backup_folder is not None:
        findings["custom resources"] = custom_resource_differences(ctx, load_backup(backup_folder))
    verified = not any(findings.values())
    return {
        "verified": verified,
        "versions": observed,
        "traffic": traffic,
        "findings": {k: v for k, v in findings.items() if v},
    }


def perform(ctx: Rehearsal) -> dict[str, Any]:
    """Run every pending undo (collecting errors rather than stopping), then the proof."""
    results: dict[str, Any] = {"ran": True, "restored": [], "errors": []}
    backup_folder = None
    with ctx.run.step("rollback") as step:
        for entry in ctx.journal.pending():
            try:
                outcome = ACTIONS[entry.action](ctx, entry)
                results["restored"].append(
                    {"undo": entry.name, "registered_by": entry.registered_by, **outcome}
                )
                if entry.action == "restore_backup":
                    backup_folder = ctx.run.dir / entry.args["backup"]
                ctx.journal.mark_done(entry)
            except (RolloutTimeout, Exception) as exc:
                results["errors"].append(f"{entry.name}: {exc}")
        step.add_data("undo", results)
        if results["errors"]:
            step.note("; ".join(results["errors"]))
        else:
            step.note(f"{len(results['restored'])} undo action(s) done")
    try:
        restart_workloads(ctx, "rollback: restart workloads")
    except Exception as exc:
        results["errors"].append(f"restart workloads: {exc}")
    with ctx.run.step("rollback: verify") as step:
        proof = verify_source(ctx, backup_folder)
        step.add_data("verification", proof)
        results["verification"] = proof
        results["verified"] = proof["verified"] and not results["errors"]
        if not results["verified"]:
            step.outcome = "failed"
            step.reason = "; ".join(
                f"{k}: {', '.join(v[:3])}" for k, v in proof["findings"].items()
            ) or "; ".join(results["errors"])
        else:
            step.note(
                f"back at Istio {ctx.settings.istio_from}: control plane and every proxy; traffic answers 200; "
                "Istio custom resources identical to the backup"
            )
    return results


def decide(ctx: Rehearsal) -> dict[str, Any]:
    """The one place that decides what happens after the upgrade: roll back or not, and the verdict."""
    run, mode = ctx.run, ctx.settings.rollback
    failed = run.failure is not None
    outcome: dict[str, Any] = {"mode": mode}
    if not ctx.journal.changed_cluster:
        outcome.update(
            ran=False, reason="nothing to restore: the upgrade stopped before it changed the cluster"
        )
        with run.step("rollback: verify") as step:
            proof = verify_source(ctx, None)
            step.add_data("verification", proof)
            step.note(
                "the cluster is still at the source version"
                if proof["verified"]
                else f"the cluster is not as it was: {proof['findings']}"
            )
        outcome["verification"] = proof
        outcome["verified"] = proof["verified"]
        run.verdict = "failed" if failed else "upgraded"
    elif failed and mode == "never":
        outcome.update(
            ran=False, reason="--rollback never: the cluster is left as the failed upgrade left it"
        )
        run.verdict = "failed"
    elif failed or mode == "always":
        outcome.update(perform(ctx))
        if failed:
            run.verdict = "rolled-back" if outcome["verified"] else "rollback-failed"
        else:
            run.verdict = "upgraded" if outcome["verified"] else "rollback-failed"
    else:
        outcome.update(ran=False, reason="the upgrade succeeded")
        run.verdict = "upgraded"
    run.rollback = outcome
    run.save()
    return outcome
