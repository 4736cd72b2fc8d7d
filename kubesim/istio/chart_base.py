"""The base chart of ``manifest generate``: Istio's CRDs with each minor's served and storage versions."""

from __future__ import annotations

from typing import Any

from istiofacts.catalog import OPERATOR_CRD

from .chart_common import Settings

Obj = dict[str, Any]

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


def crds(s: Settings) -> list[Obj]:
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
