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

from .. import waits
from ..journal import JournalEntry
from ..retry import already_done, api_error_line, is_api_error
from ..run import StepFailed
from ..strategies import undo_actions
from . import ISTIO_NS, OWNED_LABEL, OWNED_VALUE, RUN_LABEL, Rehearsal, wait_for
from .backup import (
    CLUSTER,
    NAMESPACED,
    SKIP_CONFIGMAPS,
    clean,
    custom_resources,
    differences,
    istio_crds,
    istio_related,
    key,
    load_backup,
    owned_outside,
)
from .upgrade import ISTIOCTL_FIELD_MANAGER, restart_workloads
from .validate import version_findings

Obj = dict[str, Any]
RESTORE_MANAGER = "istio-upgrade-rehearsal-restore"


def _owned(obj: Obj) -> bool:
    """Created by a rehearsal run (the apps it deployed, labelled with that run's id): its cleanup removes it,
    restores leave it alone. The ``managed-by`` label alone is anyone's to set, and does not make an object
    the harness's."""
    labels = obj["metadata"].get("labels") or {}
    return labels.get(OWNED_LABEL) == OWNED_VALUE and bool(labels.get(RUN_LABEL))


def _comparable(obj: Obj) -> Obj:
    """An object as the backup holds it, for telling whether the live one differs."""
    return clean(obj)


def restore_backup(ctx: Rehearsal, entry: JournalEntry) -> dict[str, Any]:
    """Put every backed-up object back as it was, changing only those that differ from the backup, then remove
    what the upgrade added. Istio's own objects are re-applied as istioctl applies them (server-side apply);
    the user's Istio resources, if the upgrade changed them, are replaced as they were, not applied under the
    harness's field manager, which would make it co-owner of the user's fields."""
    folder = _backup_folder(ctx, entry)
    backup = load_backup(folder)
    if not backup.get("istio-system") or not backup.get("cluster"):
        # Never "restore" from nothing: that would delete every Istio object as added by the upgrade.
        raise RuntimeError(f"the backup in {folder} is missing or incomplete; nothing was restored")
    kube = ctx.kube
    current_by_key: dict[tuple[str, str, str], Obj] = {}
    for api_version, kind in NAMESPACED:
        for o in ctx.objects(api_version, kind, ISTIO_NS):
            current_by_key[key({**o, "kind": kind})] = o
    for o in ctx.objects("v1", "Secret", ISTIO_NS):
        current_by_key[key({**o, "kind": "Secret"})] = o
    for o, _, _kind in owned_outside(ctx):  # istioctl's objects in other namespaces (gateways, CNI)
        current_by_key[key(o)] = o
    for api_version, kind in CLUSTER:
        for o in ctx.objects(api_version, kind):
            current_by_key[key({**o, "kind": kind})] = o
    crds_now = istio_crds(ctx)
    for crd in crds_now:
        current_by_key[key({**crd, "kind": "CustomResourceDefinition"})] = crd
    for o in custom_resources(ctx, crds_now):
        current_by_key[key(o)] = o

    def differing(objs: list[Obj]) -> list[Obj]:
        return [o for o in objs if key(o) not in current_by_key or _comparable(current_by_key[key(o)]) != o]

    restored: list[str] = []
    unchanged = 0
    crds = [o for o in backup.get("cluster", []) if o["kind"] == "CustomResourceDefinition"]
    others = [o for o in backup.get("cluster", []) if o["kind"] != "CustomResourceDefinition"]
    changed_crds = differing(crds)
    kube.apply(changed_crds, field_manager=ISTIOCTL_FIELD_MANAGER)
    kube.invalidate_discovery()
    for group in (
        others,
        backup.get("istio-system", []),
        backup.get("mesh-namespaces", []),
        backup.get("secrets", []),
    ):
        changed = differing(group)
        # Under the manager that applied the target (istioctl's): its field set becomes the backup's, so
        # what only the target set is removed, not left behind under another manager.
        kube.apply(changed, default_namespace=ISTIO_NS, field_manager=ISTIOCTL_FIELD_MANAGER)
        restored += [_name(o) for o in changed]
        unchanged += len(group) - len(changed)
    restored += [_name(o) for o in changed_crds]
    unchanged += len(crds) - len(changed_crds)
    users = [o for o in backup.get("custom-resources", []) if not _owned(o)]
    for obj in differing(users):
        _replace_as_it_was(ctx, obj, current_by_key.get(key(obj)))
        restored.append(_name(obj))
    unchanged += len(users) - len(differing(users))
    wanted = {key(o) for part in backup.values() for o in part}
    removed = []
    current: list[tuple[Obj, str, str]] = []
    for api_version, kind in NAMESPACED:
        current += [
            (o, api_version, kind)
            for o in ctx.objects(api_version, kind, ISTIO_NS)
            if not (kind == "ConfigMap" and o["metadata"]["name"] in SKIP_CONFIGMAPS)
        ]
    for api_version, kind in CLUSTER:
        current += [(o, api_version, kind) for o in ctx.objects(api_version, kind) if istio_related(o)]
    current += owned_outside(ctx)
    for crd in istio_crds(ctx):
        current.append((crd, "apiextensions.k8s.io/v1", "CustomResourceDefinition"))
    for obj in custom_resources(ctx, istio_crds(ctx)):
        current.append((obj, obj["apiVersion"], obj["kind"]))
    for obj, api_version, kind in current:
        if key({**obj, "kind": kind}) not in wanted and not _owned(obj):
            try:
                kube.resource(api_version, kind).delete(
                    name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace")
                )
            except Exception as exc:
                if not already_done(exc, "delete"):
                    raise
            removed.append(_name({**obj, "kind": kind}))
    # Every control plane workload at once, with a live line, ending as soon as one cannot roll out.
    workloads = [
        (kind, obj["metadata"]["name"])
        for kind in ("Deployment", "DaemonSet")
        for obj in ctx.objects("apps/v1", kind, ISTIO_NS)
    ]
    if workloads:
        waits.rollouts(kube, workloads, ISTIO_NS, ctx.settings.timeout)
    waited = [f"{kind.lower()}/{name}" for kind, name in workloads]
    for obj in backup.get("mesh-namespaces", []):
        if obj["kind"] in ("Deployment", "DaemonSet"):
            meta = obj["metadata"]
            kube.wait_rollout(obj["kind"], meta["name"], meta["namespace"], ctx.settings.timeout)
            waited.append(f"{obj['kind'].lower()}/{meta['namespace']}/{meta['name']}")
    proof = differences(ctx, backup)
    if proof:
        raise RuntimeError("the restore left objects unlike the backup: " + "; ".join(proof[:10]))
    return {
        "restored": restored,
        "unchanged": unchanged,
        "removed": removed,
        "rolled out": waited,
        "proved identical to the backup": sum(
            len(backup.get(p, [])) for p in ("istio-system", "mesh-namespaces", "cluster")
        ),
    }


def _backup_folder(ctx: Rehearsal, entry: JournalEntry) -> Path:
    """The backup lives in the folder of the run that journaled it (a replay may record into a new one)."""
    return ctx.journal.path.parent / entry.args["backup"]


def _name(obj: Obj) -> str:
    ns = obj["metadata"].get("namespace")
    return f"{obj['kind']}/{ns + '/' if ns else ''}{obj['metadata']['name']}"


def _replace_as_it_was(ctx: Rehearsal, obj: Obj, current: Obj | None) -> None:
    """Create or replace (PUT) a user's object with its backed-up content: only the fields that differ change
    hands, and no server-side apply makes the harness a co-owner of the rest."""
    resource = ctx.kube.resource(obj["apiVersion"], obj["kind"])
    namespace = obj["metadata"].get("namespace")
    if current is None:
        resource.create(body=obj, namespace=namespace, field_manager=RESTORE_MANAGER)
        return
    body = {**obj, "metadata": {**obj["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    resource.replace(body=body, namespace=namespace, field_manager=RESTORE_MANAGER)


def _created_by(ctx: Rehearsal, api_version: str, kind: str, namespace: str, name: str, run_id: str) -> bool:
    """Whether the object exists and carries ``run_id``'s label: only then is it the run's to delete."""
    try:
        found = ctx.kube.resource(api_version, kind).get(name=name, namespace=namespace or None).to_dict()
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return False
        raise
    return (found["metadata"].get("labels") or {}).get(RUN_LABEL) == run_id


def delete_objects(ctx: Rehearsal, entry: JournalEntry) -> dict[str, Any]:
    """The cleanup of what a setup step created: its objects, then the namespaces it created (waiting until
    they are gone, so the cluster is as found when the run ends). Only objects that carry the run's label are
    deleted (an entry journaled before runs were labelled deletes what it names): an object of the same name
    that is not the run's (the user's, recreated meanwhile) is left, and named."""
    removed: list[str] = []
    left: list[str] = []
    run_id = entry.args.get("run")
    created_namespaces = list(entry.args.get("namespaces") or [])
    for api_version, kind, namespace, name in entry.args.get("objects") or []:
        if namespace in created_namespaces:
            continue  # goes with its namespace
        where = f"{kind}/{namespace + '/' if namespace else ''}{name}"
        if run_id and not _created_by(ctx, api_version, kind, namespace, name, run_id):
            try:
                ctx.kube.resource(api_version, kind).get(name=name, namespace=namespace or None)
                left.append(f"{where} (not created by {run_id})")
            except Exception:
                pass  # already gone
            continue
        try:
            resource = ctx.kube.resource(api_version, kind)
            resource.delete(name=name, namespace=namespace or None)
            removed.append(where)
        except Exception as exc:
            if not already_done(exc, "delete"):
                raise
    namespaces = ctx.kube.resource("v1", "Namespace")
    remaining = set()
    for namespace in created_namespaces:
        if run_id and not _created_by(ctx, "v1", "Namespace", "", namespace, run_id):
            try:
                namespaces.get(name=namespace)
                left.append(f"Namespace {namespace} (not created by {run_id})")
            except Exception:
                pass
            continue
        try:
            namespaces.delete(name=namespace)
        except Exception as exc:
            if not already_done(exc, "delete"):
                raise
        removed.append(f"Namespace {namespace}")
        remaining.add(namespace)
    if remaining:
        wait_for(
            lambda: not remaining & {n["metadata"]["name"] for n in ctx.objects("v1", "Namespace")},
            ctx.settings.timeout,
            f"namespace(s) {', '.join(sorted(remaining))} to be deleted",
        )
    return {"removed": removed, "left": left}


def remove_injection_label(ctx: Rehearsal, entry: JournalEntry) -> dict[str, Any]:
    """The cleanup of the ``istio-injection`` label the run put on a namespace it did not create."""
    name = entry.args["namespace"]
    try:
        ctx.kube.resource("v1", "Namespace").patch(
            name=name,
            body={"metadata": {"labels": {"istio-injection": None}}},
            content_type="application/merge-patch+json",
        )
    except Exception as exc:
        if getattr(exc, "status", None) != 404:
            raise
        return {"removed": []}
    return {"removed": [f"label istio-injection of Namespace {name}"]}


def uninstall_istio(ctx: Rehearsal, entry: JournalEntry) -> dict[str, Any]:
    """The cleanup of a source version the harness installed on a cluster that had none."""
    ctx.istioctl_from.run("uninstall", "--purge", "-y")
    # With the mesh gone as it came, the upgrade's undos have nothing left to restore.
    for moot in ctx.journal.pending("upgrade"):
        ctx.journal.mark_done(moot)
    return {"removed": [f"Istio {entry.args.get('version')} (istioctl uninstall --purge)"]}


ACTIONS: dict[str, Callable[[Rehearsal, JournalEntry], dict[str, Any]]] = {
    "restore_backup": restore_backup,
    "delete_objects": delete_objects,
    "remove_injection_label": remove_injection_label,
    "uninstall_istio": uninstall_istio,
}
# Each strategy's own moves back (the canary's: tags, namespaces, the new revision).
ACTIONS.update(undo_actions())


def custom_resource_differences(ctx: Rehearsal, backup: dict[str, list[Obj]]) -> list[str]:
    def body(o: Obj) -> Obj:
        c = clean(o)
        c["metadata"] = {
            k: v for k, v in c["metadata"].items() if k in ("name", "namespace", "labels", "annotations")
        }
        c.pop("apiVersion", None)
        return c

    saved = {key(o): body(o) for o in backup.get("custom-resources", []) if not _owned(o)}
    now = {key(o): body(o) for o in custom_resources(ctx, istio_crds(ctx)) if not _owned(o)}
    differences = [f"{k[0]} {k[1]}/{k[2]} is missing" for k in saved if k not in now]
    differences += [f"{k[0]} {k[1]}/{k[2]} was added" for k in now if k not in saved]
    differences += [
        f"{k[0]} {k[1]}/{k[2]} differs from the backup" for k in saved if k in now and saved[k] != now[k]
    ]
    return differences


def verify_source(ctx: Rehearsal, backup_folder: Path | None) -> dict[str, Any]:
    """Prove the cluster is at the source version, healthy, serving, with the user's Istio resources
    intact."""
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


def one_line(exc: BaseException) -> str:
    """An error as one line: an API error in the API server's words (never the client's dump of headers and
    body), anything else its first line."""
    if is_api_error(exc):
        return api_error_line(exc)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def perform(ctx: Rehearsal, after_restore: Callable[[Rehearsal], Any] | None = None) -> dict[str, Any]:
    """Run every pending undo of the upgrade (collecting errors rather than stopping), then ``after_restore``
    (a downgrade deploys the sample apps it proves traffic with only now, onto the source's injector), then
    restart the workloads onto the restored injector's sidecar, then the proof. An undo that raised fails the
    step; after a failed restore nothing runs that would move the cluster further from the source (no restart
    onto whatever injector is left, which may still inject the target's sidecar)."""
    results: dict[str, Any] = {"ran": True, "restored": [], "errors": []}
    backup_folder = None
    try:
        with ctx.run.step("rollback") as step:
            for entry in ctx.journal.pending("upgrade"):
                if entry.action == "workload_restart":
                    continue  # put back by the restart below, once the control plane is the source's
                try:
                    outcome = ACTIONS[entry.action](ctx, entry)
                    results["restored"].append(
                        {"undo": entry.name, "registered_by": entry.registered_by, **outcome}
                    )
                    if entry.action == "restore_backup":
                        backup_folder = _backup_folder(ctx, entry)
                    ctx.journal.mark_done(entry)
                except Exception as exc:
                    results["errors"].append(f"{entry.name}: {one_line(exc)}")
                    ctx.journal.mark_failed(entry, one_line(exc))
            step.add_data("undo", results)
            if results["errors"]:
                raise StepFailed("; ".join(results["errors"]))
            step.note(f"{len(results['restored'])} undo action(s) done")
    except StepFailed:
        pass  # recorded as the step's failure; the proof below says where the cluster stands
    if not results["errors"] and after_restore is not None:
        try:
            after_restore(ctx)
        except Exception as exc:
            results["errors"].append(one_line(exc))
    if not results["errors"]:
        try:
            restart_workloads(ctx, "rollback: restart workloads", rolling_back=True)
        except Exception as exc:
            results["errors"].append(f"restart workloads: {one_line(exc)}")
    else:
        with ctx.run.step("rollback: restart workloads") as step:
            step.not_needed(
                f"not restarted, as the restore failed ({results['errors'][0]}): the injector may still "
                "inject the target's sidecar, and restarting now would move workloads further from the source"
            )
    with ctx.run.step("rollback: verify") as step:
        try:
            proof = verify_source(ctx, backup_folder)
        except Exception as exc:  # the proof could not be made: that is a failed proof, said in one line
            proof = {"verified": False, "versions": None, "findings": {"verification": [one_line(exc)]}}
        step.add_data("verification", proof)
        results["verification"] = proof
        results["verified"] = proof["verified"] and not results["errors"]
        if not results["verified"]:
            step.outcome = "failed"
            step.reason = "; ".join(
                results["errors"][:2] + [f"{k}: {', '.join(v[:3])}" for k, v in proof["findings"].items()]
            )
        else:
            step.note(
                f"back at Istio {ctx.settings.istio_from}: control plane and every proxy; "
                "traffic answers 200; "
                "Istio custom resources identical to the backup"
            )
    return results


def cleanup(ctx: Rehearsal) -> dict[str, Any]:
    """Undo what the setup steps did (apps, namespaces, an Istio the harness installed), last first, so the
    cluster is left as found except for the upgrade. Only on a cluster that outlives the run."""
    pending = ctx.journal.pending("setup")
    outcome: dict[str, Any] = {
        "created": ctx.state.get("created", []),
        "removed": [],
        "left": [],
        "errors": [],
    }
    if not pending:
        return outcome
    with ctx.run.step("cleanup") as step:
        for entry in pending:
            try:
                done = ACTIONS[entry.action](ctx, entry)
                outcome["removed"] += done.get("removed", [])
                outcome["left"] += done.get("left", [])
                ctx.journal.mark_done(entry)
            except Exception as exc:
                outcome["errors"].append(f"{entry.name}: {one_line(exc)}")
                ctx.journal.mark_failed(entry, one_line(exc))
        step.add_data("cleanup", outcome)
        if outcome["errors"]:
            raise StepFailed("; ".join(outcome["errors"]))
        step.note(
            "removed "
            + (", ".join(outcome["removed"]) or "nothing")
            + ("; left, as not the run's: " + ", ".join(outcome["left"]) if outcome["left"] else "")
        )
    return outcome


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
