"""Rehearsals in the world as it is this month (issue 17), in process on the simulated cluster:

- a private registry whose credentials reach the cluster only through ``--pull-secret`` (the README's runbook
  plan: hub on the private registry, ``values.global.imagePullSecrets``) rehearses to ``upgraded``, with the
  images proven pullable before the source install and before the apply;
- with the simulated calendar after Istio retired registry.istio.io, a default 1.30 -> 1.31 rehearsal uses
  docker.io/istio for 1.30 and says why, and a plan hub on the retired registry is refused before anything;
- options judged before any cluster exists: the same version twice, a skip of two minors, plan values that
  neither version's schema has.

Dates come from istiofacts.registries, versions from the catalog."""

from __future__ import annotations

import json
from datetime import timedelta

from istiofacts import catalog, registries
from rehearsal import exitcodes
from rehearsal.settings import SettingsError, resolve

SOURCE = catalog.CATALOG["1.30"].patches[-1]
TARGET = catalog.CATALOG["1.31"].patches[-1]
AFTER = (registries.LAST_SCREAM_TEST[1] + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
PRIVATE = "registry.example.com"


def _step(record: dict, name: str) -> dict:
    return next(s for s in record["steps"] if s["name"] == name)


def test_a_private_registry_rehearses_with_pull_secret(tmp_path, suites_run):
    config = tmp_path / "config.json"
    password = "s3cret-Passw0rd"
    config.write_text(json.dumps({"auths": {PRIVATE: {"username": "robot", "password": password}}}))
    result = suites_run(
        tmp_path,
        "--istio-from",
        SOURCE,
        "--istio-to",
        TARGET,
        "--set",
        f"hub={PRIVATE}/istio",
        "--set",
        "values.global.imagePullSecrets[0]=registry-secret",
        "--sim-registry",
        f"{PRIVATE}=robot:{password}",
        "--pull-secret",
        f"registry-secret={config}",
    )
    record = result.record
    assert record["verdict"] == "upgraded", record.get("failure")
    assert result.returncode == exitcodes.UPGRADED
    secrets = _step(record, "pull secrets")
    assert secrets["outcome"] == "passed" and "registry-secret" in secrets["reason"]
    for name in ("pull check: source images", "pull check: target images"):
        check = _step(record, name)
        assert check["outcome"] == "passed" and f"{PRIVATE}/istio/pilot" in check["reason"], check
    names = [s["name"] for s in record["steps"]]
    assert names.index("pull check: source images") < names.index("install source")
    assert names.index("pull check: target images") < names.index("apply")
    # The password never reaches the run folder (the 0600 backup of Secrets aside).
    for path in result.run_dir.rglob("*"):
        readable = path.suffix in (".json", ".html", ".xml")
        if path.is_file() and "secrets" not in path.name.lower() and readable:
            assert password not in path.read_text(errors="replace"), path


def test_after_the_retirement_1_30_is_installed_from_docker_hub_and_says_why(tmp_path, suites_run):
    result = suites_run(tmp_path, "--istio-from", SOURCE, "--istio-to", TARGET, "--sim-date", AFTER)
    record = result.record
    assert record["verdict"] == "upgraded", record.get("failure")
    install = _step(record, "install source")
    assert f"from {registries.ADVISED_HUB}" in install["reason"]
    assert catalog.ISTIO_REGISTRY in install["reason"] and "retired" in install["reason"]
    check = _step(record, "pull check: source images")
    assert f"{registries.ADVISED_HUB}/pilot:{SOURCE}" in check["reason"]


def test_a_plan_hub_on_a_retired_registry_is_refused_before_anything(tmp_path, suites_run):
    result = suites_run(
        tmp_path,
        "--istio-from",
        SOURCE,
        "--istio-to",
        TARGET,
        "--sim-date",
        AFTER,
        "--set",
        f"hub={catalog.ISTIO_REGISTRY}",
    )
    assert result.returncode == exitcodes.BAD_OPTION
    assert f"hub {catalog.ISTIO_REGISTRY}" in result.stderr and "retired" in result.stderr
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_before_the_retirement_the_simulated_world_keeps_registry_istio_io():
    before = (registries.LAST_SCREAM_TEST[0] - timedelta(days=60)).strftime("%Y-%m-%d")
    settings = resolve({"istio_from": SOURCE, "istio_to": TARGET, "sim_date": before})
    assert settings.hub_choices == ()
    assert "hub=" not in " ".join(settings.install_sets(SOURCE))


def test_a_real_cluster_within_30_days_of_the_retirement_gets_the_advised_hub(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-rehearsal\n"
        "contexts: [{name: kind-rehearsal, context: {cluster: c, user: u}}]\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\nusers: [{name: u, user: {}}]\n"
    )
    soon = registries.LAST_SCREAM_TEST[0] - timedelta(days=6)
    values = {
        "cluster": "kubeconfig",
        "kubeconfig": str(kubeconfig),
        "istio_from": SOURCE,
        "istio_to": TARGET,
    }
    settings = resolve(values, now=soon)
    assert settings.install_sets(SOURCE)[-2:] == [f"hub={registries.ADVISED_HUB}", f"tag={SOURCE}"]
    assert settings.install_spec(SOURCE)["hub"] == registries.ADVISED_HUB
    assert "within 30 days" in settings.hub_notes[0]
    assert settings.chosen_hub(TARGET) is None  # 1.31 defaults to Docker Hub already
    far = registries.LAST_SCREAM_TEST[0] - timedelta(days=60)
    assert resolve(values, now=far).hub_choices == ()
    # The rollback render (the source) is judged too: a retired plan hub is refused for either version.
    try:
        resolve({**values, "sets": (f"hub={catalog.GCR_MIRROR}",)}, now=registries.LAST_SCREAM_TEST[1])
    except SettingsError as exc:
        assert f"hub {catalog.GCR_MIRROR}" in str(exc) and "\n" not in str(exc)
    else:
        raise AssertionError("a retired plan hub was accepted")


def test_the_path_and_the_plan_are_judged_before_any_cluster():
    oldest, _, newest = catalog.newest_minors(3)
    checks = [
        ({"istio_from": TARGET, "istio_to": TARGET}, "same version"),
        ({"istio_from": oldest.patches[-1], "istio_to": newest.patches[-1]}, "skips 1"),
        ({"istio_to": SOURCE, "istio_from": TARGET}, "downgrade"),
        (
            {"istio_from": SOURCE, "istio_to": TARGET, "sets": ("values.global.noSuchField=1",)},
            'unknown field "noSuchField"',
        ),
        (
            {"istio_from": SOURCE, "istio_to": TARGET, "sets": ("values.global.proxy.resources=abc",)},
            "cannot unmarshal string",
        ),
    ]
    for values, expected in checks:
        try:
            resolve(values)
        except SettingsError as exc:
            assert expected in str(exc) and "\n" not in str(exc), str(exc)
        else:
            raise AssertionError(f"{values} was accepted")


def test_sim_date_and_pull_secret_values_are_checked(tmp_path):
    for values, expected in (
        ({"sim_date": "10 December"}, "--sim-date"),
        ({"cluster": "kind", "sim_date": "2026-12-10"}, "only applies to --cluster sim"),
        ({"pull_secrets": ("no-equals",)}, "NAME=DOCKERCONFIGJSON_FILE"),
        ({"pull_secrets": (f"regcred={tmp_path / 'missing.json'}",)}, "cannot read"),
    ):
        try:
            resolve(values)
        except SettingsError as exc:
            assert expected in str(exc), str(exc)
        else:
            raise AssertionError(f"{values} was accepted")


def test_without_the_pull_secret_the_source_images_fail_before_the_install(tmp_path, suites_run):
    result = suites_run(
        tmp_path,
        "--istio-from",
        SOURCE,
        "--istio-to",
        TARGET,
        "--set",
        f"hub={PRIVATE}/istio",
        "--set",
        "values.global.imagePullSecrets[0]=registry-secret",
        "--sim-registry",
        f"{PRIVATE}=robot:pw",
    )
    record = result.record
    assert record["verdict"] == "failed"
    check = _step(record, "pull check: source images")
    assert check["outcome"] == "failed"
    assert f"image {PRIVATE}/istio/" in check["reason"] and f"(host {PRIVATE})" in check["reason"]
    assert "ImagePullBackOff" in check["reason"] and "401 Unauthorized" in check["reason"]
    assert not any(s["name"] == "install source" and s["outcome"] == "passed" for s in record["steps"])


def test_a_registry_down_for_a_scream_test_stops_the_run_at_the_pull_check_saying_so(tmp_path, suites_run):
    start, end = registries.SCREAM_TESTS[0]  # an outage, not the retirement: the plan's hub is not refused
    during = (start + (end - start) / 2).strftime("%Y-%m-%dT%H:%M")
    result = suites_run(
        tmp_path,
        "--istio-from",
        SOURCE,
        "--istio-to",
        TARGET,
        "--sim-date",
        during,
        "--set",
        f"hub={catalog.ISTIO_REGISTRY}",
    )
    record = result.record
    assert record["verdict"] == "failed"
    check = _step(record, "pull check: source images")
    assert check["outcome"] == "failed"
    assert (
        f"image {catalog.ISTIO_REGISTRY}/" in check["reason"]
        and "(host registry.istio.io)" in check["reason"]
    )
    assert "no such host" in check["reason"] and "scream test" in check["reason"]
    assert not any(s["name"] == "install source" for s in record["steps"])


def test_a_minor_newer_than_the_catalog_is_a_warning_on_a_real_cluster(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-rehearsal\n"
        "contexts: [{name: kind-rehearsal, context: {cluster: c, user: u}}]\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443'}}]\nusers: [{name: u, user: {}}]\n"
    )
    newest = catalog.newest_minors(1)[0]
    major, minor = newest.version_tuple
    newer = f"{major}.{minor + 1}.0"  # no other test names this minor: the catalog keeps its stand-in
    values = {"cluster": "kubeconfig", "kubeconfig": str(kubeconfig), "istio_from": newest.patches[-1]}
    settings = resolve({**values, "istio_to": newer}, now=registries.LAST_SCREAM_TEST[0] - timedelta(days=90))
    assert settings.istio_to == newer
    assert f"istioctl {newer} itself decides" in settings.version_notes[0]
    assert catalog.minor_of(newer).minor == newest.minor  # its facts stand in
    try:
        resolve({"istio_from": newest.patches[-1], "istio_to": newer})  # the simulator cannot emulate it
    except SettingsError as exc:
        assert newer in str(exc)
    else:
        raise AssertionError("the simulator accepted a minor it does not know")
