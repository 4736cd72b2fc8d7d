"""The canary strategy's moves and their undos (harness library, beside :mod:`.canary`): revision tags set
with ``istioctl tag set``, namespaces relabelled onto a tag and their workloads restarted, and the new
revision removed with ``istioctl uninstall --revision``. Each move is journaled before it is made, so the
rollback (or ``python -m rehearsal rollback RUN_DIR`` after a killed run) moves everything back: istio.io
``setup/upgrade/canary`` ("Rollback": relabel the namespaces to the old revision, restart, uninstall the new
revision).
"""

from __future__ import annotations

from typing import Any

from .. import waits
from ..istio.istioctl import IstioctlFailed
from ..journal import JournalEntry
from ..steps import ISTIO_NS, Rehearsal
from ..steps.detect import revision_tags
from . import Obj
from .workloads import RESTARTED_AT, restart, set_restarted_at

REV_LABEL, INJECTION_LABEL = "istio.io/rev", "istio-injection"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def revision_name(version: str) -> str:
    """A revision named from its version, as istio.io names them (``1.31.1`` -> ``1-31-1``)."""
    return version.replace(".", "-")


def istiod_revisions(ctx: Rehearsal) -> dict[str, str]:
    """revision -> the image tag of its istiod Deployment (``istio.io/rev``, ``default`` when unset)."""
    out = {}
    for d in ctx.objects("apps/v1", "Deployment", ISTIO_NS, label_selector="app=istiod"):
        revision = (d["metadata"].get("labels") or {}).get(REV_LABEL, "default")
        image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        out[revision] = image.rsplit(":", 1)[-1].split("-")[0]
    return out


def namespace_labels(ctx: Rehearsal, namespace: str) -> dict[str, str | None]:
    """The two injection labels of ``namespace`` as they are now (None when absent)."""
    ns = ctx.kube.resource("v1", "Namespace").get(name=namespace).to_dict()
    labels = ns["metadata"].get("labels") or {}
    return {INJECTION_LABEL: labels.get(INJECTION_LABEL), REV_LABEL: labels.get(REV_LABEL)}


def label_namespace(ctx: Rehearsal, namespace: str, labels: dict[str, str | None]) -> None:
    """``kubectl label namespace`` (a merge patch; None removes a label)."""
    ctx.kube.resource("v1", "Namespace").patch(
        name=namespace,
        body={"metadata": {"labels": labels}},
        content_type="application/merge-patch+json",
    )


def workloads_of(ctx: Rehearsal, namespace: str) -> list[Obj]:
    return [{**w, "kind": kind} for kind in WORKLOAD_KINDS for w in ctx.objects("apps/v1", kind, namespace)]


def restart_markers(ctx: Rehearsal, namespace: str) -> dict[str, str | None]:
    """KIND/NAME -> the pod template's restartedAt now, of every workload of ``namespace`` (what the undo of
    a restart puts back)."""
    return {
        f"{w['kind']}/{w['metadata']['name']}": (
            ((w["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)
        )
        for w in workloads_of(ctx, namespace)
    }


def restart_namespace(ctx: Rehearsal, namespace: str, refs: list[str]) -> None:
    """``kubectl rollout restart`` of the workloads ``refs`` (KIND/NAME) of ``namespace``, waited for."""
    names = []
    for ref in refs:
        kind, name = ref.split("/", 1)
        restart(ctx, kind, name, namespace)
        names.append((kind, name))
    if names:
        waits.rollouts(ctx.kube, names, namespace, ctx.settings.timeout)


def set_tag(ctx: Rehearsal, tag: str, revision: str, step_name: str) -> None:
    """``istioctl tag set <tag> --revision <revision> --overwrite``, its undo journaled first."""
    before = revision_tags(ctx).get(tag)
    ctx.journal.push(
        f"put revision tag {tag} back" + (f" on {before}" if before else " (remove it)"),
        "canary_tag_back",
        {"tag": tag, "revision": before},
        registered_by=step_name,
    )
    try:
        ctx.istioctl_to.tag_set(tag, revision, overwrite=True)
    except IstioctlFailed as exc:
        raise RuntimeError(f"istioctl tag set {tag} --revision {revision}: {exc}") from None


# -- undos ---------------------------------------------------------------------------------------------
def tag_back(ctx: Rehearsal, entry: JournalEntry) -> dict[str, Any]:
    tag, revision = entry.args["tag"], entry.args.get("revision")
    now = revision_tags(ctx).get(tag)
    if now == revision:
        return {"tag": tag, "revision": revision, "already": True}
    if revision is None:
        ctx.istioctl_from.run("tag", "remove", tag, "-y")
        return {"tag": tag, "removed": [f"revision tag {tag}"]}
    ctx.istioctl_from.tag_set(tag, revision, overwrite=True)
    return {"tag": tag, "revision": revision}


def move_back(ctx: Rehearsal, entry: JournalEntry) -> dict[str, Any]:
    """The namespace's labels as they were, and its workloads restarted onto the old revision's sidecar (their
    pod templates' restartedAt put back as they were)."""
    namespace = entry.args["namespace"]
    try:
        label_namespace(ctx, namespace, entry.args["labels"])
    except Exception as exc:
        if getattr(exc, "status", None) == 404:
            return {"namespace": namespace, "gone": True}
        raise
    moved = []
    for ref, value in (entry.args.get("restarted") or {}).items():
        kind, name = ref.split("/", 1)
        try:
            set_restarted_at(ctx, kind, name, namespace, value)
        except Exception as exc:
            if getattr(exc, "status", None) != 404:
                raise
            continue
        moved.append((kind, name))
    if moved:
        waits.rollouts(ctx.kube, moved, namespace, ctx.settings.timeout)
    return {
        "namespace": namespace,
        "labels": entry.args["labels"],
        "restarted": [f"{k}/{n}" for k, n in moved],
    }


def remove_revision(ctx: Rehearsal, entry: JournalEntry) -> dict[str, Any]:
    """``istioctl uninstall --revision <new>``: no trace of the new revision is left (its istiod, injector and
    validator, its ConfigMaps, any tag still pointing at it)."""
    revision = entry.args["revision"]
    for tag, points_at in revision_tags(ctx).items():
        if points_at == revision:
            ctx.istioctl_from.run("tag", "remove", tag, "-y")
    if revision in istiod_revisions(ctx) or _revision_objects(ctx, revision):
        ctx.istioctl_to.uninstall(revision)
    left = _revision_objects(ctx, revision)
    if left:
        raise RuntimeError(f"istioctl uninstall --revision {revision} left {', '.join(left[:5])}")
    return {"removed": [f"revision {revision}"]}


def _revision_objects(ctx: Rehearsal, revision: str) -> list[str]:
    out = []
    for api_version, kind in (
        ("apps/v1", "Deployment"),
        ("v1", "ConfigMap"),
        ("v1", "Service"),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ):
        namespaced = kind in ("Deployment", "ConfigMap", "Service")
        for o in ctx.objects(api_version, kind, ISTIO_NS if namespaced else None, f"{REV_LABEL}={revision}"):
            if kind == "Deployment" and (o["metadata"].get("labels") or {}).get("app") != "istiod":
                continue  # a gateway the revision's install upgraded in place: the restore puts it back
            if kind == "Service" and not o["metadata"]["name"].startswith("istiod"):
                continue
            out.append(f"{kind}/{o['metadata']['name']}")
    return out


UNDO = {"canary_tag_back": tag_back, "canary_move_back": move_back, "canary_remove_revision": remove_revision}
