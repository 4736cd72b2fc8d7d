"""The istio-discovery chart of ``manifest generate``: istiod, its ConfigMaps (mesh, injector, values),
RBAC, Service, HPA/PDB and the injection and validation webhooks; and the deactivation of an injector that a
default revision tag takes over."""

from __future__ import annotations

import json
from typing import Any

from istiofacts import operator

from .chart_common import NS, Settings, labels_of, meta, pod_security, service_account


def validation_rules() -> list[dict[str, Any]]:
    """The rules of istiod's validating webhooks (the istiod-<rev> validator and the default tag's
    istiod-default-validator render the same list in the istio-discovery chart)."""
    return [
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
    ]


Obj = dict[str, Any]


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
    if s.minor.at_least("1.24") and "CA_TRUSTED_NODE_ACCOUNTS" not in s.pilot_env:
        env.append({"name": "CA_TRUSTED_NODE_ACCOUNTS", "value": f"{NS}/ztunnel"})
    # values.pilot.env, keys sorted, each value a quoted string (1.30.3 templates/deployment.yaml lines
    # 182-187, after CA_TRUSTED_NODE_ACCOUNTS; 1.22.8 lines 150-155, after KUBECONFIG); Go's text/template
    # prints a boolean as true/false.
    env += [{"name": k, "value": _go_text(v)} for k, v in sorted(s.pilot_env.items())]
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


VALUES_DESCRIPTION = (
    "This ConfigMap contains the Helm values used during chart rendering. This ConfigMap is rendered for "
    "debugging purposes and external tooling; modifying these values has no effect."
)


def _go_text(value: Any) -> str:
    """A value as Go's text/template prints it into ``"{{ $val }}"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pretty_json(value: Any) -> str:
    """Sprig's toPrettyJson: encoding/json MarshalIndent with two spaces, map keys sorted, HTML escaped."""
    text = json.dumps(value, indent=2, sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def chart_values(s: Settings) -> tuple[Obj, Obj]:
    """The istio-discovery chart's values as the ``values`` ConfigMap shows them: ``original-values`` what
    istioctl passed (spec.values with what istioctl translates into them: hub, tag, revision, meshConfig;
    1.30.3 operator/pkg/render/manifest.go), ``merged-values`` those over the chart's defaults with
    ``pilot.*`` copied to the top (templates/zzz_profile.yaml, zzy_descope_legacy.yaml). The simulator knows
    the defaults it renders, not every key of the chart's values.yaml."""
    original: Obj = json.loads(json.dumps(s.spec.get("values") or {}))
    glob = original.setdefault("global", {})
    glob.setdefault("hub", s.hub)
    glob.setdefault("tag", s.tag)
    glob.setdefault("istioNamespace", NS)
    if s.revision:
        original.setdefault("revision", s.revision)
    if s.spec.get("meshConfig"):
        original["meshConfig"] = s.spec["meshConfig"]
    defaults: Obj = dict(_injector_values(s))
    defaults.update(
        {
            "autoscaleMin": 1,
            "autoscaleMax": 5,
            "replicaCount": 1,
            "image": "pilot",
            "traceSampling": 1.0,
            "env": {},
            "resources": {"requests": {"cpu": "500m", "memory": "2048Mi"}},
        }
    )
    merged = operator.deep_merge(defaults, original)
    merged = operator.deep_merge(merged, original.get("pilot") or {})
    return original, merged


def pilot(s: Settings) -> list[Obj]:
    rev = s.rev_suffix
    name = f"istiod{rev}"
    istio_label = "istiod" if s.revision else "pilot"
    labels = labels_of(s, "istiod", "Pilot", {"istio": "pilot"})  # the pods say istiod when revisioned
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
        "securityContext": pod_security(s.pilot_security_context),
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
                "resources": s.pilot_resources or {"requests": {"cpu": "500m", "memory": "2048Mi"}},
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "runAsNonRoot": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }
    original, merged = chart_values(s)
    values_doc = {"original-values": _pretty_json(original), "merged-values": _pretty_json(merged)}
    objs: list[Obj] = [
        service_account(s, meta(f"istiod{rev}", labels)),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"istio{rev}", labels_of(s, "istiod", "Pilot")),
            "data": {"mesh": _mesh_config(s), "meshNetworks": "networks: {}"},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"istio-sidecar-injector{rev}", labels_of(s, "sidecar-injector", "Pilot")),
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
            "metadata": meta(f"istiod{rev}-clusterrole-{NS}", labels, None),
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(f"istiod{rev}-gateway-controller-{NS}", labels, None),
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
            "metadata": meta(
                f"istio-reader{rev}-clusterrole-{NS}", labels_of(s, "istio-reader", "Pilot"), None
            ),
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}],
        },
    ]
    for role in (f"istiod{rev}-clusterrole-{NS}", f"istiod{rev}-gateway-controller-{NS}"):
        objs.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": meta(role, labels, None),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": f"istiod{rev}", "namespace": NS}],
            }
        )
    objs.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(
                f"istio-reader{rev}-clusterrole-{NS}", labels_of(s, "istio-reader", "Pilot"), None
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
            "metadata": meta(f"istiod{rev}", labels),
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
            "metadata": meta(f"istiod{rev}", labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"istiod{rev}"},
            "subjects": [{"kind": "ServiceAccount", "name": f"istiod{rev}", "namespace": NS}],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(f"istiod{rev}", labels),
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
            "metadata": meta(f"istiod{rev}", labels),
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
            "metadata": meta(f"istiod{rev}", labels),
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
        # 1.26+ templates/configmap-values.yaml: its own labels (istio.io/rev, owning-resource, the Pilot
        # component, release, app.kubernetes.io/name istiod and the chart's helper labels), the description
        # annotation, and the values as toPrettyJson prints them.
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(
                    f"values{rev}",
                    labels_of(s, "istiod", "Pilot"),
                    annotations={"kubernetes.io/description": VALUES_DESCRIPTION},
                ),
                "data": values_doc,
            }
        )
    if s.minor.pdb_always or max(s.pilot_replicas, s.pilot_autoscale_min) > 1:
        objs.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": meta(f"istiod{rev}", labels),
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
            "metadata": meta(f"istio-validator{rev}-{NS}", dict(labels, **{"istio": "istiod"}), None),
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
                    "rules": validation_rules(),
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
        "metadata": meta(
            f"istio-sidecar-injector{s.rev_suffix}", labels_of(s, "sidecar-injector", "Pilot"), None
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
