"""What already runs on the cluster, read before anything changes: the Istio version(s) and revisions, how it
was installed, and the settings it was installed with, so an existing mesh is rehearsed as it is.

Where each fact comes from (istio/istio, 1.20-1.30):
- versions and revisions: the istiod Deployments (label ``app=istiod``; ``istio.io/rev``, ``default`` when no
  revision is set; the ``discovery`` container's image tag), as ``istioctl version`` reads the pods;
- install method: ``meta.helm.sh/release-name`` annotations (Helm writes them on everything it installs), an
  ``istio-operator`` Deployment with an IstioOperator resource (the in-cluster operator, up to 1.23), the
  apply-time labels ``operator.istio.io/managed``/``operator.istio.io/version`` that only ``istioctl install``
  adds (``operator/pkg/install/install.go``), else a plain apply of a generated manifest;
- settings: the ``installed-state`` IstioOperator where istioctl left one (it stopped in 1.21), the ``istio``
  mesh ConfigMap (``meshConfig``), the istiod Deployment (replicas, pod securityContext, image hub), the
  ``istio-sidecar-injector`` values (pull secrets), the ingress gateway Service type, the CNI DaemonSet.

The installed settings, with the user's plan laid over them, become the plan of the upgrade: nothing the
cluster runs with is lost because the plan did not repeat it. What was carried over is recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from istiofacts import operator

from . import ISTIO_NS, Rehearsal

Obj = dict[str, Any]
# The hubs Istio's own releases use by default (istio-facts section 0): not a user's choice, never carried.
RELEASE_HUBS = ("docker.io/istio", "registry.istio.io/release", "gcr.io/istio-release")
# Rendered by the chart from the revision; carrying it would pin the old address.
RENDERED_MESH_KEYS = (("defaultConfig", "discoveryAddress"),)


@dataclass
class InstalledMesh:
    """The mesh found on the cluster (``versions`` empty when there is none)."""

    versions: dict[str, str] = field(default_factory=dict)  # revision -> version
    method: str = "none"  # istioctl | helm | operator | manifest | none
    spec: Obj = field(default_factory=dict)  # installed settings as an IstioOperator spec
    carried: dict[str, Any] = field(default_factory=dict)  # setting path -> value, for the record
    sources: list[str] = field(default_factory=list)  # what the settings were read from

    @property
    def present(self) -> bool:
        return bool(self.versions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "method": self.method,
            "carried": self.carried,
            "sources": self.sources,
        }


def _image_version(image: str) -> str:
    return image.rsplit(":", 1)[-1].split("-")[0] if ":" in image.rsplit("/", 1)[-1] else ""


def _image_hub(image: str) -> str:
    return image.rsplit("/", 1)[0]


def _istiods(ctx: Rehearsal) -> list[Obj]:
    return [
        d
        for d in ctx.objects("apps/v1", "Deployment", None, label_selector="app=istiod")
        if not d["metadata"].get("deletionTimestamp")
    ]


def install_method(ctx: Rehearsal, istiods: list[Obj]) -> str:
    if not istiods:
        return "none"
    meta = istiods[0]["metadata"]
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    if "meta.helm.sh/release-name" in annotations:
        return "helm"
    operators = [
        d
        for d in ctx.objects("apps/v1", "Deployment")
        if d["metadata"]["name"] == "istio-operator" and not d["metadata"].get("deletionTimestamp")
    ]
    if operators and _operator_resources(ctx, exclude_installed_state=True):
        return "operator"
    if labels.get("operator.istio.io/managed") == "Reconcile" or "operator.istio.io/version" in labels:
        return "istioctl"
    return "manifest"


def _operator_resources(ctx: Rehearsal, exclude_installed_state: bool = False) -> list[Obj]:
    found = ctx.objects("install.istio.io/v1alpha1", "IstioOperator")
    if exclude_installed_state:
        found = [o for o in found if not o["metadata"]["name"].startswith("installed-state")]
    return found


def _mesh_config(ctx: Rehearsal, revision: str) -> Obj:
    name = "istio" if revision == "default" else f"istio-{revision}"
    for cm in ctx.objects("v1", "ConfigMap", ISTIO_NS):
        if cm["metadata"]["name"] == name:
            mesh = yaml.safe_load((cm.get("data") or {}).get("mesh") or "") or {}
            if isinstance(mesh, dict):
                for path in RENDERED_MESH_KEYS:
                    parent = mesh
                    for key in path[:-1]:
                        parent = parent.get(key) or {}
                    parent.pop(path[-1], None)
                    if path[:-1] and not mesh.get(path[0]):
                        mesh.pop(path[0], None)
                return mesh
    return {}


def _injector_values(ctx: Rehearsal, revision: str) -> Obj:
    name = "istio-sidecar-injector" + ("" if revision == "default" else f"-{revision}")
    for cm in ctx.objects("v1", "ConfigMap", ISTIO_NS):
        if cm["metadata"]["name"] == name:
            try:
                values = json.loads((cm.get("data") or {}).get("values") or "{}")
            except ValueError:
                return {}
            return values if isinstance(values, dict) else {}
    return {}


def detect(ctx: Rehearsal) -> InstalledMesh:
    """Read (only read) what Istio runs on the cluster and the settings it was installed with."""
    istiods = _istiods(ctx)
    found = InstalledMesh()
    for deployment in istiods:
        revision = (deployment["metadata"].get("labels") or {}).get("istio.io/rev", "default")
        containers = deployment["spec"]["template"]["spec"].get("containers") or []
        image = next((c["image"] for c in containers if c["name"] == "discovery"), "")
        if image:
            found.versions[revision] = _image_version(image)
    if not found.present:
        return found
    found.method = install_method(ctx, istiods)
    revision = "default" if "default" in found.versions else sorted(found.versions)[0]
    istiod = next(
        d for d in istiods if (d["metadata"].get("labels") or {}).get("istio.io/rev", "default") == revision
    )
    spec: Obj = {}
    state = [o for o in _operator_resources(ctx) if o["metadata"]["name"].startswith("installed-state")]
    if state:
        spec = operator.deep_merge(spec, state[0].get("spec") or {})
        where = f"{state[0]['metadata'].get('namespace')}/{state[0]['metadata']['name']}"
        found.sources.append(f"IstioOperator {where}")
        spec.pop("tag", None)
    carried: dict[str, Any] = {}

    def carry(path: str, value: Any) -> None:
        operator.set_path(spec, path, value)
        carried[path] = value

    mesh = _mesh_config(ctx, revision)
    if mesh:
        spec["meshConfig"] = operator.deep_merge(spec.get("meshConfig") or {}, mesh)
        carried["meshConfig"] = mesh
        found.sources.append(f"ConfigMap {ISTIO_NS}/istio{'' if revision == 'default' else '-' + revision}")
    if revision != "default":
        carry("revision", revision)
    pod_spec = istiod["spec"]["template"]["spec"]
    replicas = istiod["spec"].get("replicas", 1)
    if replicas not in (None, 1):
        carry("components.pilot.k8s.replicaCount", replicas)
    for hpa in ctx.objects("autoscaling/v2", "HorizontalPodAutoscaler", istiod["metadata"]["namespace"]):
        spec_hpa = hpa.get("spec") or {}
        if (spec_hpa.get("scaleTargetRef") or {}).get("name") == istiod["metadata"]["name"]:
            if spec_hpa.get("minReplicas") not in (None, 1):
                carry("values.pilot.autoscaleMin", spec_hpa["minReplicas"])
    if pod_spec.get("securityContext"):
        carry("components.pilot.k8s.securityContext", pod_spec["securityContext"])
    image = next((c["image"] for c in pod_spec.get("containers") or [] if c["name"] == "discovery"), "")
    hub = _image_hub(image)
    if hub and hub not in RELEASE_HUBS:
        carry("hub", hub)
    values = _injector_values(ctx, revision)
    secrets = (values.get("global") or {}).get("imagePullSecrets") or []
    if secrets:
        spec.setdefault("values", {}).setdefault("global", {})["imagePullSecrets"] = secrets
        carried["values.global.imagePullSecrets"] = secrets
    found.sources.append(f"Deployment {istiod['metadata']['namespace']}/{istiod['metadata']['name']}")
    gateway = next(
        (
            s
            for s in ctx.objects("v1", "Service", ISTIO_NS)
            if s["metadata"]["name"] == "istio-ingressgateway"
        ),
        None,
    )
    if gateway is not None and gateway["spec"].get("type") not in (None, "LoadBalancer"):
        carry("values.gateways.istio-ingressgateway.type", gateway["spec"]["type"])
    if any(d["metadata"]["name"] == "istio-cni-node" for d in ctx.objects("apps/v1", "DaemonSet")):
        carry("components.cni.enabled", True)
    found.spec = spec
    found.carried = carried
    return found


def merged_plan(installed: InstalledMesh, plan: Obj) -> Obj:
    """The installed settings with the user's plan over them (the plan wins where both speak)."""
    return operator.deep_merge(installed.spec, plan)


def plan_document(spec: Obj) -> str:
    return yaml.safe_dump(
        {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec}, sort_keys=False
    )
