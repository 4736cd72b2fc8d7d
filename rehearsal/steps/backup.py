"""Backup before the upgrade, and the restore that rolls back to it.

What is backed up is what the runbook says and a rollback needs: the restorable objects in istio-system, the
Istio CRDs, Istio's webhook configurations and cluster roles, and every Istio custom resource in every
namespace. Secrets go to their own file, written 0600; reports show names and counts only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..kube import FAST_DUMPER, FAST_LOADER
from . import ISTIO_NS, Rehearsal

Obj = dict[str, Any]
NAMESPACED = [
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
]
CLUSTER = [
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
]
SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
SKIP_CONFIGMAPS = {"kube-root-ca.crt", "istio-ca-root-cert"}


def clean(obj: Obj) -> Obj:
    """An object as it can be applied again: no status, no server-populated metadata."""
    obj = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_FIELDS and v is not None}
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k != "kubectl.kubernetes.io/last-applied-configuration"
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    obj["metadata"] = meta
    if obj.get("kind") == "Service":
        obj["spec"] = {
            k: v for k, v in (obj.get("spec") or {}).items() if k not in ("clusterIP", "clusterIPs")
        }
    return obj


def istio_related(obj: Obj) -> bool:
    name = obj["metadata"]["name"]
    labels = obj["metadata"].get("labels") or {}
    return "istio" in name or any(k.startswith(("istio.io/", "operator.istio.io/")) for k in labels)


def istio_crds(ctx: Rehearsal) -> list[Obj]:
    return [
        c
        for c in ctx.objects("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        if c["spec"]["group"].endswith("istio.io")
    ]


def custom_resources(ctx: Rehearsal, crds: list[Obj]) -> list[Obj]:
    out = []
    for crd in crds:
        served = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]
        storage = next((v["name"] for v in crd["spec"]["versions"] if v.get("storage")), served[-1])
        out += ctx.objects(f"{crd['spec']['group']}/{storage}", crd["spec"]["names"]["kind"])
    return out


def snapshot(ctx: Rehearsal) -> dict[str, list[Obj]]:
    namespaced = []
    for api_version, kind in NAMESPACED:
        for obj in ctx.objects(api_version, kind, ISTIO_NS):
            if kind == "ConfigMap" and obj["metadata"]["name"] in SKIP_CONFIGMAPS:
                continue
            namespaced.append(clean(obj))
    secrets = [clean(s) for s in ctx.objects("v1", "Secret", ISTIO_NS)]
    cluster = []
    crds = istio_crds(ctx)
    cluster += [clean(c) for c in crds]
    for api_version, kind in CLUSTER:
        cluster += [clean(o) for o in ctx.objects(api_version, kind) if istio_related(o)]
    return {
        "istio-system": namespaced,
        "secrets": secrets,
        "cluster": cluster,
        "custom-resources": [clean(o) for o in custom_resources(ctx, crds)],
    }


def backup(ctx: Rehearsal) -> Path:
    with ctx.run.step("backup") as step:
        data = snapshot(ctx)
        folder = ctx.run.artifacts / "backup"
        for part, objs in data.items():
            text = yaml.dump_all(objs, Dumper=FAST_DUMPER, sort_keys=False)
            mode = 0o600 if part == "secrets" else 0o644
            path = ctx.run.write_artifact(f"backup/{part}.yaml", text, mode)
            if part != "secrets":
                step.add_artifact(path, f"{len(objs)} objects", ctx.run.dir)
        step.add_data(
            "backed up",
            {
                part: sorted(
                    f"{o['kind']}/{o['metadata'].get('namespace', '')}"
                    f"{'/' if o['metadata'].get('namespace') else ''}{o['metadata']['name']}"
                    for o in objs
                )
                for part, objs in data.items()
            },
        )
        step.note(
            ", ".join(f"{len(objs)} {part}" for part, objs in data.items()) + " (Secrets written 0600, "
            "kept out of the report)"
        )
        ctx.state["backup"] = folder
        return folder


def load_backup(folder: Path) -> dict[str, list[Obj]]:
    return {
        part: [o for o in yaml.load_all((folder / f"{part}.yaml").read_text(), Loader=FAST_LOADER) if o]
        for part in ("istio-system", "secrets", "cluster", "custom-resources")
        if (folder / f"{part}.yaml").exists()
    }


def key(obj: Obj) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
