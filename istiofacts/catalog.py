"""The Istio version catalog: what each minor release supports, renders, removed and changed, with its source.

Data, not code paths: the harness's checks and the simulator read the same records, and every fact names where
it comes from (:class:`Source`: repository, path, tag), so a fact can be re-checked against Istio at the tag.
The larger tables live next to this module as data files generated from Istio's own files at the release tags:
``crd_versions.json`` (served and storage versions of every CRD, from ``manifests/charts/base``) and
``values_schema.json`` (the install values schema, from ``values_types.proto``; see ``values_schema_gen.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Source:
    """Where a fact comes from: a file of a repository at a tag (or branch), or a published page."""

    repo: str
    path: str
    ref: str = ""

    def __str__(self) -> str:
        return f"{self.repo} {self.ref}:{self.path}" if self.ref else f"{self.repo}:{self.path}"


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

OPERATOR_CRD = "istiooperators.install.istio.io"

# values.* paths removed in each minor (istioctl rejects them as unknown fields from that minor on). The typed
# schema (values_schema.json) is the authority; this list names the removals users meet most, for hints.
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

# -- image hubs ----------------------------------------------------------------------------------------------
DOCKER_HUB = "docker.io/istio"
ISTIO_REGISTRY = "registry.istio.io/release"
GCR_MIRROR = "gcr.io/istio-release"

# The hub a release's istioctl renders when no hub is set: the release build passes its DOCKER_HUB as HUB,
# which
# overrides report_build_info.sh's default, so release-builder's build.sh at the release branch decides.
HUB_SOURCES: dict[str, tuple[Source, ...]] = {
    "1.29": (
        Source("istio/istio", "common/scripts/report_build_info.sh", "1.29.0"),
        Source("istio/release-builder", "release/build.sh", "release-1.29"),
    ),
    "1.30": (
        Source("istio/istio", "common/scripts/report_build_info.sh", "1.30.0"),
        Source("istio/release-builder", "release/build.sh", "release-1.30"),
        Source("istio/istio.io", "content/en/news/releases/1.30.x/announcing-1.30/_index.md"),
    ),
    # 1.31: istio/istio 1.31.0-rc.0 (and release-1.31) still default report_build_info.sh to
    # registry.istio.io,
    # but release-builder release-1.31 (c09fe415, "Revert default registry in helm charts to docker") builds
    # with DOCKER_HUB=docker.io/istio, and the 1.31 upgrade notes say 1.31 is no longer published to
    # registry.istio.io ("Docker images will still be available on DockerHub"). The release build decided.
    "1.31": (
        Source("istio/release-builder", "release/build.sh", "release-1.31"),
        Source("istio/istio.io", "content/en/news/releases/1.31.x/announcing-1.31/upgrade-notes/index.md"),
    ),
}

# Where each release's images are published (the simulated registry holds them there).
PUBLISHED_HUBS_SOURCE = (
    Source("istio/release-builder", "release/publish.sh", "release-1.30"),  # docker.io/istio + gcr mirror
    Source("istio/istio.io", "content/en/news/releases/1.31.x/announcing-1.31/upgrade-notes/index.md"),
)

# -- where values.global.imagePullSecrets land ---------------------------------------------------------------
PULL_SECRET_KINDS = ("ServiceAccount",)
PULL_SECRET_SOURCES = (
    Source("istio/istio", "manifests/charts/istio-control/istio-discovery/templates/serviceaccount.yaml"),
    Source("istio/istio", "manifests/charts/gateways/istio-ingress/templates/serviceaccount.yaml"),
    Source("istio/istio", "manifests/charts/istio-cni/templates/serviceaccount.yaml"),
    Source("istio/istio", "manifests/charts/base/templates/reader-serviceaccount.yaml"),
)

# -- verify-install ------------------------------------------------------------------------------------------
VERIFY_INSTALL_FLAGS = (("filename", "f"), ("manifests", "d"), ("revision", "r"))
VERIFY_INSTALL_SOURCE = Source("istio/istio", "operator/cmd/mesh/verify.go", "1.23.6")

# -- precheck ------------------------------------------------------------------------------------------------
PRECHECK_SOURCE = Source("istio/istio", "istioctl/pkg/precheck/precheck.go", "release-1.31")
PRECHECK_MESSAGES_SOURCE = Source("istio/istio", "pkg/config/analysis/msg/messages.yaml", "release-1.31")
# The kinds `istioctl install` prunes when the new version no longer renders an object of its own (by the
# ownership labels): operator/pkg/uninstall/prune.go PrunedResourcesSchemas, the kinds Istio's charts render.
PRUNE_SOURCE = Source("istio/istio", "operator/pkg/uninstall/prune.go", "1.29.5")
PRUNED_KINDS = (
    ("apps/v1", "Deployment"),
    ("apps/v1", "DaemonSet"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
)
# SelfSubjectAccessReview "create" checks: (group, resource, namespaced in the Istio namespace)
PRECHECK_PERMISSIONS = (
    ("", "namespaces", False),
    ("rbac.authorization.k8s.io", "clusterroles", False),
    ("rbac.authorization.k8s.io", "clusterrolebindings", False),
    ("apiextensions.k8s.io", "customresourcedefinitions", False),
    ("rbac.authorization.k8s.io", "roles", True),
    ("", "serviceaccounts", True),
    ("", "services", True),
    ("apps", "deployments", True),
    ("", "configmaps", True),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", False),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations", False),
)
# Gateway API kinds precheck requires at v1beta1 (IST0156, Error) and, from 1.26, expects at v1 (IST0172,
# Warning).
GATEWAY_API_BETA_KINDS = ("Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant")
GATEWAY_API_STABLE_KINDS = ("Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute")


@dataclass(frozen=True)
class IstioMinor:
    minor: str
    k8s_min: str  # oldest supported Kubernetes minor (istio.io support table)
    k8s_max: str  # newest supported Kubernetes minor
    precheck_min_k8s: str  # MinK8SVersion that `istioctl x precheck` enforces (IST0142)
    patches: tuple[str, ...]  # known patch releases, oldest first
    go_version: str
    k8s_range_published: bool = True
    default_hub: str = DOCKER_HUB

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.minor.split(".")
        return int(major), int(minor)

    def at_least(self, minor: str) -> bool:
        return self.version_tuple >= _minor_tuple(minor)

    @property
    def hub_sources(self) -> tuple[Source, ...]:
        return HUB_SOURCES.get(self.minor, HUB_SOURCES["1.29"])

    @property
    def published_hubs(self) -> tuple[str, ...]:
        """Registries the release's images are published to: Docker Hub always; up to 1.30 also the Google
        mirror gcr.io/istio-release (release-builder release/publish.sh DOCKER_HUB_MIRROR) and
        registry.istio.io/release in front of it; 1.31 no longer publishes to either (its upgrade notes)."""
        return (DOCKER_HUB,) if self.at_least("1.31") else (DOCKER_HUB, ISTIO_REGISTRY, GCR_MIRROR)

    @property
    def verify_install(self) -> bool:
        """``istioctl verify-install`` exists up to 1.23 (removed with the in-cluster operator)."""
        return not self.at_least("1.24")

    @property
    def precheck_from_version(self) -> bool:
        """``x precheck --from-version`` exists from 1.21 (istioctl/pkg/precheck/precheck.go at 1.21.0)."""
        return self.at_least("1.21")

    @property
    def precheck_gateway_api_v1_warning(self) -> bool:
        """IST0172 (Gateway API CRDs not at v1) is checked from 1.26 (messages.yaml at 1.26.0)."""
        return self.at_least("1.26")

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
    def helm_labels(self) -> bool:
        """``app.kubernetes.io/*`` and ``helm.sh/chart`` labels are rendered from 1.24."""
        return self.at_least("1.24")

    @property
    def crds(self) -> tuple[str, ...]:
        return tuple(sorted(self._crd_table()))

    def _crd_table(self) -> dict[str, Any]:
        table = crd_versions(self.minor)
        if not self.at_least("1.21"):
            # 1.20's base chart also ships the in-cluster operator's CRD (1.20.8
            # manifests/charts/base/crds/crd-operator.yaml; gone in 1.21).
            table[OPERATOR_CRD] = {"served": ["v1alpha1"], "storage": "v1alpha1"}
        return table

    def served_versions(self, crd: str) -> tuple[str, ...]:
        """The versions of ``crd`` (e.g. ``gateways.networking.istio.io``) this release serves."""
        return tuple(self._crd_table()[crd]["served"])

    def storage_version(self, crd: str) -> str:
        return str(self._crd_table()[crd]["storage"])

    @property
    def crd_source(self) -> str:
        return str(_crd_data()[self.minor]["source"])

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

    @property
    def unknown_value_error_prefix(self) -> str:
        """How istioctl wraps a values decoding error: 1.24+ validates values with sigs.k8s.io/yaml and wraps
        it (operator/pkg/apis/validation/validation.go); up to 1.23 the jsonpb error is printed as it is
        (operator/pkg/validate/validate_values.go)."""
        return (
            "could not unmarshal: error unmarshaling JSON: while decoding JSON: "
            if self.at_least("1.24")
            else ""
        )

    def removed_values(self) -> tuple[str, ...]:
        """Every values path removed in this minor or an earlier one."""
        return tuple(p for minor, paths in REMOVED_VALUES.items() if self.at_least(minor) for p in paths)


@cache
def _crd_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "crd_versions.json").read_text())
    return data


def crd_versions(minor: str) -> dict[str, Any]:
    """``{crd name: {"served": [...], "storage": ...}}`` of a minor (from its base chart at the newest
    tag)."""
    return dict(_crd_data()[minor]["crds"])


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
        IstioMinor("1.26", "1.29", "1.33", "1.29", _patches("1.26", 8), "go1.24.6"),
        IstioMinor("1.27", "1.29", "1.33", "1.29", _patches("1.27", 9), "go1.24.9"),
        IstioMinor("1.28", "1.30", "1.34", "1.29", _patches("1.28", 10), "go1.25.3"),
        IstioMinor("1.29", "1.31", "1.35", "1.30", _patches("1.29", 8), "go1.25.6"),
        IstioMinor(
            "1.30", "1.32", "1.36", "1.32", _patches("1.30", 5), "go1.25.9", default_hub=ISTIO_REGISTRY
        ),
        # 1.31.0 (2026-08-20, "officially supported on Kubernetes versions 1.32 to 1.36"), 1.31.1
        # (2026-09-21).
        IstioMinor("1.31", "1.32", "1.36", "1.32", _patches("1.31", 1), "go1.26.0"),
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


# Minors newer than the catalog that a real cluster rehearses (check_release(newer_minor_ok=True)), each with
# the catalog minor whose facts stand in for it: that version's real istioctl decides, as for a newer patch.
STAND_INS: dict[str, str] = {}


def minor_of(version: str) -> IstioMinor:
    major, minor, _ = parse_version(version)
    record = CATALOG.get(f"{major}.{minor}") or CATALOG.get(STAND_INS.get(f"{major}.{minor}", ""))
    if record is None:
        raise UnknownVersion(
            f"Istio {major}.{minor} is not in the catalog; known minors: {', '.join(CATALOG)}"
        )
    return record


def minor_name(version: str) -> str:
    """``1.30.5`` -> ``1.30`` (what ``x precheck --from-version`` expects: it parses the minor as a
    number)."""
    major, minor, _ = parse_version(version)
    return f"{major}.{minor}"


def default_hub(version: str) -> str:
    """The hub ``istioctl manifest generate`` of ``version`` renders when the plan sets none."""
    return minor_of(version).default_hub


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


def check_release(version: str, newer_minor_ok: bool = False) -> tuple[str, str | None]:
    """For real clusters: a version of a known minor is accepted even if the patch is newer than the catalog
    (that version's real istioctl decides); returns the version and a warning to show, or raises. With
    ``newer_minor_ok`` a minor newer than the catalog's newest is accepted the same way, the newest minor's
    facts standing in for it (recorded in :data:`STAND_INS`)."""
    clean = version.lstrip("v")
    major, minor, _ = parse_version(clean)
    newest = newest_minors(1)[0]
    if newer_minor_ok and f"{major}.{minor}" not in CATALOG and (major, minor) > newest.version_tuple:
        STAND_INS[f"{major}.{minor}"] = newest.minor
        return clean, (
            f"Istio {clean} is a minor newer than the catalog knows (up to {newest.minor}); the checks use "
            f"{newest.minor}'s facts and istioctl {clean} itself decides"
        )
    record = minor_of(version)
    if clean in record.patches:
        return clean, None
    if parse_version(clean)[2] > parse_version(record.patches[-1])[2]:
        return clean, (
            f"Istio {clean} is newer than the catalog knows ({record.minor} up to {record.patches[-1]}); "
            f"the checks use {record.minor}'s facts and istioctl {clean} itself decides"
        )
    raise UnknownVersion(
        f"Istio {version} is not a known release; {record.minor} has "
        f"{record.patches[0]} to {record.patches[-1]}"
    )


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
            f"{strategy} upgrades may move at most {allowed} minor version{'s' if allowed > 1 else ''} "
            "at a time; "
            f"{source} -> {target} skips {step - 1}: upgrade through each intermediate minor"
        )
    return None
