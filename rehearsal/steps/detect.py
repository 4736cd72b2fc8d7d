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

from istiofacts import catalog, operator

from . import ISTIO_NS, Rehearsal

Obj = dict[str, Any]
# The hubs Istio's own releases use by default (istio-facts section 0): not a user's choice, never carried.
RELEASE_HUBS = ("docker.io/istio", "registry.istio.io/release", "gcr.io/istio-release")
# Rendered by the chart from the revision; carrying it would pin the old address.
RENDERED_MESH_KEYS = (("defaultConfig", "discoveryAddress"),)
COMPONENT_LABEL = "operator.istio.io/component"


@dataclass
class InstalledMesh:
    """The mesh found on the cluster (``versions`` empty when there is none)."""

    versions: dict[str, str] = field(default_factory=dict)  # revision -> version
    method: str = "none"  # istioctl | helm | operator | manifest | none
    spec: Obj = field(default_factory=dict)  # installed settings as an IstioOperator spec
    carried: dict[str, Any] = field(default_factory=dict)  # setting path -> value, for the record
    origins: dict[str, str] = field(default_factory=dict)  # setting path -> the object it was read from
    sources: list[str] = field(default_factory=list)  # what the settings were read from
    values_from: str = ""  # the values ConfigMap, the installed-state IstioOperator, or "re-derived"
    rederived: list[str] = field(default_factory=list)  # settings re-derived from the objects (no values)
    owned: list[str] = field(default_factory=list)  # Kind/namespace/name of every istioctl-owned object
    owned_namespaces: list[str] = field(default_factory=list)  # namespaces holding istioctl-owned objects
    tags: dict[str, str] = field(default_factory=dict)  # revision tag -> revision

    @property
    def present(self) -> bool:
        return bool(self.versions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "method": self.method,
            "carried": {
                path: {"value": value, "from": self.origins.get(path, "")}
                for path, value in sorted(self.carried.items())
            },
            "sources": self.sources,
            "values from": self.values_from,
            "re-derived": self.rederived,
            "istioctl-owned objects": self.owned,
            "namespaces": self.owned_namespaces,
            "revision tags": self.tags,
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
    carried: dict[str, Any] = {}
    owned = owned_objects(ctx)
    found.owned = [_ref(o) for o in owned]
    found.owned_namespaces = sorted(
        {o["metadata"]["namespace"] for o in owned if o["metadata"].get("namespace")}
    )
    found.tags = revision_tags(ctx)

    def carry(path: str, value: Any, origin: str) -> None:
        if operator.get(spec, path) is None:
            operator.set_path(spec, path, value)
        carried[path] = value
        found.origins[path] = origin

    values_cm = _values_configmap(ctx, revision)
    state = [o for o in _operator_resources(ctx) if o["metadata"]["name"].startswith("installed-state")]
    if values_cm is not None:
        # 1.26+: the istio-discovery chart keeps the values istioctl rendered it with (templates/
        # configmap-values.yaml); original-values are the user's, as istioctl translated them.
        where = f"ConfigMap {ISTIO_NS}/{values_cm['metadata']['name']}"
        found.values_from = where
        found.sources.append(where)
        original = json.loads((values_cm.get("data") or {}).get("original-values") or "{}")
        for path, value in _installed_values(original):
            carry(path, value, where)
    elif state:
        where = f"IstioOperator {state[0]['metadata'].get('namespace')}/{state[0]['metadata']['name']}"
        found.values_from = where
        found.sources.append(where)
        state_spec = dict(state[0].get("spec") or {})
        for key in ("tag", "profile"):
            state_spec.pop(key, None)
        if state_spec.get("hub") in RELEASE_HUBS:
            state_spec.pop("hub")
        for path, value in _leaves(state_spec):
            carry(path, value, where)
    else:
        found.values_from = "re-derived"

    def derive(path: str, value: Any, origin: str) -> None:
        """A setting read back from the objects istioctl rendered (the values do not say it)."""
        if path not in carried:
            if found.values_from == "re-derived":
                found.rederived.append(path)
            carry(path, value, origin)

    mesh = _mesh_config(ctx, revision)
    mesh_where = f"ConfigMap {ISTIO_NS}/istio{'' if revision == 'default' else '-' + revision}"
    if mesh:
        spec["meshConfig"] = operator.deep_merge(mesh, spec.get("meshConfig") or {})
        carried["meshConfig"] = spec["meshConfig"]
        found.origins["meshConfig"] = mesh_where
        found.sources.append(mesh_where)
    if revision != "default":
        derive("revision", revision, f"Deployment {ISTIO_NS}/{istiod['metadata']['name']}")
    istiod_where = f"Deployment {istiod['metadata']['namespace']}/{istiod['metadata']['name']}"
    pod_spec = istiod["spec"]["template"]["spec"]
    replicas = istiod["spec"].get("replicas", 1)
    if replicas not in (None, 1):
        derive("components.pilot.k8s.replicaCount", replicas, istiod_where)
    for hpa in ctx.objects("autoscaling/v2", "HorizontalPodAutoscaler", istiod["metadata"]["namespace"]):
        spec_hpa = hpa.get("spec") or {}
        if (spec_hpa.get("scaleTargetRef") or {}).get("name") == istiod["metadata"]["name"]:
            if spec_hpa.get("minReplicas") not in (None, 1):
                derive("values.pilot.autoscaleMin", spec_hpa["minReplicas"], _ref(hpa))
    if pod_spec.get("securityContext"):
        derive("components.pilot.k8s.securityContext", pod_spec["securityContext"], istiod_where)
    image = next((c["image"] for c in pod_spec.get("containers") or [] if c["name"] == "discovery"), "")
    hub = _image_hub(image)
    if hub and hub not in RELEASE_HUBS:
        derive("hub", hub, istiod_where)
    values = _injector_values(ctx, revision)
    secrets = (values.get("global") or {}).get("imagePullSecrets") or []
    if secrets and "values.global.imagePullSecrets" not in carried:
        derive("values.global.imagePullSecrets", secrets, f"ConfigMap {ISTIO_NS}/istio-sidecar-injector")
    found.sources.append(istiod_where)
    # Gateways and CNI as istioctl installed them: every owned Deployment of the IngressGateways component
    # in any namespace, the CNI DaemonSet wherever it runs (kube-system on GKE).
    gateways = [
        o
        for o in owned
        if o["kind"] == "Deployment"
        and (o["metadata"].get("labels") or {}).get("operator.istio.io/component") == "IngressGateways"
    ]
    if gateways:
        entries = [_gateway_entry(ctx, d) for d in sorted(gateways, key=lambda d: _ref(d))]
        derive("components.ingressGateways", entries, ", ".join(_ref(d) for d in gateways))
        primary = next(
            (e for e in entries if e["name"] == "istio-ingressgateway" and "namespace" not in e), None
        )
        service_type = ((primary or {}).get("k8s") or {}).get("service", {}).get("type")
        if service_type:
            carried["values.gateways.istio-ingressgateway.type"] = service_type
            found.origins["values.gateways.istio-ingressgateway.type"] = (
                f"Service {ISTIO_NS}/istio-ingressgateway"
            )
    else:
        gateway = next(
            (
                s
                for s in ctx.objects("v1", "Service", ISTIO_NS)
                if s["metadata"]["name"] == "istio-ingressgateway"
            ),
            None,
        )
        if gateway is not None and gateway["spec"].get("type") not in (None, "LoadBalancer"):
            derive("values.gateways.istio-ingressgateway.type", gateway["spec"]["type"], _ref(gateway))
    cni = next(
        (d for d in ctx.objects("apps/v1", "DaemonSet") if d["metadata"]["name"] == "istio-cni-node"), None
    )
    if cni is not None:
        derive("components.cni.enabled", True, _ref(cni))
        if cni["metadata"]["namespace"] != ISTIO_NS:
            derive("components.cni.namespace", cni["metadata"]["namespace"], _ref(cni))
    found.spec = spec
    found.carried = carried
    return found


def _ref(obj: Obj) -> str:
    ns = obj["metadata"].get("namespace")
    return f"{obj['kind']}/{ns + '/' if ns else ''}{obj['metadata']['name']}"


def owned_objects(ctx: Rehearsal) -> list[Obj]:
    """Every object istioctl's install labelled as its own, in every namespace: the component label
    ``operator.istio.io/component`` (istio/istio 1.30.3 operator/pkg/manifest/name.go IstioComponentLabel;
    the same label up to 1.23, operator/pkg/name), over the kinds istioctl prunes and uninstalls
    (operator/pkg/uninstall/prune.go; catalog.PRUNED_KINDS)."""
    found: list[Obj] = []
    for api_version, kind in catalog.PRUNED_KINDS:
        for obj in ctx.objects(api_version, kind, None, label_selector=COMPONENT_LABEL):
            obj.setdefault("kind", kind)
            obj.setdefault("apiVersion", api_version)
            if not obj["metadata"].get("deletionTimestamp"):
                found.append(obj)
    return found


def revision_tags(ctx: Rehearsal) -> dict[str, str]:
    """Revision tags: the ``istio-revision-tag-<tag>`` webhooks, labelled ``istio.io/tag`` and
    ``istio.io/rev`` (istioctl/pkg/tag/generate.go)."""
    return {
        labels["istio.io/tag"]: labels.get("istio.io/rev", "default")
        for hook in ctx.objects("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")
        for labels in [hook["metadata"].get("labels") or {}]
        if "istio.io/tag" in labels
    }


def _values_configmap(ctx: Rehearsal, revision: str) -> Obj | None:
    name = "values" if revision == "default" else f"values-{revision}"
    return next((c for c in ctx.objects("v1", "ConfigMap", ISTIO_NS) if c["metadata"]["name"] == name), None)


# What istioctl writes into the values itself and must come from the target, not the installed version.
_RENDERED_VALUES = ("global.tag", "global.istioNamespace", "revision")


def _installed_values(original: Obj) -> list[tuple[str, Any]]:
    """The installed ``original-values`` as IstioOperator settings: meshConfig to ``meshConfig``, the hub to
    ``hub`` unless a release hub, the rest under ``values`` (leaf by leaf, so the plan wins per key)."""
    out: list[tuple[str, Any]] = []
    original = json.loads(json.dumps(original))
    mesh = original.pop("meshConfig", None)
    if mesh:
        mesh_clean = dict(mesh)
        (mesh_clean.get("defaultConfig") or {}).pop("discoveryAddress", None)
        if mesh_clean.get("defaultConfig") == {}:
            mesh_clean.pop("defaultConfig")
        if mesh_clean:
            out.append(("meshConfig", mesh_clean))
    hub = (original.get("global") or {}).pop("hub", None)
    if hub and hub not in RELEASE_HUBS:
        out.append(("hub", hub))
    for path, value in _leaves(original):
        if path not in _RENDERED_VALUES:
            out.append((f"values.{path}", value))
    return out


def _leaves(tree: Obj, prefix: str = "") -> list[tuple[str, Any]]:
    """Paths of a settings tree down to its leaves (a map value is a leaf when empty; lists are leaves)."""
    out: list[tuple[str, Any]] = []
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and key not in LEAF_MAPS:
            out += _leaves(value, path)
        else:
            out.append((path, value))
    return out


# Maps carried whole (their keys are the user's, not settings paths: env names, annotations, labels).
LEAF_MAPS = ("env", "meshConfig", "podAnnotations", "serviceAnnotations", "label", "labels", "k8s")


def _gateway_entry(ctx: Rehearsal, deployment: Obj) -> Obj:
    """One ``components.ingressGateways`` entry as istioctl would render this gateway again: name,
    namespace, label (its selector), replicas, the Service's type and annotations, the HPA's bounds."""
    meta = deployment["metadata"]
    entry: Obj = {"name": meta["name"], "enabled": True}
    if meta["namespace"] != ISTIO_NS:
        entry["namespace"] = meta["namespace"]
    selector = dict((deployment["spec"].get("selector") or {}).get("matchLabels") or {})
    if selector and selector != {"app": "istio-ingressgateway", "istio": "ingressgateway"}:
        entry["label"] = selector
    k8s: Obj = {}
    if deployment["spec"].get("replicas") not in (None, 1):
        k8s["replicaCount"] = deployment["spec"]["replicas"]
    service = next(
        (s for s in ctx.objects("v1", "Service", meta["namespace"]) if s["metadata"]["name"] == meta["name"]),
        None,
    )
    if service is not None:
        if service["spec"].get("type") not in (None, "LoadBalancer"):
            k8s["service"] = {"type": service["spec"]["type"]}
        annotations = service["metadata"].get("annotations") or {}
        if annotations:
            k8s["serviceAnnotations"] = dict(annotations)
    for hpa in ctx.objects("autoscaling/v2", "HorizontalPodAutoscaler", meta["namespace"]):
        hpa_spec = hpa.get("spec") or {}
        if (hpa_spec.get("scaleTargetRef") or {}).get("name") == meta["name"]:
            bounds = {k: hpa_spec[k] for k in ("minReplicas", "maxReplicas") if k in hpa_spec}
            if bounds != {"minReplicas": 1, "maxReplicas": 5}:
                k8s["hpaSpec"] = bounds
    if k8s:
        entry["k8s"] = k8s
    return entry


def merged_plan(installed: InstalledMesh, plan: Obj) -> Obj:
    """The installed settings with the user's plan over them (the plan wins where both speak)."""
    return operator.deep_merge(installed.spec, plan)


def plan_document(spec: Obj) -> str:
    return yaml.safe_dump(
        {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": spec}, sort_keys=False
    )
