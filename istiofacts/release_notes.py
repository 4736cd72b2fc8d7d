"""Behaviour changes inside the catalog's minors that the harness or the simulator may rely on, each with the
release note or file it comes from (data; istiofacts imports neither rehearsal nor kubesim).

Kept apart from :mod:`istiofacts.catalog` (the per-minor table) because these are facts of single patches or
single commands; :mod:`istiofacts.registries` holds the registry dates and the signing keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import Source, parse_version

CHANGE_NOTES_1_31 = Source(
    "istio/istio.io", "content/en/news/releases/1.31.x/announcing-1.31/change-notes/index.md"
)


@dataclass(frozen=True)
class Change:
    since: str  # the first release with the behaviour
    what: str
    source: Source

    def applies_to(self, version: str) -> bool:
        return parse_version(version) >= parse_version(self.since)


#: ``istioctl tag remove default`` also deletes ``istiod-default-validator`` (Issue #60537).
TAG_REMOVE_DELETES_DEFAULT_VALIDATOR = Change(
    "1.31.0",
    "istioctl tag remove deletes the istiod-default-validator ValidatingWebhookConfiguration with the "
    "default tag",
    CHANGE_NOTES_1_31,
)
#: ``istioctl analyze`` IST0177: ServiceEntries with the same host and port and conflicting protocols.
ANALYZE_IST0177 = Change(
    "1.31.0",
    "istioctl analyze warns IST0177 when ServiceEntries define the same host and port with conflicting "
    "protocols",
    CHANGE_NOTES_1_31,
)
#: From 1.31 istiod ignores TCPRoute CRDs below Gateway API bundle version 1.6.0 (crdwatcher's
#: minimumCRDVersions; recorded in ../shared/reference/upgrade-pitfalls.md #11, not re-read at the tag).
TCPROUTE_MIN_BUNDLE = Change(
    "1.31.0",
    "istiod processes tcproutes.gateway.networking.k8s.io only at Gateway API bundle-version >= 1.6.0",
    Source("istio/istio", "pilot/pkg/config/kube/crdwatcher/crdwatcher.go", "release-1.31"),
)
MIN_CRD_BUNDLE_VERSIONS: dict[str, dict[str, str]] = {
    "1.31": {"tcproutes.gateway.networking.k8s.io": "1.6.0"},
}

#: ``--set compatibilityVersion=1.30`` exists from 1.31 (a helm profile per older minor; at 1.31 it sets
#: ``PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY=false``); the upgrade notes name compatibility profiles as the way
#: back to 1.30's endpoint behaviour.
COMPATIBILITY_PROFILES: dict[str, tuple[str, ...]] = {"1.31": ("1.30",)}
COMPATIBILITY_PROFILE_SOURCE = Source(
    "istio/istio", "manifests/helm-profiles/compatibility-version-1.30.yaml", "release-1.31"
)
COMPATIBILITY_1_30_ENV = {"PILOT_SPAWN_UPSTREAM_SPAN_FOR_GATEWAY": "false"}


def compatibility_versions(minor: str) -> tuple[str, ...]:
    """The ``compatibilityVersion`` values the 1.31 facts record for ``minor`` (others: not recorded here)."""
    return COMPATIBILITY_PROFILES.get(minor, ())
