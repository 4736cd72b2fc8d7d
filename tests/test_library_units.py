"""Unit tests of the harness library on given inputs, without a cluster: settings, the sim provider's
registry configuration, the rollback journal and catalog lookups. Fast, so the decisions are tested here and
the end-to-end runs only prove the pieces fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from istiofacts import catalog
from rehearsal.cluster.base import ClusterError
from rehearsal.cluster.sim import SimRegistry
from rehearsal.journal import RollbackJournal
from rehearsal.settings import Settings, SettingsError, resolve


def test_defaults_are_the_newest_two_minors_of_the_catalog():
    settings = resolve({})
    assert (settings.istio_from, settings.istio_to) == catalog.default_pair()
    older, newer = catalog.newest_minors(2)
    assert settings.istio_from in older.patches and settings.istio_to == newer.patches[-1]
    assert settings.cluster == "sim" and settings.sim_registries == ()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"strategy": "yolo"}, "--strategy 'yolo' is not one of: in-place, istioctl, canary"),
        ({"rollback": "sometimes"}, "--rollback 'sometimes' is not one of"),
        ({"cluster": "kubeconfig"}, "--cluster kubeconfig needs --rehearsal-kubeconfig PATH"),
        ({"sets": ["novalue"]}, "--set novalue: expected KEY=VALUE"),
        ({"sim_time_scale": -1}, "--sim-time-scale -1: must be 0 or more"),
        ({"traffic_requests": 0}, "--traffic-requests 0: must be at least 1"),
        ({"bogus": 1}, "unknown setting(s) bogus"),
        ({"sim_registries": ["registry.invalid"]}, "a .invalid host never resolves"),
        ({"sim_registries": ["reg.example.com=robot"]}, "credentials must be USER:PASSWORD"),
        ({"sim_registries": ["https://reg.example.com"]}, "expected HOST[/PATH][=USER:PASSWORD]"),
        (
            {"cluster": "kubeconfig", "kubeconfig": "x", "sim_registries": ["reg.example.com"]},
            "--sim-registry only applies to --cluster sim",
        ),
    ],
)
def test_bad_settings_name_the_option_and_what_it_accepts(values, message):
    with pytest.raises(SettingsError) as exc:
        resolve(values)
    assert message in str(exc.value)


def test_an_unknown_version_names_the_known_ones():
    newest = catalog.known_versions()[-1]
    major, minor, _ = catalog.parse_version(newest)
    with pytest.raises(SettingsError, match=f"--istio-to: Istio {major}.{minor + 5} is not in the catalog"):
        resolve({"istio_to": f"{major}.{minor + 5}.0"})


def test_registry_passwords_never_reach_the_record():
    settings = resolve({"sim_registries": ["reg.example.com/mirror=robot:s3cret", "other.example.com"]})
    assert settings.sim_registries == ("reg.example.com/mirror=robot:s3cret", "other.example.com")
    recorded = json.dumps(settings.to_dict())
    assert "s3cret" not in recorded
    assert settings.to_dict()["sim_registries"] == ["reg.example.com/mirror=robot:***", "other.example.com"]
    assert Settings.from_dict(json.loads(recorded)).sim_registries[1] == "other.example.com"


def test_sim_registry_parsing():
    private = SimRegistry.parse("registry.example.com/team/=robot:pa:ss")
    assert (private.location, private.username, private.password) == (
        "registry.example.com/team",
        "robot",
        "pa:ss",
    )
    assert "pa:ss" not in repr(private) and private.describe() == "registry.example.com/team=robot:***"
    assert SimRegistry.parse("registry.example.com") == SimRegistry("registry.example.com")
    with pytest.raises(ClusterError, match="RFC 6761"):
        SimRegistry.parse("mirror.corp.invalid/istio")


def test_the_install_plan_drops_tags_and_adds_the_version(tmp_path: Path):
    settings = resolve({"sets": ["tag=9.9.9", "values.global.tag=9.9.9", "hub=reg.example.com/istio"]})
    version = settings.istio_to
    assert settings.install_sets(version) == ["hub=reg.example.com/istio", f"tag={version}"]
    spec = settings.install_spec(version)
    assert spec["hub"] == "reg.example.com/istio" and "tag" not in spec
    assert "tag" not in spec.get("values", {}).get("global", {})


def test_the_journal_replays_last_in_first_out_and_survives_a_reload(tmp_path: Path):
    journal = RollbackJournal(tmp_path / "journal.json")
    first = journal.push("restore istiod", "restore-objects", {"path": "a"}, "apply")
    journal.push("delete new CRDs", "delete-objects", {"path": "b"}, "apply")
    journal.mark_changed()
    assert [e.name for e in journal.pending()] == ["delete new CRDs", "restore istiod"]
    journal.mark_done(journal.pending()[0])
    reloaded = RollbackJournal.load(tmp_path / "journal.json")
    assert reloaded.changed_cluster
    assert [e.name for e in reloaded.pending()] == [first.name]
    assert not (tmp_path / "journal.tmp").exists()


def test_catalog_lookups():
    versions = catalog.known_versions()
    assert versions == sorted(versions, key=catalog.parse_version)
    newest = versions[-1]
    assert catalog.check_known(f"v{newest}") == newest
    minor = catalog.minor_of(newest)
    with pytest.raises(
        catalog.UnknownVersion, match=f"{minor.minor} has {minor.patches[0]} to {minor.patches[-1]}"
    ):
        catalog.check_known(f"{minor.minor}.999")
    older, newer = catalog.newest_minors(2)
    assert catalog.upgrade_path_problem(older.patches[-1], newer.patches[-1]) is None
    oldest = catalog.newest_minors(3)[0]
    assert "skips 1" in (catalog.upgrade_path_problem(oldest.patches[-1], newer.patches[-1]) or "")


def test_a_plan_file_feeds_the_install_plan_and_a_malformed_one_is_refused(tmp_path: Path):
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nspec:\n  values:\n    gateways:\n"
        "      istio-ingressgateway:\n        type: NodePort\n"
    )
    settings = resolve({"plan": str(plan), "sets": ["values.global.proxy.privileged=true"]})
    spec = settings.install_spec(settings.istio_to)
    assert spec["values"]["gateways"]["istio-ingressgateway"]["type"] == "NodePort"
    assert spec["values"]["global"]["proxy"]["privileged"] is True
    plan.write_text("kind: Deployment\n")
    with pytest.raises(SettingsError, match="is not an IstioOperator"):
        resolve({"plan": str(plan)})
