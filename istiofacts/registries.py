"""Istio's world with dates: where each release's images and charts are published, and until when.

Data both the harness and the simulator read (istiofacts imports neither). Every record names its source:
istio.io's announcements (the blog posts ``2026/retirement-of-gcr.io-follow-up`` and
``2026/retirement-of-gcp`` and the 1.31 upgrade notes) and the catalog's hub sources at the release tags.

- ``registry.istio.io/release`` (a Cloudflare proxy in front of ``gcr.io/istio-release``) and
  ``gcr.io/istio-release`` are decommissioned in December 2026; the fourth and last scream test disables them
  from 2026-12-08 15:00 UTC to 2026-12-09 15:00 UTC, and Istio publishes no later date on which they come
  back. We take the end of that last scream test as the retirement (:attr:`Registry.retired_from`): from
  the start of the last scream test on, the registry is not there.
- ``docker.io/istio`` stays: it is the hub Istio advises (:data:`ADVISED_HUB`).
- The old Helm chart repositories go with them (``istio-release.storage.googleapis.com/charts`` and the OCI
  charts at ``gcr.io/istio-release/charts``); the new homes are ``blob.istio.io`` and ``ghcr.io``.

The functions take the moment explicitly (``at``), so the harness can judge against today on a real cluster
and against the simulated calendar on the simulator, and tests never depend on the real date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .catalog import DOCKER_HUB, GCR_MIRROR, ISTIO_REGISTRY, Source, default_hub, minor_of


@dataclass(frozen=True)
class Announcement:
    """A page of istio.io: its address and the file of istio/istio.io it is built from."""

    url: str
    source: Source

    def __str__(self) -> str:
        return self.url


FOLLOW_UP_POST = Announcement(
    "https://istio.io/latest/blog/2026/retirement-of-gcr.io-follow-up/",
    Source("istio/istio.io", "content/en/blog/2026/retirement-of-gcr.io-follow-up/index.md"),
)
GCP_POST = Announcement(
    "https://istio.io/latest/blog/2026/retirement-of-gcp/",
    Source("istio/istio.io", "content/en/blog/2026/retirement-of-gcp/index.md"),
)
UPGRADE_NOTES_1_31 = Announcement(
    "https://istio.io/latest/news/releases/1.31.x/announcing-1.31/upgrade-notes/",
    Source("istio/istio.io", "content/en/news/releases/1.31.x/announcing-1.31/upgrade-notes/index.md"),
)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# The scream tests of the 1.31 upgrade notes ("we will disable all GCP hosted artifacts for brief periods").
SCREAM_TESTS: tuple[tuple[datetime, datetime], ...] = (
    (_utc("2026-09-15T15:00"), _utc("2026-09-15T16:00")),
    (_utc("2026-10-13T15:00"), _utc("2026-10-13T18:00")),
    (_utc("2026-11-17T15:00"), _utc("2026-11-17T21:00")),
    (_utc("2026-12-08T15:00"), _utc("2026-12-09T15:00")),  # "the fourth and last scream test"
)
LAST_SCREAM_TEST = SCREAM_TESTS[-1]

#: The hub Istio advises instead ("we suggest you migrate to docker.io/istio as soon as possible").
ADVISED_HUB = DOCKER_HUB
#: How far ahead a retirement makes the harness choose the advised hub on a real cluster.
RETIRES_SOON = timedelta(days=30)


@dataclass(frozen=True)
class Registry:
    """A place Istio's images are (or were) published: ``location`` is a host with the path of Istio's
    repositories (``registry.istio.io/release``)."""

    location: str
    retired_from: datetime | None  # None: no retirement announced
    down: tuple[tuple[datetime, datetime], ...]  # windows in which it is unavailable (scream tests)
    host_goes: bool  # the host itself stops answering (DNS), not just Istio's path on a shared host
    sources: tuple[Announcement, ...]
    note: str = ""

    @property
    def host(self) -> str:
        return self.location.split("/", 1)[0]

    def holds(self, image_or_hub: str) -> bool:
        name = _normal(image_or_hub)
        return name == self.location or name.startswith(self.location + "/")

    def available(self, at: datetime) -> bool:
        if self.retired_from is not None and at >= self.retired_from:
            return False
        return not any(start <= at < end for start, end in self.down)

    def why_unavailable(self, at: datetime) -> str:
        """One sentence: why this registry cannot be pulled from at ``at`` ("" when it can)."""
        if self.available(at):
            return ""
        if self.retired_from is not None and at >= LAST_SCREAM_TEST[0]:
            return (
                f"{self.location} is retired: Istio decommissioned it in December 2026 (last scream test "
                f"{_day(LAST_SCREAM_TEST[0])} to {_day(LAST_SCREAM_TEST[1])}; {self.sources[0]}); "
                f"use {ADVISED_HUB}"
            )
        return (
            f"{self.location} is down for one of Istio's scream tests before its retirement "
            f"({UPGRADE_NOTES_1_31}); use {ADVISED_HUB}"
        )


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _normal(reference: str) -> str:
    ref = reference.strip().removeprefix("https://").rstrip("/")
    first = ref.split("/", 1)[0]
    if "/" in ref and not ("." in first or ":" in first or first == "localhost"):
        ref = f"docker.io/{ref}"
    return ref


REGISTRIES: tuple[Registry, ...] = (
    Registry(DOCKER_HUB, None, (), False, (FOLLOW_UP_POST, GCP_POST), "every release; Istio's advised hub"),
    Registry(
        ISTIO_REGISTRY,
        LAST_SCREAM_TEST[1],
        SCREAM_TESTS,
        True,
        (FOLLOW_UP_POST, GCP_POST, UPGRADE_NOTES_1_31),
        "a Cloudflare worker proxying gcr.io/istio-release; the default hub of 1.30.x; retired with it",
    ),
    Registry(
        GCR_MIRROR,
        LAST_SCREAM_TEST[1],
        SCREAM_TESTS,
        False,  # gcr.io itself stays (other projects); Istio's repositories go
        (GCP_POST, UPGRADE_NOTES_1_31),
        "Google's mirror; 1.30 is the last minor published there",
    ),
)


@dataclass(frozen=True)
class ChartRepository:
    url: str
    retired_from: datetime | None
    replacement: str
    sources: tuple[Announcement, ...]


HELM_REPOSITORIES: tuple[ChartRepository, ...] = (
    ChartRepository(
        "https://istio-release.storage.googleapis.com/charts",
        LAST_SCREAM_TEST[1],
        "https://blob.istio.io/istio-release/charts",
        (GCP_POST, UPGRADE_NOTES_1_31),
    ),
    ChartRepository(
        "oci://gcr.io/istio-release/charts",
        LAST_SCREAM_TEST[1],
        "oci://ghcr.io/istio/release/charts",
        (GCP_POST,),
    ),
    ChartRepository("https://blob.istio.io/istio-release/charts", None, "", (GCP_POST,)),
    ChartRepository("oci://ghcr.io/istio/release/charts", None, "", (GCP_POST,)),
)


def registry_of(image_or_hub: str) -> Registry | None:
    """The record of the registry ``image_or_hub`` (``registry.istio.io/release/pilot:1.30.5``) is in."""
    return next((r for r in REGISTRIES if r.holds(image_or_hub)), None)


def unavailable(image_or_hub: str, at: datetime) -> str:
    """Why ``image_or_hub`` cannot be pulled at ``at`` because of Istio's registry dates, or ""."""
    registry = registry_of(image_or_hub)
    return registry.why_unavailable(at) if registry is not None else ""


def retires_within(image_or_hub: str, at: datetime, window: timedelta = RETIRES_SOON) -> datetime | None:
    """When the registry of ``image_or_hub`` is gone, if that is before ``at + window`` (or already)."""
    registry = registry_of(image_or_hub)
    if registry is None or registry.retired_from is None:
        return None
    if not registry.available(at):
        return at  # retired, or down for a scream test right now
    last = [start for start, _ in registry.down if start >= LAST_SCREAM_TEST[0]]
    gone = min([registry.retired_from, *last])
    return gone if gone <= at + window else None


def published_hubs(version: str, at: datetime) -> tuple[str, ...]:
    """The hubs ``version``'s images can be pulled from at ``at``."""
    return tuple(h for h in minor_of(version).published_hubs if not unavailable(h, at))


def hub_choice(version: str, plan_hub: str | None, at: datetime) -> tuple[str | None, str]:
    """The hub the harness sets for ``version`` when the plan sets none, and why (``(None, "")``: leave the
    version's own default). A version whose default registry is retired, or retires within
    :data:`RETIRES_SOON` of ``at``, gets :data:`ADVISED_HUB`, as Istio's follow-up post advises."""
    if plan_hub:
        return None, ""
    default = default_hub(version)
    gone = retires_within(default, at)
    if gone is None:
        return None, ""
    if gone <= at:
        when = f"is unavailable ({registries_why(default, at)})"
    else:
        when = f"retires on {_day(gone)} (within {RETIRES_SOON.days} days)"
    return ADVISED_HUB, (
        f"Istio {version} installs from {default} by default, which {when}; the plan sets no hub, so "
        f"{ADVISED_HUB} is used, as Istio advises ({FOLLOW_UP_POST})"
    )


def registries_why(image_or_hub: str, at: datetime) -> str:
    return unavailable(image_or_hub, at) or "retired"


def refused_hub(hub: str, at: datetime) -> str:
    """Why a plan's hub must be refused at ``at`` (its registry is retired), or ""."""
    registry = registry_of(hub)
    if registry is None or registry.retired_from is None or registry.available(at):
        return ""
    if at < LAST_SCREAM_TEST[0]:
        return ""  # an earlier scream test: back within hours
    return registry.why_unavailable(at)


# -- signing keys (retirement-of-gcp: "newer images will be signed with a new key") -------------------------
SIGNING_KEY_V1 = "https://istio.io/misc/istio-key.pub"
SIGNING_KEY_V2 = "https://istio.io/misc/istio-key-v2.pub"
SIGNING_KEY_SOURCE = GCP_POST


def signing_key(version: str) -> str:
    """The public key ``version``'s images are signed with: 1.18.x-1.31.0 the old key, 1.31.1+ the new."""
    parts = tuple(int(p) for p in version.lstrip("v").split("-")[0].split("."))
    return SIGNING_KEY_V2 if parts >= (1, 31, 1) else SIGNING_KEY_V1
