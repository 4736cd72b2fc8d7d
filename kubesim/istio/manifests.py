"""What ``istioctl manifest generate`` renders for a version and an IstioOperator spec.

The kinds, names, labels, images, ports and ordering follow the charts of each release (istio-facts.md §3):
base CRDs, the istiod control plane with its webhooks, the ingress gateway, and the CNI DaemonSet when
``components.cni.enabled`` is set. A revision renames the per-revision objects. Settings users rely on are
honoured: hub, tag, variant, image pull secrets, gateway Service type, component ``k8s.securityContext``,
replica counts. What only ``istioctl install`` adds at apply time is in ``with_owner_labels`` and
``default_tag_webhooks``.
"""

from __future__ import annotations

import json
from typing import Any

from istiofacts import operator
from istiofacts.catalog import OPERATOR_CRD, IstioMinor, default_hub, minor_of

Obj = dict[str, Any]
NS = "istio-system"

KIND_ORDER = [
    "CustomResourceDefinition",
    "Namespace",
    "ResourceQuota",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ConfigMap",
    "Secret",
    "Service",
    "Deployment",
    "DaemonSet",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "EnvoyFilter",
]

# 1.24+ ``manifest generate`` order (operator/cmd/mesh/manifest-generate.go objectKindOrdering), then group,
# kind,
# name; anything not listed ranks with Deployments (1000).
_SORT_1_24 = {
    "apiextensions.k8s.io/CustomResourceDefinition": -1000,
    "/ServiceAccount": 1,
    "rbac.authorization.k8s.io/ClusterRole": 1,
    "rbac.authorization.k8s.io/ClusterRoleBinding": 2,
    "admissionregistration.k8s.io/ValidatingWebhookConfiguration": 3,
    "/ConfigMap": 100,
    "apps/Deployment": 1000,
    "autoscaling/HorizontalPodAutoscaler": 1001,
    "/Service": 10000,
}

_CRD_KINDS = {
    "authorizationpolicies": "AuthorizationPolicy",
    "peerauthentications": "PeerAuthentication",
    "requestauthentications": "RequestAuthentication",
    "destinationrules": "DestinationRule",
    "envoyfilters": "EnvoyFilter",
    "gateways": "Gateway",
    "proxyconfigs": "ProxyConfig",
    "serviceentries": "ServiceEntry",
    "sidecars": "Sidecar",
    "virtualservices": "VirtualService",
    "workloadentries": "WorkloadEntry",
    "workloadgroups": "WorkloadGroup",
    "telemetries": "Telemetry",
    "wasmplugins": "WasmPlugin",
    "trafficextensions": "TrafficExtension",
    "istiooperators": "IstioOperator",
}
_SHORT = {
    "gateways": ["gw"],
    "virtualservices": ["vs"],
    "destinationrules": ["dr"],
    "serviceentries": ["se"],
    "peerauthentications": ["pa"],
    "requestauthentications": ["ra"],
    "workloadentries": ["we"],
    "workloadgroups": ["wg"],
    "telemetries": ["telemetry"],
    "istiooperators": ["iop", "io"],
}


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
        gateways = g("components.ingressGateways") or []
        gateway = gateways[0] if gateways else {}
        self.gateway_enabled = (
            gateway.get("enabled", self.profile in ("default", "demo"))
            if gateways
            else (self.profile in ("default", "demo"))
        )
        self.gateway_service_type = (
            ((gateway.get("k8s") or {}).get("service") or {}).get("type")
            or g("values.gateways.istio-ingressgateway.type")
            or "LoadBalancer"
        )
        self.gateway_security_context = (gateway.get("k8s") or {}).get("securityContext") or g(
            "values.gateways.securityContext"
        )
        self.pilot_security_context = g("components.pilot.k8s.securityContext")
        self.pilot_replicas = int(
            g("components.pilot.k8s.replicaCount") or g("values.pilot.replicaCount") or 1
        )
        self.pilot_autoscale_min = int(g("values.pilot.autoscaleMin") or 1)
        self.gateway_replicas = int((gateway.get("k8s") or {}).get("replicaCount") or 1)
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


def _labels(s: Settings, app: str, component: str, extra: dict[str, str] | None = None) -> dict[str, str]:
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


def _meta(name: str, labels: dict[str, str], namespace: str | None = NS, **extra: Any) -> Obj:
    meta: Obj = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


def _crds(s: Settings) -> list[Obj]:
    out = []
    for full in s.minor.crds:
        plural, group = full.split(".", 1)
        # Served and storage versions as the base chart of this minor has them (catalog: crd_versions.json).
        versions = list(s.minor.served_versions(full))
        storage = s.minor.storage_version(full)
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {
                    "name": full,
                    # base chart CRD labels: the Tiller-era ones up to 1.23, Helm's helper labels from 1.24
                    # (crds/crd-all.gen.yaml, then files/crd-all.gen.yaml through the templates).
                    "labels": {
                        "app.kubernetes.io/instance": "istio-base",
                        "app.kubernetes.io/managed-by": "Helm",
                        "app.kubernetes.io/part-of": "istio",
                        "app.kubernetes.io/version": s.version,
                        "helm.sh/chart": f"base-{s.version}",
                    }
                    if s.minor.helm_labels
                    else {"release": "istio"}
                    if full == OPERATOR_CRD
                    else {"app": "istio-pilot", "chart": "istio", "heritage": "Tiller", "release": "istio"},
                    "annotations": {"helm.sh/resource-policy": "keep"},
                },
                "spec": {
                    "group": group,
                    "scope": "Namespaced",
                    "names": {
                        "kind": _CRD_KINDS[plural],
                        "listKind": _CRD_KINDS[plural] + "List",
                        "plural": plural,
                        "singular": _CRD_KINDS[plural].lower(),
                        **(
                            {"categories": ["istio-io", group.split(".")[0] + "-istio-io"]}
                            if full != OPERATOR_CRD
                            else {}
                        ),
                        **({"shortNames": _SHORT[plural]} if plural in _SHORT else {}),
                    },
                    "versions": [
                        {
                            "name": v,
                            "served": True,
                            "storage": v == storage,
                            "subresources": {"status": {}},
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "properties": {
                                        "spec": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                        "status": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                    },
                                }
                            },
                        }
                        for v in versions
                    ],
                },
            }
        )
    return out


def _service_account(s: Settings, meta: Obj) -> Obj:
    """A ServiceAccount as the charts render it: ``values.global.imagePullSecrets`` land here (and on no pod
    spec) in every version (istio-discovery, istio-ingress, istio-cni serviceaccount.yaml and base
    reader-serviceaccount.yaml; catalog.PULL_SECRET_SOURCES); pods get them from their ServiceAccount."""
    sa: Obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    if s.pull_secrets:
        sa["imagePullSecrets"] = [{"name": n} for n in s.pull_secrets]
    return sa


def _pod_security(sc: Obj | None) -> Obj:
    return dict(sc) if sc else {}


def _mesh_config(s: Settings) -> str:
    mesh = {
        "defaultConfig": {"discoveryAddress": f"istiod{s.rev_suffix}.{NS}.svc:15012"},
        "defaultProviders": {"metrics": ["prometheus"]},
        "enablePrometheusMerge": True,
        "rootNamespace": NS,
        "trustDomain": "cluster.local",
    }
    mesh.update(operator.get(s.spec, "meshConfig", {}) or {})
    import yaml

    return yaml.safe_dump(mesh, sort_keys=True)


def _injector_values(s: Settings) -> Obj:
    return {
        "global": {
            "hub": s.hub,
            "tag": s.tag,
            "variant": s.suffix.lstrip("-"),
            "imagePullSecrets": s.pull_secrets,
            "imagePullPolicy": "",
            "istioNamespace": NS,
            "proxy": {"image": "proxyv2", "statusPort": 15020, "holdApplicationUntilProxyStarts": False},
            "proxy_init": {"image": "proxyv2"},
        },
        "revision": s.revision,
        "istio_cni": {"enabled": s.cni_injection},
        "pilot": {"cni": {"enabled": s.cni_injection}},
        "sidecarInjectorWebhook": {"enableNamespacesByDefault": False},
        "version": s.version,
    }


def _istiod_env(s: Settings) -> list[Obj]:
    """istiod's env as the istio-discovery chart renders it per minor (templates/deployment.yaml; compared
    with ``helm template`` of the chart at 1.20.8, 1.22.8, 1.24.6, 1.26.8, 1.28.10, 1.29.6, 1.30.3,
    1.31.0-rc.0): JWT_POLICY up to 1.20, CA_TRUSTED_NODE_ACCOUNTS from 1.24, GOMEMLIMIT up to 1.28."""

    def field(path: str) -> Obj:
        return {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}

    env: list[Obj] = [{"name": "REVISION", "value": s.rev_label}]
    if not s.minor.at_least("1.21"):
        env.append({"name": "JWT_POLICY", "value": "third-party-jwt"})
    env += [
        {"name": "PILOT_CERT_PROVIDER", "value": "istiod"},
        {"name": "POD_NAME", "valueFrom": field("metadata.name")},
        {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
        {"name": "SERVICE_ACCOUNT", "valueFrom": field("spec.serviceAccountName")},
        {"name": "KUBECONFIG", "value": "/var/run/secrets/remote/config"},
    ]
    if s.minor.at_least("1.24"):
        env.append({"name": "CA_TRUSTED_NODE_ACCOUNTS", "value": f"{NS}/ztunnel"})
    env += [
        {"name": "PILOT_TRACE_SAMPLING", "value": "1"},
        {"name": "PILOT_ENABLE_ANALYSIS", "value": "false"},
        {"name": "CLUSTER_ID", "value": "Kubernetes"},
    ]
    if not s.minor.at_least("1.29"):
        env.append({"name": "GOMEMLIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}})
    env += [
        {"name": "GOMAXPROCS", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1"}}},
        {"name": "PLATFORM", "value": ""},
    ]
    return env


def _pilot(s: Settings) -> list[Obj]:
    rev = s.rev_suffix
    name = f"istiod{rev}"
    istio_label = "istiod" if s.revision else "pilot"
    labels = _labels(s, "istiod", "Pilot", {"istio": "pilot"})  # the pods say istiod when revisioned
    pod_labels = {
        "app": "istiod",
        "istio.io/rev": s.rev_label,
        "install.operator.istio.io/owning-resource": "unknown",
        "sidecar.istio.io/inject": "false",
        "operator.istio.io/component": "Pilot",
        "istio": istio_label,
        "istio.io/dataplane-mode": "none",
    }
    if s.minor.helm_labels:
        pod_labels.update(
            {
                "app.kubernetes.io/name": "istiod",
                "app.kubernetes.io/managed-by": "Helm",
                "app.kubernetes.io/instance": "istio",
                "app.kubernetes.io/part-of": "istio",
                "app.kubernetes.io/version": s.version,
                "helm.sh/chart": f"istiod-{s.version}",
            }
        )
    pod_spec: Obj = {
        "serviceAccountName": name,
        "tolerations": [{"key": "cni.istio.io/not-ready", "operator": "Exists"}],
        "securityContext": _pod_security(s.pilot_security_context),
        "containers": [
            {
                "name": "discovery",
                "image": s.image("pilot"),
                "args": [
                    "discovery",
                    "--monitoringAddr=:15014",
                    "--log_output_level=default:info",
                    "--domain",
                    "cluster.local",
                    "--keepaliveMaxServerConnectionAge",
                    "30m",
                ],
                "ports": [
                    {"containerPort": 8080, "protocol": "TCP", "name": "http-debug"},
                    {"containerPort": 15010, "protocol": "TCP", "name": "grpc-xds"},
                    {"containerPort": 15012, "protocol": "TCP", "name": "tls-xds"},
                    {"containerPort": 15017, "protocol": "TCP", "name": "https-webhooks"},
                    {"containerPort": 15014, "protocol": "TCP", "name": "http-monitoring"},
                ],
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": 8080},
                    "initialDelaySeconds": 1,
                    "periodSeconds": 3,
                    "timeoutSeconds": 5,
                },
                "env": _istiod_env(s),
                "resources": {"requests": {"cpu": "500m", "memory": "2048Mi"}},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    values_doc = {
        "original-values": json.dumps(s.spec.get("values") or {}),
        "merged-values": json.dumps(_injector_values(s)),
    }
    objs: list[Obj] = [
        _service_account(s, _meta(f"istiod{rev}", labels)),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"istio{rev}", _labels(s, "istiod", "Pilot")),
            "data": {"mesh": _mesh_config(s), "meshNetworks": "networks: {}"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(f"istio-sidecar-injector{rev}", _labels(s, "sidecar-injector", "Pilot")),
            "data": {
                "values": json.dumps(_injector_values(s), sort_keys=True),
                "config": "policy: enabled\n"
                "alwaysInjectSelector: []\nneverInjectSelector: []\ninjectedAnnotations: {}\n"
                "defaultTemplates: [sidecar]\ntemplates:\n  sidecar: |\n    # sidecar injection template\n",
            },
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(f"istiod{rev}-clusterrole-{NS}", labels, None),
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(f"istiod{rev}-gateway-controller-{NS}", labels, None),
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments"],
                    "verbs": ["get", "watch", "list", "update", "patch", "create", "delete"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(
                f"istio-reader{rev}-clusterrole-{NS}", _labels(s, "istio-reader", "Pilot"), None
            ),
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
        },
    ]
    for role in (f"istiod{rev}-clusterrole-{NS}", f"istiod{rev}-gateway-controller-{NS}"):
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": _meta(role, labels, None),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": f"istiod{rev}", "namespace": NS}],
            }
        )
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(
                f"istio-reader{rev}-clusterrole-{NS}", _labels(s, "istio-reader", "Pilot"), None
            ),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"istio-reader{rev}-clusterrole-{NS}",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "istio-reader-service-account", "namespace": NS}],
        }
    )
    objs += [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(f"istiod{rev}", labels),
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps", "secrets"],
                    "verbs": ["create", "get", "watch", "list", "update", "delete"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(f"istiod{rev}", labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"istiod{rev}"},
            "subjects": [{"kind": "ServiceAccount", "name": f"istiod{rev}", "namespace": NS}],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(f"istiod{rev}", labels),
            "spec": {
                "selector": {"app": "istiod", "istio.io/rev": s.rev_label},
                "ports": [
                    {"port": 15010, "name": "grpc-xds", "protocol": "TCP"},
                    {"port": 15012, "name": "https-dns", "protocol": "TCP"},
                    {"port": 443, "name": "https-webhook", "targetPort": 15017, "protocol": "TCP"},
                    {"port": 15014, "name": "http-monitoring", "protocol": "TCP"},
                ],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(f"istiod{rev}", labels),
            "spec": {
                "replicas": s.pilot_replicas,
                "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
                # The chart selects {istio: pilot}, or with a revision {app: istiod, istio.io/rev: <rev>}.
                "selector": {
                    "matchLabels": {"app": "istiod", "istio.io/rev": s.revision}
                    if s.revision
                    else {"istio": "pilot"}
                },
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {
                            "prometheus.io/port": "15014",
                            "prometheus.io/scrape": "true",
                            "sidecar.istio.io/inject": "false",
                        },
                    },
                    "spec": pod_spec,
                },
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(f"istiod{rev}", labels),
            "spec": {
                "minReplicas": s.pilot_autoscale_min,
                "maxReplicas": 5,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"istiod{rev}"},
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    ]
    if s.minor.values_configmap:
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(f"values{rev}", labels),
                "data": values_doc,
            }
        )
    if s.minor.pdb_always or max(s.pilot_replicas, s.pilot_autoscale_min) > 1:
        objs.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _meta(f"istiod{rev}", labels),
                "spec": {
                    "minAvailable": 1,
                    "selector": {"matchLabels": {"app": "istiod", "istio.io/rev": s.rev_label}},
                },
            }
        )
    objs.append(_injector_webhook(s, labels))
    objs.append(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": _meta(f"istio-validator{rev}-{NS}", dict(labels, **{"istio": "istiod"}), None),
            "webhooks": [
                {
                    "name": "rev.validation.istio.io",
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Ignore",
                    "clientConfig": {
                        "service": {"name": f"istiod{rev}", "namespace": NS, "path": "/validate", "port": 443}
                    },
                    "objectSelector": {
                        "matchExpressions": [
                            {"key": "istio.io/rev", "operator": "In", "values": [s.rev_label]}
                        ]
                    },
                    "rules": [
                        {
                            "operations": ["CREATE", "UPDATE"],
                            "apiGroups": [
                                "security.istio.io",
                                "networking.istio.io",
                                "telemetry.istio.io",
                                "extensions.istio.io",
                            ],
                            "apiVersions": ["*"],
                            "resources": ["*"],
                        }
                    ],
                }
            ],
        }
    )
    return objs


def injector_webhooks(s: Settings, name_prefix: str = "", tag: str | None = None) -> list[Obj]:
    """The injection webhooks of a revision (or of a revision tag)."""
    rev = tag or s.rev_label
    client = {"service": {"name": f"istiod{s.rev_suffix}", "namespace": NS, "path": "/inject", "port": 443}}
    pods = [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]
    base = {
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Fail",
        "reinvocationPolicy": "Never",
        "clientConfig": client,
        "rules": pods,
    }
    hooks = [
        dict(
            base,
            name=f"{name_prefix}rev.namespace.sidecar-injector.istio.io",
            namespaceSelector={
                "matchExpressions": [
                    {"key": "istio.io/rev", "operator": "In", "values": [rev]},
                    {"key": "istio-injection", "operator": "DoesNotExist"},
                ]
            },
            objectSelector={
                "matchExpressions": [
                    {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}
                ]
            },
        ),
        dict(
            base,
            name=f"{name_prefix}rev.object.sidecar-injector.istio.io",
            namespaceSelector={
                "matchExpressions": [
                    {"key": "istio.io/rev", "operator": "DoesNotExist"},
                    {"key": "istio-injection", "operator": "DoesNotExist"},
                ]
            },
            objectSelector={
                "matchExpressions": [
                    {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]},
                    {"key": "istio.io/rev", "operator": "In", "values": [rev]},
                ]
            },
        ),
    ]
    if rev == "default":
        hooks += [
            dict(
                base,
                name=f"{name_prefix}namespace.sidecar-injector.istio.io",
                namespaceSelector={
                    "matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]
                },
                objectSelector={
                    "matchExpressions": [
                        {"key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"]}
                    ]
                },
            ),
            dict(
                base,
                name=f"{name_prefix}object.sidecar-injector.istio.io",
                namespaceSelector={
                    "matchExpressions": [
                        {"key": "istio-injection", "operator": "DoesNotExist"},
                        {"key": "istio.io/rev", "operator": "DoesNotExist"},
                    ]
                },
                objectSelector={
                    "matchExpressions": [
                        {"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]},
                        {"key": "istio.io/rev", "operator": "DoesNotExist"},
                    ]
                },
            ),
        ]
    return hooks


def _injector_webhook(s: Settings, labels: dict[str, str]) -> Obj:
    # With no revision the istio-discovery chart renders four webhooks (rev.namespace., rev.object.,
    # namespace.,
    # object.; templates/mutatingwebhook.yaml); with a revision the two rev.* ones.
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _meta(
            f"istio-sidecar-injector{s.rev_suffix}", _labels(s, "sidecar-injector", "Pilot"), None
        ),
        "webhooks": injector_webhooks(s),
    }


# What istioctl puts on the webhooks of istio-sidecar-injector when a default tag takes over injection
# (istioctl/pkg/tag DeactivateIstioInjectionWebhook: util.NeverMatch), so the two never both match a pod.
NEVER_MATCH = {"matchLabels": {"istio.io/deactivated": "never-match"}}


def deactivated(webhook_config: Obj) -> Obj:
    """``webhook_config`` with every webhook made ineffectual, as ``istioctl tag set default`` and ``istioctl
    install`` leave the revision's own injector once the default tag webhook exists."""
    out = json.loads(json.dumps(webhook_config))
    for hook in out.get("webhooks") or []:
        hook["namespaceSelector"] = dict(NEVER_MATCH)
        hook["objectSelector"] = dict(NEVER_MATCH)
    return out


def _gateway(s: Settings) -> list[Obj]:
    name = "istio-ingressgateway"
    labels = _labels(s, name, "IngressGateways", {"istio": "ingressgateway"})
    pod_labels = {
        "app": name,
        "istio": "ingressgateway",
        "istio.io/rev": s.rev_label,
        "install.operator.istio.io/owning-resource": "unknown",
        "operator.istio.io/component": "IngressGateways",
        "sidecar.istio.io/inject": "false",
        "service.istio.io/canonical-name": name,
        "service.istio.io/canonical-revision": "latest",
    }
    if s.minor.at_least(
        "1.25"
    ):  # gateways/istio-ingress templates/deployment.yaml: on the Deployment and its pods
        pod_labels["istio.io/dataplane-mode"] = "none"
        labels = dict(labels, **{"istio.io/dataplane-mode": "none"})
    proxy_config = json.dumps({"discoveryAddress": f"istiod{s.rev_suffix}.{NS}.svc:15012"})
    pod_spec: Obj = {
        "serviceAccountName": "istio-ingressgateway-service-account",
        "securityContext": _pod_security(s.gateway_security_context)
        or {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True, "fsGroup": 1337},
        "containers": [
            {
                "name": "istio-proxy",
                "image": s.image("proxyv2"),
                "args": [
                    "proxy",
                    "router",
                    "--domain",
                    "$(POD_NAMESPACE).svc.cluster.local",
                    "--proxyLogLevel=warning",
                    "--log_output_level=default:info",
                ],
                "ports": [
                    {"containerPort": 15021, "protocol": "TCP", "name": "status-port"},
                    {"containerPort": 8080, "protocol": "TCP", "name": "http2"},
                    {"containerPort": 8443, "protocol": "TCP", "name": "https"},
                    {"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"},
                ],
                "readinessProbe": {
                    "httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"},
                    "initialDelaySeconds": 1,
                    "periodSeconds": 2,
                    "failureThreshold": 30,
                },
                "env": [
                    {"name": "PROXY_CONFIG", "value": proxy_config},
                    {"name": "ISTIO_META_WORKLOAD_NAME", "value": name},
                    {"name": "ISTIO_META_CLUSTER_ID", "value": "Kubernetes"},
                ],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "privileged": False,
                },
            }
        ],
    }
    objs = [
        _service_account(s, _meta(f"{name}-service-account", labels)),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(f"{name}-sds", labels),
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(f"{name}-sds", labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-sds"},
            "subjects": [{"kind": "ServiceAccount", "name": f"{name}-service-account"}],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(name, labels),
            "spec": {
                "type": s.gateway_service_type,
                "selector": {"app": name, "istio": "ingressgateway"},
                "ports": [
                    {"name": "status-port", "port": 15021, "protocol": "TCP", "targetPort": 15021},
                    {"name": "http2", "port": 80, "protocol": "TCP", "targetPort": 8080},
                    {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 8443},
                ],
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(name, labels),
            "spec": {
                "replicas": s.gateway_replicas,
                "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
                "selector": {"matchLabels": {"app": name, "istio": "ingressgateway"}},
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {
                            "prometheus.io/path": "/stats/prometheus",
                            "prometheus.io/port": "15020",
                            "prometheus.io/scrape": "true",
                            "sidecar.istio.io/inject": "false",
                        },
                    },
                    "spec": pod_spec,
                },
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(name, labels),
            "spec": {
                "minReplicas": 1,
                "maxReplicas": 5,
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    ]
    if s.minor.pdb_always or s.gateway_replicas > 1:
        objs.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": _meta(name, labels),
                "spec": {
                    "minAvailable": 1,
                    "selector": {"matchLabels": {"app": name, "istio": "ingressgateway"}},
                },
            }
        )
    return objs


def _cni(s: Settings) -> list[Obj]:
    ns = s.cni_namespace
    labels = _labels(s, "istio-cni", "Cni", {"k8s-app": "istio-cni-node"})
    pod_spec: Obj = {
        "serviceAccountName": "istio-cni",
        "hostNetwork": False,
        "priorityClassName": "",
        "tolerations": [
            {"effect": "NoSchedule", "operator": "Exists"},
            {"key": "CriticalAddonsOnly", "operator": "Exists"},
            {"effect": "NoExecute", "operator": "Exists"},
        ],
        "containers": [
            {
                "name": "install-cni",
                "image": s.image("install-cni"),
                "command": ["install-cni"],
                "args": ["--log_output_level=info"],
                "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000}},
                "securityContext": {
                    "privileged": True,
                    "runAsUser": 0,
                    "runAsGroup": 0,
                    "runAsNonRoot": False,
                },
            }
        ],
    }
    roles = ("istio-cni", "istio-cni-repair-role")
    objs: list[Obj] = [
        _service_account(s, _meta("istio-cni", labels, ns)),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("istio-cni-config", labels, ns),
            "data": {
                "CURRENT_AGENT_VERSION": s.version,
                "LOG_LEVEL": "info",
                "CHAINED_CNI_PLUGIN": str(operator.get(s.spec, "values.cni.chained", True)).lower(),
            },
        },
    ]
    for role in roles:
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": _meta(role, labels, None),
                "rules": [
                    {
                        "apiGroups": [""],
                        "resources": ["pods", "nodes", "namespaces"],
                        "verbs": ["get", "list", "watch"],
                    }
                ],
            }
        )
        binding = "istio-cni" if role == "istio-cni" else "istio-cni-repair-rolebinding"
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": _meta(binding, labels, None),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": "istio-cni", "namespace": ns}],
            }
        )
    objs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": _meta("istio-cni-node", labels, ns),
            "spec": {
                "selector": {"matchLabels": {"k8s-app": "istio-cni-node"}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": {
                    "metadata": {
                        "labels": {
                            "k8s-app": "istio-cni-node",
                            "sidecar.istio.io/inject": "false",
                            "istio.io/dataplane-mode": "none",
                        },
                        "annotations": {"sidecar.istio.io/inject": "false"},
                    },
                    "spec": pod_spec,
                },
            },
        }
    )
    return objs


def render(version: str, spec: Obj) -> list[Obj]:
    """The objects of ``istioctl manifest generate`` for ``version`` with ``spec`` (validated first)."""
    operator.validate(spec, version)
    s = Settings(version, spec)
    objs: list[Obj] = []
    if s.base_enabled:
        objs += _crds(s)
        objs.append(
            _service_account(s, _meta("istio-reader-service-account", _labels(s, "istio-reader", "Base")))
        )
    if s.pilot_enabled:
        objs += _pilot(s)
    if s.gateway_enabled:
        objs += _gateway(s)
    if s.cni_daemonset:
        objs += _cni(s)

    def order(o: Obj) -> tuple[int, str, str, str]:
        kind = o["kind"]
        group = o["apiVersion"].rpartition("/")[0]
        if s.minor.at_least("1.24"):
            rank = _SORT_1_24.get(f"{group}/{kind}", 1000)
        else:
            rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        return (rank, group, kind, o["metadata"]["name"])

    return sorted(objs, key=order)


def to_yaml(objs: list[Obj]) -> str:
    import yaml

    # libyaml's emitter when PyYAML has it: a whole installation is rendered on every manifest generate.
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return "---\n".join(yaml.dump(o, Dumper=dumper, sort_keys=False) for o in objs)


def with_owner_labels(objs: list[Obj], version: str, spec: Obj) -> list[Obj]:
    """The objects with the ownership labels ``istioctl install`` puts on what it applies (and prunes by)."""
    owner = operator.apply_time_labels(version, NS, Settings(version, spec).rev_label)
    out = []
    for obj in objs:
        obj = json.loads(json.dumps(obj))
        obj["metadata"].setdefault("labels", {}).update(owner)
        out.append(obj)
    return out


def default_tag_webhooks(objs: list[Obj], version: str, spec: Obj, previous_install: bool) -> list[Obj]:
    """What ``istioctl install`` applies after the components are ready: the default tag webhooks when a
    default installation is made or no installation existed before (operator/pkg/webhook WebhooksToDeploy,
    detectIfTagWebhookIsNeeded), and the default revision's own injector deactivated, as creating the default
    tag does (istioctl/pkg/tag DeactivateIstioInjectionWebhook). Empty when no tag is needed."""
    s = Settings(version, spec)
    owner = operator.apply_time_labels(version, NS, s.rev_label)
    out: list[Obj] = []
    if s.pilot_enabled and (not s.revision or not previous_install):
        out = [
            deactivated(o)
            for o in with_owner_labels(objs, version, spec)
            if o["kind"] == "MutatingWebhookConfiguration"
            and o["metadata"]["name"] == "istio-sidecar-injector"
        ]
        tag_labels = {
            **{k: v for k, v in owner.items() if k != "istio.io/rev"},
            "istio.io/rev": s.rev_label,
            "istio.io/tag": "default",
            "app": "sidecar-injector",
            "install.operator.istio.io/owning-resource-not-pruned": "true",
        }
        out.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "istio-revision-tag-default", "labels": tag_labels},
                "webhooks": injector_webhooks(s, tag="default"),
            }
        )
        out.append(
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": "istiod-default-validator", "labels": dict(tag_labels, app="istiod")},
                "webhooks": [
                    {
                        "name": "validation.istio.io",
                        "admissionReviewVersions": ["v1"],
                        "sideEffects": "None",
                        "failurePolicy": "Ignore",
                        "clientConfig": {
                            "service": {"name": "istiod", "namespace": NS, "path": "/validate", "port": 443}
                        },
                        "rules": [
                            {
                                "operations": ["CREATE", "UPDATE"],
                                "apiGroups": [
                                    "security.istio.io",
                                    "networking.istio.io",
                                    "telemetry.istio.io",
                                    "extensions.istio.io",
                                ],
                                "apiVersions": ["*"],
                                "resources": ["*"],
                            }
                        ],
                    }
                ],
            }
        )
    return out
