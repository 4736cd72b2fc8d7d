"""The installed manifest before and after: what an auditor checks in an upgrade (harness library).

Compares the backup of the source installation (``artifacts/backup/*.yaml``) with what was installed once the
upgrade's restarts ended (``artifacts/installed/*.yaml``, read back from the cluster;
:func:`rehearsal.steps.backup.record_installed`), or, when the run stopped before that, with the generated
target manifest (``artifacts/manifests/istio-<to>.yaml``), on what matters: container images, version labels,
securityContext, Service types, admission webhooks and CRDs. Objects only in the target are added; objects
only in the backup are not part of the target manifest (istioctl creates some at install time, such as the
revision-tag webhooks). Secret objects are never read (the 0600 backup file stays closed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..kube import FAST_LOADER

Obj = dict[str, Any]


def _load(path: Path) -> list[Obj]:
    try:
        return [
            d
            for d in yaml.load_all(path.read_text(), Loader=FAST_LOADER)
            if isinstance(d, dict) and d.get("kind")
        ]
    except (OSError, yaml.YAMLError):
        return []


def _key(doc: Obj) -> str:
    meta = doc.get("metadata") or {}
    namespace = meta.get("namespace")
    if not namespace and doc["kind"] in ("Deployment", "DaemonSet", "StatefulSet", "Service"):
        namespace = "istio-system"  # generated manifests may leave the install namespace implicit
    return f"{doc['kind']}/{namespace + '/' if namespace else ''}{meta.get('name')}"


def _facets(doc: Obj) -> dict[str, str]:
    """The audited facets of one object, each as a short text."""
    facets: dict[str, str] = {}
    kind = doc["kind"]
    labels = (doc.get("metadata") or {}).get("labels") or {}
    # operator.istio.io/* labels are added at apply time (istioctl), so the generated manifest never has them.
    for label in ("app.kubernetes.io/version", "istio.io/rev"):
        if label in labels:
            facets[f"label {label}"] = str(labels[label])
    if kind in ("Deployment", "DaemonSet", "StatefulSet"):
        pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
        for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
            facets[f"image {c.get('name')}"] = str(c.get("image"))
            if c.get("securityContext"):
                facets[f"securityContext {c.get('name')}"] = json.dumps(c["securityContext"], sort_keys=True)
        if pod.get("securityContext"):
            facets["pod securityContext"] = json.dumps(pod["securityContext"], sort_keys=True)
    if kind == "Service":
        facets["type"] = str((doc.get("spec") or {}).get("type") or "ClusterIP")
    if kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        for hook in doc.get("webhooks") or []:
            facets[f"webhook {hook.get('name')}"] = f"failurePolicy={hook.get('failurePolicy')}"
    if kind == "CustomResourceDefinition":
        versions = [
            v.get("name") + ("*" if v.get("storage") else "")
            for v in (doc.get("spec") or {}).get("versions") or []
        ]
        facets["versions"] = ", ".join(versions)
    return facets


AUDITED = (
    "Deployment",
    "DaemonSet",
    "StatefulSet",
    "Service",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "CustomResourceDefinition",
)


def compared_with(run_dir: Path) -> str:
    """What the "after" side of :func:`diff` is: ``installed`` (read back after the upgrade) or
    ``manifest`` (the generated target manifest)."""
    installed = run_dir / "artifacts" / "installed" / "istio-system.yaml"
    return "installed" if installed.is_file() else "manifest"


def diff(run_dir: Path, target: str) -> list[dict[str, str]]:
    """Rows ``{object, facet, before, after}`` for every audited facet that differs."""
    backup = run_dir / "artifacts" / "backup"
    before = [d for part in ("istio-system", "cluster") for d in _load(backup / f"{part}.yaml")]
    if compared_with(run_dir) == "installed":
        installed = run_dir / "artifacts" / "installed"
        after = [d for part in ("istio-system", "cluster") for d in _load(installed / f"{part}.yaml")]
        gone = "removed by the upgrade"
    else:
        after = _load(run_dir / "artifacts" / "manifests" / f"istio-{target}.yaml")
        gone = "not in the target manifest"
    if not before or not after:
        return []
    old = {_key(d): d for d in before if d["kind"] in AUDITED}
    new = {_key(d): d for d in after if d["kind"] in AUDITED}
    rows: list[dict[str, str]] = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            # e.g. the revision-tag webhooks istioctl creates at install time: kept, not part of the manifest
            rows.append(
                {
                    "object": key,
                    "facet": "(object)",
                    "before": "present",
                    "after": gone,
                }
            )
            continue
        if key not in old:
            rows.append({"object": key, "facet": "(object)", "before": "absent", "after": "added"})
            continue
        a, b = _facets(old[key]), _facets(new[key])
        for facet in sorted(set(a) | set(b)):
            if a.get(facet) != b.get(facet):
                rows.append(
                    {"object": key, "facet": facet, "before": a.get(facet, "-"), "after": b.get(facet, "-")}
                )
    return rows
