"""Istio's world with dates: the registries' retirement (istiofacts.registries), the hub the harness picks
for a version, and the simulated world's registries following the same dates against the simulated calendar.

Every moment is passed explicitly and derived from the catalog's dates, never from today's real date."""

from __future__ import annotations

from datetime import timedelta

import pytest

import kubesim.istio
from istiofacts import catalog, registries, release_notes
from istiofacts.catalog import DOCKER_HUB, GCR_MIRROR, ISTIO_REGISTRY
from kubesim import SimCluster
from kubesim.apiserver.api import RequestOptions
from kubesim.clock import SimClock
from kubesim.node.images import PullError

START, END = registries.LAST_SCREAM_TEST
BEFORE = START - timedelta(days=60)  # far from any scream test
AFTER = END + timedelta(days=1)
SOON = START - timedelta(days=6)  # within 30 days of the retirement
V130 = catalog.CATALOG["1.30"].patches[-1]
V131 = catalog.CATALOG["1.31"].patches[-1]
V129 = catalog.CATALOG["1.29"].patches[-1]


def test_each_registry_has_its_dates_and_sources():
    istio = registries.registry_of(f"{ISTIO_REGISTRY}/pilot:{V130}")
    gcr = registries.registry_of(f"{GCR_MIRROR}/proxyv2:{V130}")
    hub = registries.registry_of(f"{DOCKER_HUB}/pilot:{V131}")
    assert istio is not None and gcr is not None and hub is not None
    assert istio.retired_from == gcr.retired_from == END and hub.retired_from is None
    assert istio.host_goes and not gcr.host_goes
    urls = {str(s) for s in istio.sources}
    assert "https://istio.io/latest/blog/2026/retirement-of-gcr.io-follow-up/" in urls
    assert "https://istio.io/latest/blog/2026/retirement-of-gcp/" in urls
    assert registries.registry_of("registry.example.com/istio/pilot:1") is None


@pytest.mark.parametrize(
    "at, available",
    [(BEFORE, True), (SOON, True), (START, False), (START + timedelta(hours=12), False), (AFTER, False)],
)
def test_registry_istio_io_is_gone_from_the_last_scream_test_on(at, available):
    assert (registries.unavailable(ISTIO_REGISTRY, at) == "") is available
    assert registries.unavailable(DOCKER_HUB, at) == ""


def test_an_earlier_scream_test_is_an_outage_not_a_retirement():
    start, end = registries.SCREAM_TESTS[0]
    during = start + (end - start) / 2
    assert "scream test" in registries.unavailable(ISTIO_REGISTRY, during)
    assert registries.refused_hub(ISTIO_REGISTRY, during) == ""
    assert registries.unavailable(ISTIO_REGISTRY, end) == ""


def test_a_version_whose_default_registry_retires_soon_gets_the_advised_hub():
    assert catalog.default_hub(V130) == ISTIO_REGISTRY
    assert registries.hub_choice(V130, None, BEFORE) == (None, "")
    hub, why = registries.hub_choice(V130, None, SOON)
    assert hub == registries.ADVISED_HUB and ISTIO_REGISTRY in why and "within 30 days" in why
    hub, why = registries.hub_choice(V130, None, AFTER)
    assert hub == DOCKER_HUB and "is retired" in why and "is unavailable" in why
    # The plan's own hub is left alone; versions that default to Docker Hub need nothing.
    assert registries.hub_choice(V130, "registry.example.com/istio", AFTER) == (None, "")
    assert registries.hub_choice(V131, None, AFTER) == (None, "")
    assert registries.hub_choice(V129, None, AFTER) == (None, "")


def test_a_plan_hub_on_a_retired_registry_is_refused():
    assert registries.refused_hub(ISTIO_REGISTRY, BEFORE) == ""
    assert "retired" in registries.refused_hub(ISTIO_REGISTRY, AFTER)
    assert "retired" in registries.refused_hub(GCR_MIRROR, START)
    assert registries.refused_hub(DOCKER_HUB, AFTER) == ""


def test_published_hubs_follow_the_dates():
    assert set(registries.published_hubs(V130, BEFORE)) == {DOCKER_HUB, ISTIO_REGISTRY, GCR_MIRROR}
    assert registries.published_hubs(V130, AFTER) == (DOCKER_HUB,)
    assert registries.published_hubs(V131, BEFORE) == (DOCKER_HUB,)


def test_old_helm_repositories_retire_with_the_registries():
    old = {r.url: r for r in registries.HELM_REPOSITORIES if r.retired_from is not None}
    assert old["https://istio-release.storage.googleapis.com/charts"].replacement == (
        "https://blob.istio.io/istio-release/charts"
    )
    assert all(r.retired_from == END for r in old.values())


def test_signing_keys_per_release():
    assert registries.signing_key(catalog.CATALOG["1.31"].patches[0]) == registries.SIGNING_KEY_V1
    assert registries.signing_key(V130) == registries.SIGNING_KEY_V1
    assert registries.signing_key("1.31.1") == registries.SIGNING_KEY_V2


def test_the_1_31_facts():
    first = catalog.CATALOG["1.31"].patches[0]
    assert release_notes.TAG_REMOVE_DELETES_DEFAULT_VALIDATOR.applies_to(first)
    assert not release_notes.TAG_REMOVE_DELETES_DEFAULT_VALIDATOR.applies_to(V130)
    assert release_notes.ANALYZE_IST0177.applies_to(V131)
    assert release_notes.MIN_CRD_BUNDLE_VERSIONS["1.31"]["tcproutes.gateway.networking.k8s.io"] == "1.6.0"
    assert release_notes.compatibility_versions("1.31") == ("1.30",)


# -- the simulated world ---------------------------------------------------------------------------------
def _dated_cluster(at) -> SimCluster:
    cluster = SimCluster(clock=SimClock.manual_clock(), addons=[kubesim.istio.addon])
    cluster.set_calendar(at.timestamp())
    return cluster


def test_without_a_calendar_the_simulated_registries_keep_their_images():
    cluster = SimCluster(clock=SimClock.manual_clock(), addons=[kubesim.istio.addon])
    assert cluster.registry.pull(f"{ISTIO_REGISTRY}/pilot:{V130}", []).reference.endswith(V130)


def test_the_simulated_calendar_retires_istios_registries():
    before = _dated_cluster(BEFORE).registry
    assert before.pull(f"{ISTIO_REGISTRY}/pilot:{V130}", [])
    after = _dated_cluster(AFTER).registry
    with pytest.raises(PullError, match="lookup registry.istio.io on 127.0.0.11:53: no such host"):
        after.pull(f"{ISTIO_REGISTRY}/pilot:{V130}", [])
    with pytest.raises(PullError, match="not found"):
        after.pull(f"{GCR_MIRROR}/pilot:{V130}", [])
    assert after.pull(f"{DOCKER_HUB}/pilot:{V130}", [])


def test_the_simulated_registry_goes_when_the_clock_reaches_the_scream_test():
    cluster = _dated_cluster(START - timedelta(minutes=10))
    image = f"{ISTIO_REGISTRY}/proxyv2:{V130}"
    assert cluster.registry.pull(image, [])
    cluster.pass_time(20 * 60, step=60)
    with pytest.raises(PullError, match="no such host"):
        cluster.registry.pull(image, [])


def test_a_pod_of_a_retired_registry_fails_with_err_image_pull_in_the_kubelets_words():
    with _dated_cluster(AFTER) as cluster:
        api = cluster.store
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "old", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": f"{ISTIO_REGISTRY}/pilot:{V130}"}]},
        }
        rt = cluster.api.type_for_kind("v1", "Pod")
        assert rt is not None
        cluster.api.create(rt, pod, "default", RequestOptions(manager="test"))
        cluster.pass_time(30, step=1, until=lambda: _waiting(api) in ("ErrImagePull", "ImagePullBackOff"))
        assert _waiting(api) in ("ErrImagePull", "ImagePullBackOff")
        messages = [e["message"] for e in api.items(("", "events"), "default")]
        assert any("no such host" in m and "registry.istio.io" in m for m in messages)


def _waiting(store) -> str | None:
    pod = store.get(("", "pods"), "default", "old")
    statuses = (pod or {}).get("status", {}).get("containerStatuses") or [{}]
    return statuses[0].get("state", {}).get("waiting", {}).get("reason")
