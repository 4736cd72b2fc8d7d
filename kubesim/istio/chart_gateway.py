"""The gateways chart of ``manifest generate``: the ingress gateway Deployment, Service, RBAC, HPA, PDB."""

from __future__ import annotations

import json
from typing import Any

from istiofacts import operator

from .chart_common import NS, Gateway, Settings, labels_of, meta, pod_security, service_account

Obj = dict[str, Any]


def gateway(s: Settings, gw: Gateway) -> list[Obj]:
    """One gateway of ``components.ingressGateways``: named by its ``name``, in its ``namespace``, selected by
    its ``label`` (gateways/istio-ingress templates at each tag: ``$gateway.name``, ``$gateway.labels``)."""
    name, ns = gw.name, gw.namespace
    selector = dict(gw.labels)
    labels = labels_of(
        s, selector["app"], "IngressGateways", {k: v for k, v in selector.items() if k != "app"}
    )
    pod_labels = {
        **selector,
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
    service_annotations = (
        {"annotations": {k: str(v) for k, v in gw.service_annotations.items()}}
        if gw.service_annotations
        else {}
    )
    proxy_config = json.dumps({"discoveryAddress": f"istiod{s.rev_suffix}.{NS}.svc:15012"})
    pod_spec: Obj = {
        "serviceAccountName": f"{name}-service-account",
        "securityContext": pod_security(gw.security_context)
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
        service_account(s, meta(f"{name}-service-account", labels, ns)),
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(f"{name}-sds", labels, ns),
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(f"{name}-sds", labels, ns),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{name}-sds"},
            "subjects": [{"kind": "ServiceAccount", "name": f"{name}-service-account"}],
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            # serviceAnnotations, quoted (templates/service.yaml: range over $gateway.serviceAnnotations)
            "metadata": meta(name, labels, ns, **service_annotations),
            "spec": {
                "type": gw.service_type,
                "selector": selector,
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
            "metadata": meta(name, labels, ns),
            "spec": {
                "replicas": gw.replicas,
                "strategy": {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": "25%"}},
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {
                            "prometheus.io/path": "/stats/prometheus",
                            "prometheus.io/port": "15020",
                            "prometheus.io/scrape": "true",
                            "sidecar.istio.io/inject": "false",
                            **gw.pod_annotations,
                        },
                    },
                    "spec": pod_spec,
                },
            },
        },
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta(name, labels, ns),
            # k8s.hpaSpec is laid over the chart's HPA spec (istioctl's k8s overlays).
            "spec": operator.deep_merge(
                {
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
                gw.hpa,
            ),
        },
    ]
    if s.minor.pdb_always or gw.replicas > 1:
        objs.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": meta(name, labels, ns),
                "spec": {
                    "minAvailable": 1,
                    "selector": {"matchLabels": selector},
                },
            }
        )
    return objs
