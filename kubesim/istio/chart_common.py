"""The settings a render reads from an IstioOperator spec, and the metadata helpers every chart uses.

Part of the ``manifest generate`` emulation (``manifests.py`` assembles the charts: ``chart_base``,
``chart_istiod``, ``chart_gateway``, ``chart_cni``). Labels follow the charts of each release (istio-facts.md
§3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from istiofacts import operator
from istiofacts.catalog import IstioMinor, default_hub, minor_of

Obj = dict[str, Any]
NS = "istio-system"


@dataclass
class Gateway:
    """One ingress gateway of ``components.ingressGateways`` as the gateways chart renders it."""

    name: str
    namespace: str
    enabled: bool
    service_type: str
    security_context: Obj | None
    replicas: int
    labels: dict[str, str]
    hpa: Obj
    service_annotations: dict[str, str]
    pod_annotations: dict[str, str]

    @classmethod
    def of(cls, entry: Obj, default_enabled: bool, default_type: str, default_sc: Obj | None) -> Gateway:
        k8s = entry.get("k8s") or {}
        labels = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
        labels.update({str(k): str(v) for k, v in (entry.get("label") or {}).items()})
        return cls(
            name=entry.get("name") or "istio-ingressgateway",
            namespace=entry.get("namespace") or NS,
            enabled=bool(entry.get("enabled", default_enabled)),
            service_type=(k8s.get("service") or {}).get("type") or default_type,
            security_context=k8s.get("securityContext") or default_sc,
            replicas=int(k8s.get("replicaCount") or 1),
            labels=labels,
            hpa=dict(k8s.get("hpaSpec") or {}),
            service_annotations=dict(k8s.get("serviceAnnotations") or {}),
            pod_annotations=dict(k8s.get("podAnnotations") or {}),
        )


class Settings:
    """The resolved install settings of a spec for one version."""

    def __init__(self, version: str, spec: Obj) -> None:
        self.version = version
        self.minor: IstioMinor = minor_of(version)
        self.spec = spec
        g = lambda path, default=None: operator.get(spec, path, default)  # noqa: E731
        self.profile = g("profile", "default")
        # No hub set: the version's own default hub (what its release build embedded; catalog.default_hub).
        self.hub = g("hub") or g("values.global.hub") or default_hub(version)
        self.tag = str(g("tag") or g("values.global.tag") or version)
        variant = g("values.global.variant") or ""
        self.suffix = f"-{variant}" if variant else ""
        self.revision = g("revision") or g("values.revision") or ""
        self.pull_secrets = [
            s if isinstance(s, str) else s.get("name") for s in g("values.global.imagePullSecrets") or []
        ]
        # The CNI DaemonSet renders only from components.cni.enabled, in every version. Injection's CNI mode:
        # up
        # to 1.23 istio_cni.enabled is overwritten from the component (1.23.6
        # operator/pkg/translate/translate.go)
        # and 1.22-1.23 also honour pilot.cni.enabled; from 1.24 pilot.cni.enabled is set from the component
        # (1.24.0 operator/pkg/render/manifest.go), and the injection template reads only that.
        cni_component = bool(g("components.cni.enabled"))
        self.cni_daemonset = cni_component
        self.cni_injection = cni_component or (
            self.minor.at_least("1.22")
            and not self.minor.at_least("1.24")
            and bool(g("values.pilot.cni.enabled"))
        )
        # Every entry of components.ingressGateways is a gateway of its own, in its namespace (istio/istio
        # 1.30.3 operator/pkg/component/component.go: Multi, a spec's namespace defaulting to istio-system;
        # render/manifest.go applyComponentValuesToHelmValues: the gateway chart gets the entry's name and
        # label). With none listed, the profile's one istio-ingressgateway (profiles default and demo).
        listed = g("components.ingressGateways") or [{}]
        default_type = g("values.gateways.istio-ingressgateway.type") or "LoadBalancer"
        default_sc = g("values.gateways.securityContext")
        self.gateways = [
            Gateway.of(entry, self.profile in ("default", "demo"), default_type, default_sc)
            for entry in listed
        ]
        self.gateways = [gw for gw in self.gateways if gw.enabled]
        self.pilot_security_context = g("components.pilot.k8s.securityContext")
        self.pilot_replicas = int(
            g("components.pilot.k8s.replicaCount") or g("values.pilot.replicaCount") or 1
        )
        self.pilot_autoscale_min = int(g("values.pilot.autoscaleMin") or 1)
        # values.pilot.env: the chart renders each as a quoted string, keys sorted (Go ranges a map in key
        # order; istio-discovery templates/deployment.yaml ``range $key, $val := .Values.env``).
        self.pilot_env: dict[str, Any] = dict(g("values.pilot.env") or {})
        self.pilot_resources: Obj | None = g("components.pilot.k8s.resources") or g("values.pilot.resources")
        self.base_enabled = self.profile not in ("empty", "remote") or bool(g("components.base.enabled"))
        self.pilot_enabled = g("components.pilot.enabled", self.profile not in ("empty", "remote"))
        self.cni_namespace = g("components.cni.namespace") or g("values.cni.namespace") or NS

    def image(self, name: str) -> str:
        return f"{self.hub}/{name}:{self.tag}{self.suffix}"

    @property
    def rev_suffix(self) -> str:
        return f"-{self.revision}" if self.revision else ""

    @property
    def rev_label(self) -> str:
        return self.revision or "default"


def labels_of(s: Settings, app: str, component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    chart = {"Pilot": "istiod", "IngressGateways": "gateway", "Base": "base", "Cni": "cni"}[component]
    labels = {
        "app": app,
        "install.operator.istio.io/owning-resource": "unknown",
        "operator.istio.io/component": component,
        "release": "istio",
    }
    if s.minor.helm_labels:  # the charts' helper labels exist from 1.24
        labels.update(
            {
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/instance": "istio",
                "app.kubernetes.io/part-of": "istio",
                "app.kubernetes.io/managed-by": "Helm",
                "app.kubernetes.io/version": s.version,
                "helm.sh/chart": f"{chart}-{s.version}",
            }
        )
    if component != "Base":
        labels["istio.io/rev"] = s.rev_label
    labels.update(extra or {})
    return labels


def meta(name: str, labels: dict[str, str], namespace: str | None = NS, **extra: Any) -> Obj:
    meta: Obj = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def service_account(s: Settings, meta: Obj) -> Obj:
    """A ServiceAccount as the charts render it: ``values.global.imagePullSecrets`` land here (and on no pod
    spec) in every version (istio-discovery, istio-ingress, istio-cni serviceaccount.yaml and base
    reader-serviceaccount.yaml; catalog.PULL_SECRET_SOURCES); pods get them from their ServiceAccount."""
    sa: Obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    if s.pull_secrets:
        sa["imagePullSecrets"] = [{"name": n} for n in s.pull_secrets]
    return sa


def pod_security(sc: Obj | None) -> Obj:
    return dict(sc) if sc else {}
