"""The Istio version catalog: what each minor release supports, removed and changed.

Data, not code paths: the harness's own prechecks and the simulator read the same records. Sources are the
istio/istio sources at each release tag and istio.io (see ../shared/reference/istio-facts.md).
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_CRDS = (
    "authorizationpolicies.security.istio.io",
    "peerauthentications.security.istio.io",
    "requestauthentications.security.istio.io",
    "destinationrules.networking.istio.io",
    "envoyfilters.networking.istio.io",
    "gateways.networking.istio.io",
    "proxyconfigs.networking.istio.io",
    "serviceentries.networking.istio.io",
    "sidecars.networking.istio.io",
    "virtualservices.networking.istio.io",
    "workloadentries.networking.istio.io",
    "workloadgroups.networking.istio.io",
    "telemetries.telemetry.istio.io",
    "wasmplugins.extensions.istio.io",
)

# values.* paths removed in each minor (istioctl rejects them as unknown fields from that minor on).
REMOVED_VALUES: dict[str, tuple[str, ...]] = {
    "1.21": (
        "telemetry.v2.metadataExchange.wasmEnabled",
        "telemetry.v2.prometheus.wasmEnabled",
        "telemetry.v2.prometheus.configOverride",
        "telemetry.v2.stackdriver.configOverride",
        "telemetry.v2.stackdriver.disableOutbound",
        "telemetry.v2.stackdriver.logging",
        "telemetry.v2.stackdriver.monitoring",
        "telemetry.v2.stackdriver.topology",
        "telemetry.v2.stackdriver.inboundAccessLogging",
        "telemetry.v2.stackdriver.outboundAccessLogging",
        "telemetry.v2.accessLogPolicy",
        "cni.ambient.redirectMode",
        "pilot.cpu.targetAverageUtilization",
        "cni.psp_cluster_role",
    ),
    "1.22": ("global.oneNamespace", "pilot.plugins"),
    "1.23": (
        "pilot.configNamespace",
        "pilot.configSource",
        "pilot.enableProtocolSniffingForInbound",
        "pilot.enableProtocolSniffingForOutbound",
        "pilot.useMCP",
        "global.useMCP",
        "global.configRootNamespace",
        "global.defaultConfigVisibilitySettings",
        "sidecarInjectorWebhook.objectSelector",
        "sidecarInjectorWebhook.useLegacySelectors",
    ),
    "1.24": ("global.autoscalingv2API",),
    "1.26": ("gateways.istio-ingressgateway.zvpn", "gateways.istio-egressgateway.zvpn"),
}


@dataclass(frozen=True)
class IstioMinor:
    minor: str
    k8s_min: str  # oldest supported Kubernetes minor (istio.io support table)
    k8s_max: str  # newest supported Kubernetes minor
    precheck_min_k8s: str  # MinK8SVersion that `istioctl x precheck` enforces (IST0142)
    patches: tuple[str, ...]  # known patch releases, oldest first
    go_version: str
    k8s_range_published: bool = True

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.minor.split(".")
        return int(major), int(minor)

    def at_least(self, minor: str) -> bool:
        return self.version_tuple >= _minor_tuple(minor)

    @property
    def verify_install(self) -> bool:
        """``istioctl verify-install`` exists up to 1.23 (removed with the in-cluster operator)."""
        return not self.at_least("1.24")

    @property
    def native_sidecars_default(self) -> bool:
        """From 1.27 ENABLE_NATIVE_SIDECARS=auto switches on for kubelets >= 1.33."""
        return self.at_least("1.27")

    @property
    def pdb_always(self) -> bool:
        """Before 1.28 the PodDisruptionBudgets were rendered even with one replica."""
        return not self.at_least("1.28")

    @property
    def values_configmap(self) -> bool:
        return self.at_least("1.26")

    @property
    def crds(self) -> tuple[str, ...]:
        extra = ("trafficextensions.extensions.istio.io",) if self.at_least("1.30") else ()
        return BASE_CRDS + extra

    @property
    def proxy_status_columns(self) -> str:
        return "subscribed" if self.at_least("1.27") else "per-type"

    @property
    def proxy_status_json(self) -> bool:
        return self.at_least("1.30")

    @property
    def version_default_revision_only(self) -> bool:
        """From 1.28 ``istioctl version`` without --revision reports the default revision only."""
        return self.at_least("1.28")

    def removed_values(self) -> tuple[str, ...]:
        """Every values path removed in this minor or an earlier one."""
        return tuple(p for minor, paths in REMOVED_VALUES.items() if self.at_least(minor) for p in paths)


def _patches(minor: str, last: int) -> tuple[str, ...]:
    return tuple(f"{minor}.{n}" for n in range(last + 1))


CATALOG: dict[str, IstioMinor] = {
    m.minor: m
    for m in (
        IstioMinor("1.20", "1.25", "1.29", "1.25", _patches("1.20", 8), "go1.21.9"),
        IstioMinor("1.21", "1.26", "1.29", "1.26", _patches("1.21", 6), "go1.22.5"),
        IstioMinor("1.22", "1.27", "1.30", "1.26", _patches("1.22", 8), "go1.22.8"),
        IstioMinor("1.23", "1.27", "1.30", "1.26", _patches("1.23", 6), "go1.23.4"),
        IstioMinor("1.24", "1.28", "1.31", "1.28", _patches("1.24", 6), "go1.23.8"),
        IstioMinor("1.25", "1.29", "1.32", "1.28", _patches("1.25", 5), "go1.24.4"),
        IstioMinor("1.26", "1.29", "1.33", "1.29", _patches("1.26", 6), "go1.24.6"),
        IstioMinor("1.27", "1.29", "1.33", "1.29", _patches("1.27", 4), "go1.24.9"),
        IstioMinor("1.28", "1.30", "1.34", "1.29", _patches("1.28", 2), "go1.25.3"),
        IstioMinor("1.29", "1.31", "1.35", "1.30", _patches("1.29", 5), "go1.25.6"),
        # 1.30's support table was not published where we looked; its precheck minimum is 1.32.
        IstioMinor(
            "1.30", "1.32", "1.36", "1.32", _patches("1.30", 1), "go1.26.1", k8s_range_published=False
        ),
    )
}


class UnknownVersion(ValueError):
    """A version the catalog does not know."""


def _minor_tuple(version: str) -> tuple[int, int]:
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


def parse_version(version: str) -> tuple[int, int, int]:
    parts = version.lstrip("v").split("-")[0].split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise UnknownVersion(f"'{version}' is not an Istio version like 1.28.2")
    return int(parts[0]), int(parts[1]), int(parts[2])


def minor_of(version: str) -> IstioMinor:
    major, minor, _ = parse_version(version)
    record = CATALOG.get(f"{major}.{minor}")
    if record is None:
        raise UnknownVersion(
            f"Istio {major}.{minor} is not in the catalog; known minors: {', '.join(CATALOG)}"
        )
    return record


def known_versions() -> list[str]:
    """Every known patch release, oldest first."""
    return [p for minor in CATALOG.values() for p in minor.patches]


def check_known(version: str) -> str:
    record = minor_of(version)
    if version.lstrip("v") not in record.patches:
        raise UnknownVersion(
            f"Istio {version} is not a known release; {record.minor} has "
            f"{record.patches[0]} to {record.patches[-1]}"
        )
    return version.lstrip("v")


def newest_minors(count: int = 2) -> list[IstioMinor]:
    return sorted(CATALOG.values(), key=lambda m: m.version_tuple)[-count:]


def default_pair() -> tuple[str, str]:
    """The newest patch of each of the two newest minors: the default rehearsal."""
    older, newer = newest_minors(2)
    return older.patches[-1], newer.patches[-1]


def supports_kubernetes(version: str, k8s_version: str) -> bool:
    record = minor_of(version)
    k8s = _minor_tuple(k8s_version)
    return _minor_tuple(record.k8s_min) <= k8s <= _minor_tuple(record.k8s_max)


def upgrade_path_problem(source: str, target: str, strategy: str = "in-place") -> str | None:
    """Why going from ``source`` to ``target`` is not a supported upgrade, or None when it is.

    In-place upgrades may skip no minor; revision (canary) upgrades may skip one; downgrades go back at most
    one minor (istio.io upgrade policy).
    """
    s, t = parse_version(source), parse_version(target)
    if s == t:
        return f"source and target are the same version ({source})"
    step = t[1] - s[1] if t[0] == s[0] else 99
    if t < s:
        return None if step >= -1 else f"a downgrade may go back at most one minor ({source} -> {target})"
    allowed = 2 if strategy == "canary" else 1
    if step > allowed:
        return (
            f"{strategy} upgrades may move at most {allowed} minor version{'s' if allowed > 1 else ''} at a time; "
            f"{source} -> {target} skips {step - 1}: upgrade through each intermediate minor"
        )
    return None
