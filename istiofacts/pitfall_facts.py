"""Version tables the known-pitfall checks need (istiofacts layer: data only, every row with its source).

Each table was read from istio/istio at the tags named (``git show TAG:PATH``), not from reports about it:

* :data:`GATEWAY_API_BOUNDS`: the Gateway API bundle versions istiod accepts per CRD (``crdwatcher.go``
  ``minimumCRDVersions``/``MaximumCRDVersions``; at release-1.31 ``pkg/config/schema/gatewayapi``);
* :data:`SKEW_BREAKS`: control-plane patch ranges whose config proxies older than a patch reject;
* :data:`DEFAULT_FLIPS`: the behaviour defaults each minor changed, as its ``compatibility-version-*.yaml``
  pins them back;
* :data:`PREVIOUS_INSTALL_SELECTOR`: the selector ``istioctl install`` uses to decide whether a default tag is
  created (``istioctl/pkg/tag/util.go PreviousInstallExists``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Source, parse_version

ISTIO = "istio/istio"


def version_key(version: str) -> tuple[int, int, int]:
    """``1.29`` -> (1, 29, 0); ``v1.4.1`` -> (1, 4, 1); prerelease suffixes are rounded up, as crdwatcher does
    (``SetPrerelease("")``)."""
    clean = version.strip().lstrip("v").split("-")[0]
    parts = clean.split(".")
    while len(parts) < 3:
        parts.append("0")
    return parse_version(".".join(parts[:3]))


@dataclass(frozen=True)
class Patches:
    """An inclusive range of Istio patch releases; ``last`` may be a minor (``1.29``: every 1.29.x)."""

    first: str
    last: str

    def contains(self, version: str) -> bool:
        v = version_key(version)
        last = version_key(self.last)
        if self.last.count(".") == 1:
            last = (last[0], last[1], 10**6)
        return version_key(self.first) <= v <= last

    def __str__(self) -> str:
        return f"{self.first} to {self.last}{'.x' if self.last.count('.') == 1 else ''}"


@dataclass(frozen=True)
class CrdBound:
    """istiod of ``istio`` ignores the CRD ``crd`` unless its bundle-version is >= ``minimum`` and <=
    ``maximum`` (empty: no bound)."""

    crd: str
    istio: Patches
    minimum: str = ""
    maximum: str = ""
    source: Source = Source(ISTIO, "pkg/kube/kclient/crdwatcher.go")

    def rejects(self, bundle_version: str) -> str | None:
        v = version_key(bundle_version)
        if self.minimum and v < version_key(self.minimum):
            return f"below minimum version {self.minimum}"
        if self.maximum and v > version_key(self.maximum):
            return f"above maximum version {self.maximum}"
        return None


_CW = "pkg/kube/kclient/crdwatcher.go"
GATEWAY_API_BOUNDS: tuple[CrdBound, ...] = (
    CrdBound(
        "grpcroutes.gateway.networking.k8s.io",
        Patches("1.27.0", "1.31"),
        "1.1.0",
        "",
        Source(ISTIO, _CW, "1.27.0"),
    ),
    CrdBound(
        "backendtlspolicies.gateway.networking.k8s.io",
        Patches("1.28.0", "1.31"),
        "1.4.0",
        "",
        Source(ISTIO, _CW, "1.28.0"),
    ),
    # 1.29.2 added MaximumCRDVersions tlsroutes 1.4.0, 1.29.3 raised it to 1.4.1 (both at the tags).
    CrdBound(
        "tlsroutes.gateway.networking.k8s.io",
        Patches("1.29.2", "1.29.2"),
        "",
        "1.4.0",
        Source(ISTIO, _CW, "1.29.2"),
    ),
    CrdBound(
        "tlsroutes.gateway.networking.k8s.io",
        Patches("1.29.3", "1.29"),
        "",
        "1.4.1",
        Source(ISTIO, _CW, "1.29.3"),
    ),
    # 1.30.0 minimumCRDVersions tlsroutes 1.5.0; release-1.31 moved the table to
    # pkg/config/schema/gatewayapi/minimumversions.go and added tcproutes 1.6.0.
    CrdBound(
        "tlsroutes.gateway.networking.k8s.io",
        Patches("1.30.0", "1.31"),
        "1.5.0",
        "",
        Source(ISTIO, _CW, "1.30.0"),
    ),
    CrdBound(
        "tcproutes.gateway.networking.k8s.io",
        Patches("1.31.0", "1.31"),
        "1.6.0",
        "",
        Source(ISTIO, "pkg/config/schema/gatewayapi/minimumversions.go", "release-1.31"),
    ),
)
BUNDLE_VERSION_ANNOTATION = "gateway.networking.k8s.io/bundle-version"  # sigs.k8s.io/gateway-api consts


def gateway_api_bounds(version: str, crd: str) -> list[CrdBound]:
    return [b for b in GATEWAY_API_BOUNDS if b.crd == crd and b.istio.contains(version)]


@dataclass(frozen=True)
class SkewBreak:
    """istiod in ``istiod`` sends config that proxies older than ``proxies_before`` reject."""

    istiod: Patches
    proxies_before: str
    reason: str
    issue: str
    fixed_in: tuple[str, ...]
    source: Source


SKEW_BREAKS: tuple[SkewBreak, ...] = (
    # The switch to istio.hashable_string (release-1.29 c4be48bb, first in 1.29.2; master 60366e82, first in
    # 1.30.0) breaks sidecars before 1.29.2; fixed by #60505 (1.29.5) and #60504 (1.30.2): "Fixed config
    # generation for sidecars prior to 1.29.2" (releasenotes/notes/istio-hashable-string.yaml).
    SkewBreak(
        Patches("1.29.2", "1.29.4"),
        "1.29.2",
        "listeners use istio.hashable_string filter state, which proxies before 1.29.2 do not have: they "
        "reject the LDS update and stay NOT ready",
        "https://github.com/istio/istio/issues/60486",
        ("1.29.5", "1.30.2"),
        Source(ISTIO, "releasenotes/notes/istio-hashable-string.yaml", "1.29.5"),
    ),
    SkewBreak(
        Patches("1.30.0", "1.30.1"),
        "1.29.2",
        "listeners use istio.hashable_string filter state, which proxies before 1.29.2 do not have: they "
        "reject the LDS update and stay NOT ready",
        "https://github.com/istio/istio/issues/60486",
        ("1.29.5", "1.30.2"),
        Source(ISTIO, "pilot/pkg/xds/filters/filters.go", "1.30.2"),
    ),
)


def skew_breaks(istiod_version: str, proxy_version: str) -> list[SkewBreak]:
    return [
        b
        for b in SKEW_BREAKS
        if b.istiod.contains(istiod_version) and version_key(proxy_version) < version_key(b.proxies_before)
    ]


# minor -> the settings whose default that minor changed, as compatibility-version-<previous>.yaml at
# release-<minor> pins them back (manifests/helm-profiles/). Values paths are as in the profile file.
_HP = "manifests/helm-profiles"
DEFAULT_FLIPS: dict[str, tuple[tuple[str, ...], Source]] = {
    "1.24": (
        (
            "pilot.env.ENABLE_INBOUND_RETRY_POLICY",
            "pilot.env.EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY",
            "pilot.env.PREFER_DESTINATIONRULE_TLS_FOR_EXTERNAL_SERVICES",
            "pilot.env.ENABLE_ENHANCED_DESTINATIONRULE_MERGE",
            "pilot.env.PILOT_UNIFIED_SIDECAR_SCOPE",
            "meshConfig.defaultConfig.proxyMetadata.ENABLE_DEFERRED_STATS_CREATION",
            "meshConfig.defaultConfig.proxyMetadata.BYPASS_OVERLOAD_MANAGER_FOR_STATIC_LISTENERS",
        ),
        Source(ISTIO, f"{_HP}/compatibility-version-1.23.yaml", "release-1.24"),
    ),
    "1.25": (
        (
            "pilot.env.PILOT_ENABLE_IP_AUTOALLOCATE",
            "ambient.dnsCapture",
            "ambient.reconcileIptablesOnStartup",
        ),
        Source(ISTIO, f"{_HP}/compatibility-version-1.24.yaml", "release-1.25"),
    ),
    "1.26": (
        ("ambient.shareHostNetworkNamespace",),
        Source(ISTIO, f"{_HP}/compatibility-version-1.25.yaml", "release-1.26"),
    ),
    "1.27": (
        ("pilot.env.ENABLE_NATIVE_SIDECARS",),
        Source(ISTIO, f"{_HP}/compatibility-version-1.26.yaml", "release-1.27"),
    ),
    "1.28": (
        ("pilot.env.DISABLE_SHADOW_HOST_SUFFIX", "pilot.env.PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY"),
        Source(ISTIO, f"{_HP}/compatibility-version-1.27.yaml", "release-1.28"),
    ),
    "1.29": (
        ("pilot.env.DISABLE_TRACK_REMAINING_CB_METRICS", "cni.ambient.reconcileIptablesOnStartup"),
        Source(ISTIO, f"{_HP}/compatibility-version-1.28.yaml", "release-1.29"),
    ),
    "1.30": (
        ("pilot.env.PILOT_SIDECAR_PICK_BEST_SERVICE_NAMESPACE",),
        Source(ISTIO, f"{_HP}/compatibility-version-1.29.yaml", "release-1.30"),
    ),
    "1.31": (
        (
            "pilot.env.PILOT_ENABLE_STRICT_GATEWAY_MERGING",
            "pilot.env.PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY",
            "pilot.env.PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS",
        ),
        Source(ISTIO, f"{_HP}/compatibility-version-1.30.yaml", "release-1.31"),
    ),
}


def default_flips(source: str, target: str) -> list[tuple[str, str, Source]]:
    """``(minor, setting, source)`` for every default a minor after ``source``'s, up to ``target``'s,
    changed."""
    s, t = version_key(source)[:2], version_key(target)[:2]
    out = []
    for minor, (settings, source_file) in DEFAULT_FLIPS.items():
        if s < version_key(minor)[:2] <= t:
            out += [(minor, setting, source_file) for setting in settings]
    return out


# istioctl/pkg/tag/util.go PreviousInstallExists: up to 1.26 any app=sidecar-injector webhook counts as a
# previous install, so a first revisioned install (whose own injector matches) never creates the default tag
# (#55980); from 1.27.0 only a default tag counts.
PREVIOUS_INSTALL_SELECTOR = (
    (Patches("1.24.0", "1.26"), "app=sidecar-injector", Source(ISTIO, "istioctl/pkg/tag/util.go", "1.26.0")),
    (
        Patches("1.27.0", "1.31"),
        "app=sidecar-injector,istio.io/tag=default",
        Source(ISTIO, "istioctl/pkg/tag/util.go", "1.27.0"),
    ),
)

# The istiod PodDisruptionBudget (manifests/charts/istio-control/istio-discovery/templates/
# poddisruptionbudget.yaml): minAvailable 1 whenever defaultPodDisruptionBudget.enabled up to 1.27 (1.27.0);
# from 1.28.0 only when replicaCount (or autoscaleMin with autoscaling) is greater than 1 (PR #57202).
PDB_SOURCES = (
    Source(
        ISTIO, "manifests/charts/istio-control/istio-discovery/templates/poddisruptionbudget.yaml", "1.27.0"
    ),
    Source(
        ISTIO, "manifests/charts/istio-control/istio-discovery/templates/poddisruptionbudget.yaml", "1.28.0"
    ),
)

# pkg/config/analysis/analyzers/webhook/webhook.go: the namespace and object label permutations IST0139 tries.
WEBHOOK_ANALYZER_SOURCE = Source(ISTIO, "pkg/config/analysis/analyzers/webhook/webhook.go")

# MinK8SVersion (istioctl/pkg/install/k8sversion/version.go, IST0142) where it changed inside a minor's
# patches, read at every tag: 1.25.0 has 28 and 1.25.1 29; 1.28.1 has 29 and 1.28.2 30. The catalog's
# per-minor ``precheck_min_k8s`` is the .0 value.
MIN_K8S_BUMPS: dict[str, tuple[str, Source]] = {
    "1.25.1": ("1.29", Source(ISTIO, "istioctl/pkg/install/k8sversion/version.go", "1.25.1")),
    "1.28.2": ("1.30", Source(ISTIO, "istioctl/pkg/install/k8sversion/version.go", "1.28.2")),
}


def precheck_min_k8s(version: str) -> str:
    """The MinK8SVersion of this patch release (the minor's, raised by a bump at or before this patch)."""
    catalog_min = _minor_min(version)
    minimum = catalog_min
    for bump, (k8s, _) in MIN_K8S_BUMPS.items():
        if version_key(bump)[:2] == version_key(version)[:2] and version_key(version) >= version_key(bump):
            minimum = k8s
    return minimum if version_key(minimum) >= version_key(catalog_min) else catalog_min


def _minor_min(version: str) -> str:
    from .catalog import minor_of

    return minor_of(version).precheck_min_k8s


# ENABLE_DEBUG_ENDPOINT_AUTH (default true: "Enforce namespace-based authorization on debug endpoints.
# Non-system namespaces restricted to config_dump/ndsz/edsz for same-namespace proxies only") is in
# pilot/pkg/features/pilot.go from these patches on (read at every tag); 1.30.0 adds
# DEBUG_ENDPOINT_AUTH_ALLOWED_NAMESPACES.
DEBUG_AUTH = (
    (Patches("1.27.6", "1.27"), Source(ISTIO, "pilot/pkg/features/pilot.go", "1.27.6")),
    (Patches("1.28.4", "1.28"), Source(ISTIO, "pilot/pkg/features/pilot.go", "1.28.4")),
    (Patches("1.29.0", "1.31"), Source(ISTIO, "pilot/pkg/features/pilot.go", "1.29.0")),
)
# Tools known to read istiod's debug endpoints from their own namespace (kiali/kiali#9296).
DEBUG_TOOLS = ("kiali",)


def debug_auth(version: str) -> bool:
    return any(r.contains(version) for r, _ in DEBUG_AUTH)
