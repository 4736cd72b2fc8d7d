"""IstioOperator specs: ``--set`` paths, ``-f`` files, profiles and strict validation of install values.

istioctl decodes ``spec.values`` strictly into ``istio.operator.v1alpha1.Values`` and the rest of the spec into
``IstioOperatorSpec``; an unknown or removed field fails with ``unknown field "X" in
istio.operator.v1alpha1.<Message>``. :data:`SCHEMA` names the fields of each message (a nested dict; ``ANY``
marks free-form content such as resources or env), and the catalog says which values each minor removed.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from .catalog import minor_of

ANY = "*"

_K8S = {
    k: ANY
    for k in (
        "affinity",
        "env",
        "hpaSpec",
        "imagePullPolicy",
        "nodeSelector",
        "podDisruptionBudget",
        "podAnnotations",
        "priorityClassName",
        "readinessProbe",
        "replicaCount",
        "resources",
        "service",
        "strategy",
        "tolerations",
        "serviceAnnotations",
        "securityContext",
        "volumes",
        "volumeMounts",
        "overlays",
        "topologySpreadConstraints",
    )
}
_COMPONENT = (
    "ComponentSpec",
    {"enabled": ANY, "namespace": ANY, "hub": ANY, "tag": ANY, "k8s": ("KubernetesResources", _K8S)},
)
_GATEWAY_COMPONENT = (
    "GatewaySpec",
    {
        "enabled": ANY,
        "namespace": ANY,
        "name": ANY,
        "label": ANY,
        "hub": ANY,
        "tag": ANY,
        "k8s": ("KubernetesResources", _K8S),
    },
)

_PROXY = (
    "ProxyConfig",
    {
        k: ANY
        for k in (
            "autoInject",
            "clusterDomain",
            "componentLogLevel",
            "enableCoreDump",
            "excludeInboundPorts",
            "excludeIPRanges",
            "excludeOutboundPorts",
            "image",
            "includeIPRanges",
            "includeInboundPorts",
            "includeOutboundPorts",
            "logLevel",
            "outlierLogPath",
            "privileged",
            "readinessFailureThreshold",
            "readinessInitialDelaySeconds",
            "readinessPeriodSeconds",
            "resources",
            "startupProbe",
            "statusPort",
            "tracer",
            "holdApplicationUntilProxyStarts",
            "lifecycle",
            "seccompProfile",
            "excludeInterfaces",
            "includeInterfaces",
            "outboundTrafficPolicy",
        )
    },
)
_GATEWAY = {
    k: ANY
    for k in (
        "autoscaleEnabled",
        "autoscaleMax",
        "autoscaleMin",
        "cpu",
        "customService",
        "enabled",
        "env",
        "labels",
        "loadBalancerIP",
        "loadBalancerSourceRanges",
        "name",
        "nodeSelector",
        "podAnnotations",
        "podAntiAffinityLabelSelector",
        "podAntiAffinityTermLabelSelector",
        "ports",
        "resources",
        "rollingMaxSurge",
        "rollingMaxUnavailable",
        "secretVolumes",
        "serviceAnnotations",
        "type",
        "zvpn",
        "tolerations",
        "memory",
        "ingressPorts",
        "additionalContainers",
        "configVolumes",
        "runAsRoot",
        "injectionTemplate",
        "externalTrafficPolicy",
        "ipFamilies",
        "ipFamilyPolicy",
        "serviceAccount",
    )
}

VALUES = (
    "Values",
    {
        "cni": (
            "CNIConfig",
            {
                **{
                    k: ANY
                    for k in (
                        "enabled",
                        "hub",
                        "tag",
                        "variant",
                        "image",
                        "pullPolicy",
                        "cniBinDir",
                        "cniConfDir",
                        "cniConfFileName",
                        "cniNetnsDir",
                        "excludeNamespaces",
                        "affinity",
                        "podAnnotations",
                        "psp_cluster_role",
                        "logLevel",
                        "logging",
                        "chained",
                        "resourceQuotas",
                        "resources",
                        "privileged",
                        "seccompProfile",
                        "provider",
                        "rollingMaxUnavailable",
                        "istioOwnedCNIConfig",
                        "istioOwnedCNIConfigFileName",
                        "daemonSetLabels",
                        "podLabels",
                        "env",
                    )
                },
                "repair": (
                    "CNIRepairConfig",
                    {
                        k: ANY
                        for k in (
                            "enabled",
                            "hub",
                            "tag",
                            "image",
                            "labelPods",
                            "deletePods",
                            "repairPods",
                            "initContainerName",
                            "brokenPodLabelKey",
                            "brokenPodLabelValue",
                            "createEvents",
                        )
                    },
                ),
                "ambient": (
                    "CNIAmbientConfig",
                    {
                        k: ANY
                        for k in (
                            "enabled",
                            "configDir",
                            "redirectMode",
                            "dnsCapture",
                            "ipv6",
                            "reconcileIptablesOnStartup",
                            "shareHostNetworkNamespace",
                        )
                    },
                ),
            },
        ),
        "istio_cni": ANY,
        "global": (
            "GlobalConfig",
            {
                **{
                    k: ANY
                    for k in (
                        "arch",
                        "caAddress",
                        "caName",
                        "certSigners",
                        "configCluster",
                        "defaultPodDisruptionBudget",
                        "defaultResources",
                        "defaultNodeSelector",
                        "defaultTolerations",
                        "hub",
                        "tag",
                        "variant",
                        "imagePullPolicy",
                        "imagePullSecrets",
                        "istioNamespace",
                        "istiod",
                        "jwtPolicy",
                        "logAsJson",
                        "logging",
                        "meshID",
                        "meshNetworks",
                        "mountMtlsCerts",
                        "multiCluster",
                        "network",
                        "omitSidecarInjectorConfigMap",
                        "operatorManageWebhooks",
                        "pilotCertProvider",
                        "priorityClassName",
                        "proxy_init",
                        "remotePilotAddress",
                        "sds",
                        "sts",
                        "waypoint",
                        "externalIstiod",
                        "configValidation",
                        "autoscalingv2API",
                        "useMCP",
                        "configRootNamespace",
                        "defaultConfigVisibilitySettings",
                        "oneNamespace",
                        "platform",
                        "ipFamilies",
                        "ipFamilyPolicy",
                        "resourceScope",
                        "nativeNftables",
                        "trustBundleName",
                        "tracer",
                        "enableCoreDump",
                        "createRemoteSvcEndpoints",
                        "revisionTags",
                    )
                },
                "proxy": _PROXY,
            },
        ),
        "pilot": (
            "PilotConfig",
            {
                **{
                    k: ANY
                    for k in (
                        "enabled",
                        "autoscaleEnabled",
                        "autoscaleMin",
                        "autoscaleMax",
                        "autoscaleBehavior",
                        "replicaCount",
                        "image",
                        "traceSampling",
                        "resources",
                        "memory",
                        "nodeSelector",
                        "podAnnotations",
                        "serviceAnnotations",
                        "tolerations",
                        "env",
                        "affinity",
                        "rollingMaxSurge",
                        "rollingMaxUnavailable",
                        "podLabels",
                        "hub",
                        "tag",
                        "variant",
                        "seccompProfile",
                        "topologySpreadConstraints",
                        "extraContainerArgs",
                        "volumeMounts",
                        "volumes",
                        "ipFamilies",
                        "ipFamilyPolicy",
                        "cni",
                        "taint",
                        "trustedZtunnelNamespace",
                        "jwksResolverExtraRootCA",
                        "keepaliveMaxServerConnectionAge",
                        "deploymentLabels",
                        "configMap",
                        "plugins",
                        "configNamespace",
                        "configSource",
                        "enableProtocolSniffingForInbound",
                        "enableProtocolSniffingForOutbound",
                        "useMCP",
                        "serviceAccountAnnotations",
                        "istiodRemote",
                        "envVarFrom",
                        "securityContext",
                    )
                },
                "cpu": ("PilotConfig_CPU", {"targetAverageUtilization": ANY}),
            },
        ),
        "telemetry": (
            "TelemetryConfig",
            {
                "enabled": ANY,
                "v2": (
                    "TelemetryV2Config",
                    {
                        "enabled": ANY,
                        "accessLogPolicy": ANY,
                        "metadataExchange": ("TelemetryV2MetadataExchangeConfig", {"wasmEnabled": ANY}),
                        "prometheus": (
                            "TelemetryV2PrometheusConfig",
                            {"enabled": ANY, "wasmEnabled": ANY, "configOverride": ANY},
                        ),
                        "stackdriver": (
                            "TelemetryV2StackDriverConfig",
                            {
                                k: ANY
                                for k in (
                                    "enabled",
                                    "configOverride",
                                    "disableOutbound",
                                    "logging",
                                    "monitoring",
                                    "topology",
                                    "inboundAccessLogging",
                                    "outboundAccessLogging",
                                )
                            },
                        ),
                    },
                ),
            },
        ),
        "sidecarInjectorWebhook": (
            "SidecarInjectorConfig",
            {
                k: ANY
                for k in (
                    "enableNamespacesByDefault",
                    "reinvocationPolicy",
                    "rewriteAppHTTPProbe",
                    "injectedAnnotations",
                    "injectionURL",
                    "templates",
                    "defaultTemplates",
                    "objectSelector",
                    "useLegacySelectors",
                    "neverInjectSelector",
                    "alwaysInjectSelector",
                )
            },
        ),
        "gateways": (
            "GatewaysConfig",
            {
                "istio-ingressgateway": ("IngressGatewayConfig", _GATEWAY),
                "istio-egressgateway": ("EgressGatewayConfig", _GATEWAY),
                "securityContext": ANY,
                "seccompProfile": ANY,
            },
        ),
        **{
            k: ANY
            for k in (
                "revision",
                "ownerName",
                "meshConfig",
                "base",
                "istiodRemote",
                "revisionTags",
                "defaultRevision",
                "profile",
                "compatibilityVersion",
                "experimental",
                "ztunnel",
                "platform",
                "gatewayClasses",
                "networkPolicy",
            )
        },
    },
)

SPEC = (
    "IstioOperatorSpec",
    {
        "profile": ANY,
        "installPackagePath": ANY,
        "hub": ANY,
        "tag": ANY,
        "namespace": ANY,
        "revision": ANY,
        "compatibilityVersion": ANY,
        "meshConfig": ANY,
        "unvalidatedValues": ANY,
        "values": VALUES,
        "components": (
            "IstioComponentSpec",
            {
                "base": _COMPONENT,
                "pilot": _COMPONENT,
                "cni": _COMPONENT,
                "ztunnel": _COMPONENT,
                "istiodRemote": _COMPONENT,
                "ingressGateways": [_GATEWAY_COMPONENT],
                "egressGateways": [_GATEWAY_COMPONENT],
            },
        ),
    },
)

PROFILES = ("default", "minimal", "demo", "empty", "remote", "ambient")


class OperatorError(ValueError):
    """An IstioOperator spec istioctl would reject; the message is istioctl's."""


def _coerce(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d+", text):
        return float(text)
    return text


_TOKEN = re.compile(r"([^.\[\]]+)(?:\[(\d+)\])?")


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set ``a.b[0].c`` in ``spec`` the way ``istioctl --set`` does."""
    cur: Any = spec
    tokens = [m for m in _TOKEN.finditer(path) if m.group(1)]
    # Keys such as "gateways.istio-ingressgateway" keep their dashes; dots always split.
    for n, match in enumerate(tokens):
        key, index = match.group(1), match.group(2)
        last = n == len(tokens) - 1
        if index is None:
            if last:
                cur[key] = value
            else:
                cur = cur.setdefault(key, {})
                if not isinstance(cur, dict):
                    raise OperatorError(f"cannot set {path}: {key} is not a map")
        else:
            items = cur.setdefault(key, [])
            i = int(index)
            while len(items) <= i:
                items.append({} if not last else None)
            if last:
                items[i] = value
            else:
                if not isinstance(items[i], dict):
                    items[i] = {}
                cur = items[i]


def parse_set(expression: str) -> tuple[str, Any]:
    if "=" not in expression:
        raise OperatorError(f"--set {expression}: expected KEY=VALUE, for example values.cni.enabled=true")
    key, _, raw = expression.partition("=")
    if not key:
        raise OperatorError(f"--set {expression}: the key is empty")
    return key.strip(), _coerce(raw.strip())


def deep_merge(base: Any, overlay: Any) -> Any:
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for k, v in overlay.items():
            out[k] = deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(overlay)


def load_file(path: str | Path) -> dict[str, Any]:
    """The ``spec`` of an IstioOperator file (``-f``)."""
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise OperatorError(f"could not read {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise OperatorError(f"could not parse {p}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("kind") != "IstioOperator":
        raise OperatorError(
            f"{p} is not an IstioOperator (expected apiVersion install.istio.io/v1alpha1, kind IstioOperator)"
        )
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise OperatorError(f"{p}: spec must be a map")
    return spec


def build_spec(files: list[str | Path] = (), sets: list[str] = ()) -> dict[str, Any]:
    """Overlay ``-f`` files in order, then ``--set`` expressions, as istioctl does."""
    spec: dict[str, Any] = {}
    for f in files:
        spec = deep_merge(spec, load_file(f))
    for expression in sets:
        key, value = parse_set(expression)
        set_path(spec, key, value)
    return spec


def validate(spec: dict[str, Any], version: str) -> None:
    """Reject unknown or (for this version) removed fields with istioctl's message."""
    record = minor_of(version)
    removed = {"values." + p for p in record.removed_values()}
    _check(spec, SPEC, "", removed)
    profile = spec.get("profile", "default")
    if profile not in PROFILES:
        raise OperatorError(
            f'could not read profile "{profile}": profile does not exist; known profiles: '
            f"{', '.join(PROFILES)}"
        )
    if record.at_least("1.22") and profile == "external":
        raise OperatorError('could not read profile "external": use profile "remote"')


def _check(value: Any, schema: Any, path: str, removed: set[str]) -> None:
    if schema == ANY or value is None:
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise OperatorError(
                f"could not unmarshal: error unmarshaling JSON: while decoding JSON: {path} must be a list"
            )
        for item in value:
            _check(item, schema[0], path, removed)
        return
    message, fields = schema
    if not isinstance(value, dict):
        raise OperatorError(
            f"could not unmarshal: error unmarshaling JSON: while decoding JSON: cannot unmarshal "
            f"{type(value).__name__} into istio.operator.v1alpha1.{message}"
        )
    for key, child in value.items():
        child_path = f"{path}.{key}" if path else key
        if key not in fields or child_path in removed:
            raise OperatorError(
                f"could not unmarshal: error unmarshaling JSON: while decoding JSON: unknown field "
                f'"{key}" in istio.operator.v1alpha1.{message}'
            )
        _check(child, fields[key], child_path, removed)


def get(spec: dict[str, Any], path: str, default: Any = None) -> Any:
    cur: Any = spec
    for match in _TOKEN.finditer(path):
        key, index = match.group(1), match.group(2)
        if not key:
            continue
        if not isinstance(cur, dict) or key not in cur:
            return default
        cur = cur[key]
        if index is not None:
            if not isinstance(cur, list) or len(cur) <= int(index):
                return default
            cur = cur[int(index)]
    return cur


def apply_time_labels(version: str, namespace: str = "istio-system") -> dict[str, str]:
    """The labels ``istioctl install`` puts on every object it applies (operator/pkg/install): a plain
    ``kubectl apply`` of ``manifest generate`` output lacks them."""
    return {
        "operator.istio.io/version": version,
        "operator.istio.io/managed": "Reconcile",
        "install.operator.istio.io/owning-resource-namespace": namespace,
    }


def is_removed(path: str, version: str) -> bool:
    return path.removeprefix("values.") in minor_of(version).removed_values()
