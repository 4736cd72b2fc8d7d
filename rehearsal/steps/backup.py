"""Backup before the upgrade, and the restore that rolls back to it.

What is backed up is what the runbook says and a rollback needs: the restorable objects in istio-system, the
Istio CRDs, Istio's webhook configurations (revision tags included) and cluster roles, every Istio custom
resource in every namespace, and every object istioctl owns in any other namespace (gateways in their own
namespaces, CNI in kube-system: the ``mesh-namespaces`` part, only the owned objects there, nothing else of
those namespaces). Secrets go to their own file, written 0600; reports show names and counts only.

``differences`` proves a restore: each backed-up object's spec (or data, rules, webhooks) and the labels and
annotations the user set are as the backup has them.
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
PARTS = ("istio-system", "mesh-namespaces", "secrets", "cluster", "custom-resources")
# istioctl's component label (istio/istio 1.30.3 operator/pkg/manifest/name.go IstioComponentLabel).
COMPONENT_LABEL = "operator.istio.io/component"
# Annotations controllers write, not users: a restore that rolls a Deployment back makes a new revision.
CONTROLLER_ANNOTATIONS = ("deployment.kubernetes.io/revision", "deprecated.daemonset.template.generation")


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
    outside = [clean(o) for o, _, _ in owned_outside(ctx)]
    secrets = [clean(s) for s in ctx.objects("v1", "Secret", ISTIO_NS)]
    cluster = []
    crds = istio_crds(ctx)
    cluster += [clean(c) for c in crds]
    for api_version, kind in CLUSTER:
        cluster += [clean(o) for o in ctx.objects(api_version, kind) if istio_related(o)]
    return {
        "istio-system": namespaced,
        "mesh-namespaces": outside,
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


def record_installed(ctx: Rehearsal) -> None:
    """What is installed once the upgrade's restarts ended (istio-system and the cluster-scoped part, as the
    backup reads them; no Secrets), for the report's before/after comparison (``artifacts/installed``).
    A report aid: a read that fails leaves the comparison with the generated manifest."""
    try:
        data = snapshot(ctx)
    except Exception:
        return
    for part in ("istio-system", "cluster"):
        text = yaml.dump_all(data[part], Dumper=FAST_DUMPER, sort_keys=False)
        ctx.run.write_artifact(f"installed/{part}.yaml", text, 0o644)


def load_backup(folder: Path) -> dict[str, list[Obj]]:
    return {
        part: [o for o in yaml.load_all((folder / f"{part}.yaml").read_text(), Loader=FAST_LOADER) if o]
        for part in PARTS
        if (folder / f"{part}.yaml").exists()
    }


def key(obj: Obj) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def owned_outside(ctx: Rehearsal) -> list[tuple[Obj, str, str]]:
    """Every object istioctl owns (its component label) outside istio-system, with its apiVersion and kind:
    extra gateways in their namespaces, CNI in kube-system."""
    out = []
    for api_version, kind in NAMESPACED:
        for obj in ctx.objects(api_version, kind, None, label_selector=COMPONENT_LABEL):
            if obj["metadata"].get("namespace") != ISTIO_NS and not obj["metadata"].get("deletionTimestamp"):
                out.append(({**obj, "apiVersion": api_version, "kind": kind}, api_version, kind))
    return out


def mesh_namespaces(data: dict[str, list[Obj]]) -> list[str]:
    """The namespaces a backup holds objects of: istio-system and those of istioctl-owned objects."""
    return sorted({ISTIO_NS} | {o["metadata"]["namespace"] for o in data.get("mesh-namespaces", [])})


def _user_meta(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k not in CONTROLLER_ANNOTATIONS
    }
    return {"labels": meta.get("labels") or {}, "annotations": annotations}


def _body(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion")}


def differences(ctx: Rehearsal, data: dict[str, list[Obj]]) -> list[str]:
    """Each backed-up object that is missing or differs now (its body: spec, data, rules, webhooks; its
    labels and annotations), named with what differs. Empty when the cluster holds the backup as it was."""
    found = []
    for part in ("istio-system", "mesh-namespaces", "cluster"):
        for saved in data.get(part, []):
            meta = saved["metadata"]
            try:
                live = ctx.kube.resource(saved["apiVersion"], saved["kind"]).get(
                    name=meta["name"], namespace=meta.get("namespace")
                )
            except Exception:
                found.append(f"{_ref(saved)}: missing")
                continue
            now = clean(live.to_dict())
            what = [
                f"{name} differ from the backup ({', '.join(paths[:3])})"
                if name == "spec"
                else f"{name} differ"
                for name, paths in (
                    ("spec", _paths(_body(now), _body(saved))),
                    ("labels/annotations", _paths(_user_meta(now), _user_meta(saved))),
                )
                if paths
            ]
            if what:
                found.append(f"{_ref(saved)}: {'; '.join(what)}")
    return found


def _ref(obj: Obj) -> str:
    ns = obj["metadata"].get("namespace")
    return f"{obj['kind']}/{ns + '/' if ns else ''}{obj['metadata']['name']}"


def _paths(now: Any, saved: Any, path: str = "") -> list[str]:
    """Where ``now`` differs from ``saved``: dotted paths (list items by index)."""
    if isinstance(now, dict) and isinstance(saved, dict):
        return [
            p
            for k in sorted(now.keys() | saved.keys())
            for p in _paths(now.get(k), saved.get(k), f"{path}.{k}")
        ]
    if _named(now) and _named(saved) and {i["name"] for i in now} == {i["name"] for i in saved}:
        # A list keyed by name (env, ports, containers, volumes): server-side apply merges it by key and may
        # keep the live order; each item is compared with the item of the same name.
        by_name = {i["name"]: i for i in saved}
        return [p for i in now for p in _paths(i, by_name[i["name"]], f"{path}[{i['name']}]")]
    if isinstance(now, list) and isinstance(saved, list) and len(now) == len(saved):
        return [
            p for i, (a, b) in enumerate(zip(now, saved, strict=True)) for p in _paths(a, b, f"{path}[{i}]")
        ]
    return [] if now == saved else [path.lstrip(".") or "(whole)"]


def _named(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in value)
        and len({i["name"] for i in value}) == len(value)
    )
