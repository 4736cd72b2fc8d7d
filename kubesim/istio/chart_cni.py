"""The istio-cni chart of ``manifest generate``: the CNI node DaemonSet, its ConfigMap and RBAC, in
``components.cni.namespace`` (kube-system on GKE)."""

from __future__ import annotations

from typing import Any

from istiofacts import operator

from .chart_common import Settings, labels_of, meta, service_account

Obj = dict[str, Any]


def cni(s: Settings) -> list[Obj]:
    ns = s.cni_namespace
    labels = labels_of(s, "istio-cni", "Cni", {"k8s-app": "istio-cni-node"})
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
        service_account(s, meta("istio-cni", labels, ns)),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("istio-cni-config", labels, ns),
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
                "metadata": meta(role, labels, None),
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
                "metadata": meta(binding, labels, None),
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": "istio-cni", "namespace": ns}],
            }
        )
    objs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta("istio-cni-node", labels, ns),
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
