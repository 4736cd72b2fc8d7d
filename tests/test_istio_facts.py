"""Istio's facts per minor, each with its source, checked against the istioctl emulator of that minor.

The expectations here are written from Istio's sources at the release tags (the source is named next to each),
not read back from the emulator: where the emulator and Istio disagree, these fail. Every minor in the catalog
is covered; versions come from the catalog.
"""

from __future__ import annotations

import io
import json

import pytest
import yaml

from istiofacts import catalog, istioctl_cli, operator
from istiofacts.catalog import CATALOG, default_hub, minor_of
from kubesim.istio import istioctl as emulator
from kubesim.istio import manifests

NEWEST_PATCHES = [m.patches[-1] for m in CATALOG.values()]


def run(version: str, *argv: str) -> tuple[int, str, str]:
    """The emulator of ``version`` as a process would run it (no cluster needed for these commands)."""
    out, err = io.StringIO(), io.StringIO()
    code = emulator.main(version, list(argv), out, err, io.StringIO())
    return code, out.getvalue(), err.getvalue()


def generate(version: str, *sets: str) -> list[dict]:
    code, out, err = run(version, "manifest", "generate", *[a for s in sets for a in ("--set", s)])
    assert code == 0, err
    return [d for d in yaml.safe_load_all(out) if d]


# -- the catalog itself --------------------------------------------------------------------------------------
def test_catalog_has_the_releases_announced_up_to_1_31_1():
    # istio.io announcements and istio/istio tags (istio-facts.md section 0): 1.31.0, 1.31.1, 1.30.5, 1.29.8,
    # 1.28.10, 1.27.9, 1.26.8.
    for version in ("1.31.0", "1.31.1", "1.30.5", "1.29.8", "1.28.10", "1.27.9", "1.26.8"):
        assert catalog.check_known(version) == version
    assert catalog.default_pair() == (CATALOG["1.30"].patches[-1], CATALOG["1.31"].patches[-1])
    assert [m.minor for m in catalog.newest_minors(2)] == ["1.30", "1.31"]


def test_a_newer_patch_is_a_warning_for_real_clusters_and_an_unknown_minor_an_error():
    version, warning = catalog.check_release("1.31.9")
    assert version == "1.31.9" and warning and "istioctl 1.31.9 itself decides" in warning
    assert catalog.check_release(CATALOG["1.30"].patches[-1])[1] is None
    with pytest.raises(catalog.UnknownVersion, match="not in the catalog"):
        catalog.check_release("1.99.0")
    with pytest.raises(catalog.UnknownVersion, match="not a known release"):
        catalog.check_known("1.31.9")  # the simulator refuses what it cannot emulate


# -- default hub ---------------------------------------------------------------------------------------------
# (minor range, hub, source that decided)
HUBS = [
    ("1.20", "1.29", "docker.io/istio", "istio/istio 1.29.0:common/scripts/report_build_info.sh"),
    ("1.30", "1.30", "registry.istio.io/release", "istio/release-builder release-1.30:release/build.sh"),
    ("1.31", "1.31", "docker.io/istio", "istio/release-builder release-1.31:release/build.sh"),
]


@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_default_hub_with_its_source(version):
    minor = minor_of(version)
    expected, source = next(
        (hub, src)
        for low, high, hub, src in HUBS
        if minor.at_least(low) and not minor.version_tuple > _t(high)
    )
    assert default_hub(version) == expected
    assert source in [str(s) for s in minor.hub_sources]
    images = [
        c["image"]
        for d in generate(version)
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert images and all(i.startswith(f"{expected}/") and i.endswith(f":{version}") for i in images)


def _t(minor: str) -> tuple[int, int]:
    major, number = minor.split(".")
    return int(major), int(number)


def test_the_1_31_hub_was_settled_by_the_release_build_and_the_upgrade_notes():
    sources = [str(s) for s in CATALOG["1.31"].hub_sources]
    assert "istio/release-builder release-1.31:release/build.sh" in sources
    assert any("announcing-1.31/upgrade-notes" in s for s in sources)
    assert CATALOG["1.31"].published_hubs == ("docker.io/istio",)  # no longer pushed to registry.istio.io
    assert "registry.istio.io/release" in CATALOG["1.30"].published_hubs


# -- pull secrets --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_pull_secrets_land_on_service_accounts_only(version):
    # manifests/charts/{istio-control/istio-discovery,gateways/istio-ingress,istio-cni}/templates/
    # serviceaccount.yaml and base reader-serviceaccount.yaml, every tag: on ServiceAccounts, no pod spec.
    docs = generate(version, "values.global.imagePullSecrets[0]=regcred", "components.cni.enabled=true")
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    for name in (
        "istiod",
        "istio-ingressgateway-service-account",
        "istio-cni",
        "istio-reader-service-account",
    ):
        assert accounts[name]["imagePullSecrets"] == [{"name": "regcred"}], name
    for d in docs:
        if d["kind"] in ("Deployment", "DaemonSet"):
            assert "imagePullSecrets" not in d["spec"]["template"]["spec"], d["metadata"]["name"]
    assert catalog.PULL_SECRET_KINDS == ("ServiceAccount",)


# -- served CRD versions -------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_served_and_storage_crd_versions(version):
    # manifests/charts/base (crds/ up to 1.23, files/ from 1.24) crd-all.gen.yaml at the minor's newest tag.
    minor = minor_of(version)
    assert minor.crd_source.startswith("istio/istio 1.") and "crd-all.gen.yaml" in minor.crd_source
    gateways = "gateways.networking.istio.io"
    served = set(minor.served_versions(gateways))
    assert ("v1" in served) == minor.at_least("1.22")  # networking v1 first appears in 1.22
    assert {"v1alpha3", "v1beta1"} <= served
    storage = minor.storage_version(gateways)
    assert storage == (
        "v1alpha3" if not minor.at_least("1.22") else "v1beta1" if not minor.at_least("1.27") else "v1"
    )
    assert minor.served_versions("envoyfilters.networking.istio.io") == ("v1alpha3",)
    assert minor.served_versions("proxyconfigs.networking.istio.io") == ("v1beta1",)
    telemetry = set(minor.served_versions("telemetries.telemetry.istio.io"))
    assert telemetry == ({"v1", "v1alpha1"} if minor.at_least("1.22") else {"v1alpha1"})
    rendered = {
        d["metadata"]["name"]: d for d in generate(version) if d["kind"] == "CustomResourceDefinition"
    }
    assert set(rendered) == set(minor.crds)
    assert ("trafficextensions.extensions.istio.io" in rendered) == minor.at_least("1.30")
    versions = rendered[gateways]["spec"]["versions"]
    assert {v["name"] for v in versions if v["served"]} == served
    assert [v["name"] for v in versions if v["storage"]] == [storage]


def test_sample_apps_use_an_api_version_every_source_serves():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "sample_apps"
    for path in sorted(root.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or not doc["apiVersion"].startswith("networking.istio.io/"):
                continue
            plural = {"Gateway": "gateways", "VirtualService": "virtualservices"}[doc["kind"]]
            version = doc["apiVersion"].split("/")[1]
            for minor in CATALOG.values():
                assert version in minor.served_versions(f"{plural}.networking.istio.io"), (path, minor.minor)


# -- values schema -------------------------------------------------------------------------------------------
# (values path, first minor that has it): operator/pkg/apis[/istio/v1alpha1]/values_types.proto per tag.
ADDED = [
    ("global.proxy.seccompProfile", "1.29"),
    ("gateways.seccompProfile", "1.23"),
    ("pilot.cni", "1.22"),
    ("global.waypoint", "1.24"),
    ("pilot.envVarFrom", "1.26"),
    ("global.nativeNftables", "1.27"),
    ("global.trustBundleName", "1.27"),
    ("global.resourceScope", "1.28"),
    ("global.networkPolicy", "1.28"),
    ("cni.daemonSetLabels", "1.28"),
    ("global.readerServiceAccount", "1.31"),
]
SAMPLE_VALUE = {
    "global.proxy.seccompProfile": {"type": "RuntimeDefault"},
    "gateways.seccompProfile": {"type": "RuntimeDefault"},
    "pilot.cni": {"enabled": True},
    "global.waypoint": {"resources": {}},
    "pilot.envVarFrom": [],
    "global.nativeNftables": True,
    "global.trustBundleName": "bundle",
    "global.resourceScope": "all",
    "global.networkPolicy": {"enabled": False},
    "cni.daemonSetLabels": {"a": "b"},
    "global.readerServiceAccount": {"name": "reader"},
}


def _values(path: str, value: object) -> dict:
    spec: dict = {}
    operator.set_path(spec, f"values.{path}", value)
    return spec


@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_fields_added_later_are_unknown_to_older_versions(version):
    minor = minor_of(version)
    assert operator.values_source(minor.minor).startswith(f"istio/istio {minor.minor}.")
    for path, since in ADDED:
        spec = _values(path, SAMPLE_VALUE[path])
        if minor.at_least(since):
            operator.validate(spec, version)
            continue
        field = path.rsplit(".", 1)[1]
        message = {
            "global": "GlobalConfig",
            "pilot": "PilotConfig",
            "cni": "CNIConfig",
            "gateways": "GatewaysConfig",
        }
        owner = "ProxyConfig" if path.startswith("global.proxy.") else message[path.split(".")[0]]
        with pytest.raises(operator.OperatorError) as exc:
            operator.validate(spec, version)
        assert str(exc.value) == (
            f'{minor.unknown_value_error_prefix}unknown field "{field}" in istio.operator.v1alpha1.{owner}'
        )


@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_values_still_accepted_and_wrong_types_rejected(version):
    minor = minor_of(version)
    # NOT removed: pilot.cpu.targetAverageUtilization and cni.psp_cluster_role are in every proto 1.20-1.31.
    operator.validate(_values("pilot.cpu.targetAverageUtilization", 80), version)
    operator.validate(_values("cni.psp_cluster_role", "x"), version)
    # Removed ones: global.autoscalingv2API (gone in 1.24).
    removed = _values("global.autoscalingv2API", True)
    if minor.at_least("1.24"):
        with pytest.raises(operator.OperatorError, match='unknown field "autoscalingv2API"'):
            operator.validate(removed, version)
    else:
        operator.validate(removed, version)
    # jsonpb decoding a message (global.proxy.resources: Resources) from a string, and a BoolValue from a
    # string.
    prefix = minor.unknown_value_error_prefix
    cases = [
        (
            "global.proxy.resources",
            "abc",
            "json: cannot unmarshal string into Go value of type map[string]json.RawMessage",
        ),
        (
            "global.proxy.holdApplicationUntilProxyStarts",
            "abc",
            "json: cannot unmarshal string into Go value of type bool",
        ),
        ("pilot.autoscaleMin", "abc", "invalid character 'a' looking for beginning of value"),
    ]
    for path, value, text in cases:
        with pytest.raises(operator.OperatorError) as exc:
            operator.validate(_values(path, value), version)
        assert str(exc.value) == prefix + text
    operator.validate(_values("pilot.autoscaleMin", 2), version)


@pytest.mark.parametrize("version", [CATALOG["1.23"].patches[-1], CATALOG["1.31"].patches[-1]])
def test_the_emulator_prints_the_values_error_of_its_version(version):
    code, out, err = run(version, "manifest", "generate", "--set", "values.global.proxy.resources=abc")
    assert (code, out) == (1, "")
    assert err == (
        f"Error: {minor_of(version).unknown_value_error_prefix}"
        "json: cannot unmarshal string into Go value of type map[string]json.RawMessage\n"
    )


# -- cobra flags ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [m.patches[-1] for m in CATALOG.values() if m.verify_install])
def test_verify_install_takes_only_f_d_r(version):
    # operator/cmd/mesh/verify.go at 1.23.6: filename (-f), manifests (-d), revision (-r), plus the root
    # flags.
    own = {f.name for f in istioctl_cli.flags_for("verify-install", version)} - {
        f.name for f in istioctl_cli.ROOT_FLAGS
    }
    assert own == {"filename", "manifests", "revision"}
    assert catalog.VERIFY_INSTALL_FLAGS == (("filename", "f"), ("manifests", "d"), ("revision", "r"))
    assert run(version, "verify-install", "--set", "profile=default") == (
        64,
        "",
        "Error: unknown flag: --set\n",
    )


@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_unknown_flags_are_usage_errors_for_every_command(version):
    commands = [
        ("version", "--remote=false"),
        ("manifest", "generate"),
        ("x", "precheck"),
        ("analyze",),
        ("proxy-status",),
        ("tag", "list"),
        ("uninstall",),
        ("install",),
    ]
    for words in commands:
        assert run(version, *words, "--no-such-flag") == (64, "", "Error: unknown flag: --no-such-flag\n"), (
            words
        )
        code, _, err = run(version, *words, "-Q")
        assert (code, err) == (64, "Error: unknown shorthand flag: 'Q' in -Q\n"), words
    code, _, err = run(version, "manifest", "generate", "--set")
    assert (code, err) == (64, "Error: flag needs an argument: --set\n")
    if not minor_of(version).verify_install:
        code, _, err = run(version, "verify-install")
        assert code == 64 and err.startswith('Error: unknown command "verify-install" for "istioctl"')


def test_precheck_from_version_exists_from_1_21():
    # istioctl/pkg/precheck/precheck.go: --from-version/-f added in 1.21 (absent at 1.20.8).
    assert not istioctl_cli.accepts("x precheck", CATALOG["1.20"].patches[-1], "from-version")
    for minor in list(CATALOG.values())[1:]:
        assert istioctl_cli.accepts("x precheck", minor.patches[-1], "from-version")
    # It parses "1.N" and wants the minor as a number: a full patch version is an error.
    code, _, err = run(CATALOG["1.31"].patches[-1], "x", "precheck", "--from-version", "1.30.5")
    assert (code, err) == (1, "Error: minor version is not a number: 30.5\n")
    assert catalog.minor_name("1.30.5") == "1.30"


# -- the injector and CNI ------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_injector_has_four_webhooks_without_a_revision(version):
    # istio-discovery templates/mutatingwebhook.yaml: rev.namespace., rev.object., and with revision "" also
    # namespace. and object. (checked by rendering the chart with helm at 1.22.8, 1.29.6, 1.30.3,
    # 1.31.0-rc.0).
    docs = generate(version)
    hook = next(d for d in docs if d["kind"] == "MutatingWebhookConfiguration")
    assert [w["name"] for w in hook["webhooks"]] == [
        "rev.namespace.sidecar-injector.istio.io",
        "rev.object.sidecar-injector.istio.io",
        "namespace.sidecar-injector.istio.io",
        "object.sidecar-injector.istio.io",
    ]
    revisioned = generate(version, "revision=canary")
    hook = next(d for d in revisioned if d["kind"] == "MutatingWebhookConfiguration")
    assert [w["name"] for w in hook["webhooks"]] == [
        "rev.namespace.sidecar-injector.istio.io",
        "rev.object.sidecar-injector.istio.io",
    ]
    # Once the default tag exists, istioctl makes these never match (istioctl/pkg/tag
    # DeactivateIstioInjectionWebhook).
    off = manifests.deactivated(hook)
    assert all(
        w["namespaceSelector"] == manifests.NEVER_MATCH == w["objectSelector"] for w in off["webhooks"]
    )


@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_cni_renders_and_switches_injection_only_from_components_cni_enabled(version):
    def injector_cni(docs: list[dict]) -> bool:
        cm = next(
            d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "istio-sidecar-injector"
        )
        values = json.loads(cm["data"]["values"])
        return bool(values["pilot"]["cni"]["enabled"] or values["istio_cni"]["enabled"])

    values_only = generate(version, "values.cni.enabled=true")
    assert not any(d["kind"] == "DaemonSet" for d in values_only) and not injector_cni(values_only)
    component = generate(version, "components.cni.enabled=true")
    assert any(d["kind"] == "DaemonSet" and d["metadata"]["name"] == "istio-cni-node" for d in component)
    assert injector_cni(component)


# -- precheck output, per minor (one old-Kubernetes cluster for all) --------------------------------------
@pytest.fixture(scope="module")
def old_kubernetes(tmp_path_factory):
    import kubesim.istio
    from kubesim import SimCluster

    with SimCluster(
        time_scale=0,
        k8s_version="1.24.17",
        kubeconfig=tmp_path_factory.mktemp("old-k8s") / "kubeconfig",
        addons=[kubesim.istio.addon],
    ) as cluster:
        yield cluster


@pytest.mark.parametrize("version", NEWEST_PATCHES)
def test_precheck_output_as_istioctl_prints_it(old_kubernetes, version):
    # istioctl/pkg/precheck/precheck.go: IST0142 with origin (Cluster), the server's GitVersion ("v" prefix)
    # and
    # "1.<MinK8SVersion>" (istioctl/pkg/install/k8sversion/version.go at the tag); messages on stdout, the
    # failure on stderr, exit 1. --from-version takes the minor ("1.N").
    args = ["x", "precheck", "--kubeconfig", str(old_kubernetes.kubeconfig_path)]
    if minor_of(version).precheck_from_version:
        args += ["--from-version", catalog.minor_name(version)]
    code, out, err = run(version, *args)
    assert code == 1
    assert out == (
        'Error [IST0142] (Cluster) The Kubernetes Version "v1.24.17" is lower than the minimum version: '
        f"{catalog.precheck_min_k8s(version)}\n"
    )
    assert err.startswith(
        "Error: Issues found when checking the cluster. Istio may not be safe to install or upgrade.\n"
    )


def test_the_precheck_floor_of_kubernetes_follows_the_patch_where_istio_moved_it():
    """MinK8SVersion as istioctl/pkg/install/k8sversion/version.go has it at each tag: it moved inside 1.25
    and 1.28 (the facts pinned here were read at the tags)."""
    assert [catalog.precheck_min_k8s(v) for v in ("1.25.0", "1.25.1", "1.25.5")] == ["1.28", "1.29", "1.29"]
    assert [catalog.precheck_min_k8s(v) for v in ("1.28.0", "1.28.1", "1.28.2")] == ["1.29", "1.29", "1.30"]
    for minor in catalog.CATALOG.values():
        if minor.minor not in catalog.PRECHECK_MIN_K8S_FROM_PATCH:
            assert {catalog.precheck_min_k8s(p) for p in minor.patches} == {minor.precheck_min_k8s}
