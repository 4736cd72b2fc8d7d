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

from .chart_base import crds
from .chart_cni import cni
from .chart_common import NS, Settings, labels_of, meta, service_account
from .chart_gateway import gateway
from .chart_istiod import NEVER_MATCH, deactivated, injector_webhooks, pilot, validation_rules

Obj = dict[str, Any]

__all__ = ["NEVER_MATCH", "NS", "Settings", "deactivated", "injector_webhooks", "render", "to_yaml"]

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


def render(version: str, spec: Obj) -> list[Obj]:
    """The objects of ``istioctl manifest generate`` for ``version`` with ``spec`` (validated first)."""
    operator.validate(spec, version)
    s = Settings(version, spec)
    objs: list[Obj] = []
    if s.base_enabled:
        objs += crds(s)
        objs.append(
            service_account(s, meta("istio-reader-service-account", labels_of(s, "istio-reader", "Base")))
        )
    if s.pilot_enabled:
        objs += pilot(s)
    for gw in s.gateways:
        objs += gateway(s, gw)
    if s.cni_daemonset:
        objs += cni(s)

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
        out.append(default_validator(s, dict(tag_labels, app="istiod")))
    return out


def default_validator(s: Settings, labels: dict[str, str]) -> Obj:
    """istiod-default-validator: the default tag's cluster-wide validation, served by the revision's istiod
    (istio/istio base chart templates/default.yaml, rendered by istioctl/pkg/tag
    generateValidatingWebhook)."""
    service = "istiod" + (f"-{s.revision}" if s.revision else "")
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "istiod-default-validator", "labels": {**labels, "app": "istiod"}},
        "webhooks": [
            {
                "name": "validation.istio.io",
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Ignore",
                "clientConfig": {
                    "service": {"name": service, "namespace": NS, "path": "/validate", "port": 443}
                },
                "rules": validation_rules(),
            }
        ],
    }
