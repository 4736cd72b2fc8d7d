"""The known-pitfall corpus: each scenario of ``scenarios/`` seeded on a simulated cluster as the team did
(``istioctl install`` of the source, then their objects), and the harness's named checks run against it in
this process (cluster state through the API, the target and rollback renders of the emulated istioctl).

Each scenario's test fails when its pitfall's check is removed (the test asks the registry, not a copy), or
when the check stops naming the pitfall, its objects, its issue and its fix. The catalog's facts are tested
against what they were read from (istio/istio at the tags named in ``istiofacts/pitfall_facts.py``)."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kubesim.istio
from istiofacts import catalog, pitfalls
from istiofacts import pitfall_facts as facts
from kubesim import DEFAULT_K8S_VERSION, SimCluster
from kubesim.istio.istioctl import main as istioctl_main
from kubesim.istio.istioctl import write_executable
from rehearsal.cluster.base import Cluster
from rehearsal.istio.istioctl import Istioctl
from rehearsal.journal import RollbackJournal
from rehearsal.kube import Kube
from rehearsal.pitfalls import DURING, PRE, Finding, Inputs, checks_plan, checks_state, run, step
from rehearsal.pitfalls.scenario import Scenario, ScenarioError, load, load_all, resolve_version, seed
from rehearsal.run import Run, StepFailed
from rehearsal.settings import SettingsError, resolve
from rehearsal.steps import Rehearsal

SCENARIOS = [s for s in load_all() if not s.check.startswith("pending")]
APP = "docker.io/traefik/whoami:v1.10"  # any public image runs, as on kind


def _team_workload() -> list[dict[str, Any]]:
    """An injected workload of the team's, so proxies of the source version run (the rehearsal's sample apps
    play this part in a full run)."""
    labels = {"app": "web"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "web", "labels": {"istio-injection": "enabled"}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "web", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": APP}]},
                },
            },
        },
    ]


class InProcessIstioctl(Istioctl):
    """The emulator's istioctl called in this process (same arguments, same outputs, no interpreter start per
    call): the scenario tests render and install a dozen times."""

    def _run_once(self, args: tuple[str, ...], stdin: str | None) -> Any:
        argv = [str(self.path), *args, "--kubeconfig", str(self.kubeconfig)]
        out, err = io.StringIO(), io.StringIO()
        started = time.time()
        code = istioctl_main(self.version, argv[1:], out=out, err=err, stdin=io.StringIO(stdin or ""))
        return self.evidence.record_command(argv, code, out.getvalue(), err.getvalue(), started)


@contextlib.contextmanager
def seeded(scenario: Scenario, tmp_path: Path) -> Iterator[Rehearsal]:
    """The scenario's cluster, and a rehearsal context on it (as the suites build one)."""
    with SimCluster(
        "pitfall",
        k8s_version=scenario.kubernetes or DEFAULT_K8S_VERSION,
        time_scale=0,
        kubeconfig=tmp_path / "kubeconfig",
        addons=[kubesim.istio.addon],
    ) as cluster:
        assert cluster.kubeconfig_path is not None
        from kubernetes import config

        kube = Kube(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))
        bin_dir = tmp_path / "bin"
        path = cluster.kubeconfig_path
        ctl_from = InProcessIstioctl(
            scenario.source, write_executable(scenario.source, bin_dir / "from"), path
        )
        ctl_to = InProcessIstioctl(scenario.target, write_executable(scenario.target, bin_dir / "to"), path)
        seed(dataclasses.replace(scenario, objects=_team_workload() + scenario.objects), kube, ctl_from)
        sets = [v for k, v in zip(scenario.options, scenario.options[1:], strict=False) if k == "--set"]
        # The plan's --set values join after resolve: a plan value the target removed is refused with the
        # options already (rehearsal/early.py), and here the named check must see it as a plan carried
        # from the installed mesh would bring it.
        dates = [v for k, v in zip(scenario.options, scenario.options[1:], strict=False) if k == "--sim-date"]
        settings = resolve({"istio_from": scenario.source, "istio_to": scenario.target})
        settings = dataclasses.replace(settings, sets=tuple(sets), sim_date=dates[0] if dates else None)
        run_record = Run(settings, tmp_path / "reports")
        yield Rehearsal(
            settings,
            run_record,
            RollbackJournal(run_record.dir / "journal.json"),
            Cluster("sim", cluster.name, path),
            kube,
            ctl_from,
            ctl_to,
        )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_each_scenario_is_caught_by_its_named_check(scenario: Scenario, tmp_path: Path) -> None:
    with seeded(scenario, tmp_path) as ctx:
        inputs = step.gather(ctx)
    assert scenario.pitfall in PRE, f"no pre-apply check registered for {scenario.pitfall}"
    found = [f for f in run(inputs) if f.pitfall == scenario.pitfall]
    assert found, f"{scenario.name}: the {scenario.pitfall} check found nothing"
    finding = found[0]
    assert finding.objects or scenario.pitfall in ("default-flip",), finding
    assert finding.issue.startswith("https://") and finding.fix
    assert finding.to_dict()["title"] == pitfalls.get(scenario.pitfall).title
    # Without the check, the same cluster is not caught: the finding is the check's own.
    others = {k: v for k, v in PRE.items() if k != scenario.pitfall}
    assert not [f for f in run(inputs, others) if f.pitfall == scenario.pitfall]


def test_the_pre_apply_step_stops_the_upgrade_on_an_error_and_records_every_finding(tmp_path: Path) -> None:
    scenario = next(s for s in SCENARIOS if s.name == "injector-overlap")
    with seeded(scenario, tmp_path) as ctx:
        with pytest.raises(StepFailed, match="injector-overlap: IST0139"):
            step.before_apply(ctx)
    recorded = ctx.run.steps[-1]
    assert recorded.name == "known pitfalls" and recorded.outcome == "failed"
    data = next(e["data"] for e in recorded.evidence if e.get("title") == "pitfall findings")
    assert {f["pitfall"] for f in data} >= {"injector-overlap", "default-flip"}


def _pod(name: str, image: str, ns: str = "shop", **meta: Any) -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, **meta},
        "spec": {"containers": [{"name": "app", "image": APP}, {"name": "istio-proxy", "image": image}]},
    }


def _inputs(**live: Any) -> Inputs:
    source, target = catalog.default_pair()
    return Inputs(source, target, "1.33.1", live, [], [], {})


def test_after_the_restart_a_pod_left_on_the_old_proxy_is_an_error_that_rolls_back() -> None:
    source, target = catalog.default_pair()
    inputs = _inputs(
        Pod=[_pod("a", f"docker.io/istio/proxyv2:{target}"), _pod("b", f"docker.io/istio/proxyv2:{source}")]
    )
    found = run(inputs, DURING)
    assert [f.objects for f in found] == [(f"Pod shop/b runs proxy {source}",)]
    assert found[0].severity == "error" and found[0].phase == "during"
    # A pod the run does not restart (outside --restart-namespaces, a Job's) is judged apart, not here.
    inputs.apart = {"b.shop": "namespace outside the restart scope"}
    assert run(inputs, DURING) == []


def test_a_known_skew_break_is_found_by_patch_and_a_fixed_patch_is_not() -> None:
    assert facts.skew_breaks("1.29.4", "1.29.1") and not facts.skew_breaks("1.29.5", "1.29.1")
    assert facts.skew_breaks("1.30.0", "1.28.10") and not facts.skew_breaks("1.30.2", "1.28.10")
    assert not facts.skew_breaks("1.29.4", "1.29.2")


def test_gateway_api_bounds_are_those_of_the_tags() -> None:
    tls = "tlsroutes.gateway.networking.k8s.io"
    assert [b.rejects("v1.4.1") for b in facts.gateway_api_bounds("1.29.2", tls)] == [
        "above maximum version 1.4.0"
    ]
    assert [b.rejects("v1.4.1") for b in facts.gateway_api_bounds("1.29.3", tls)] == [None]
    assert [b.rejects("v1.4.1") for b in facts.gateway_api_bounds("1.30.0", tls)] == [
        "below minimum version 1.5.0"
    ]
    assert facts.gateway_api_bounds("1.29.1", tls) == []
    # No TLSRoute bundle satisfies both a 1.29.3+ and a 1.30 revision (the canary window of the reference).
    for bundle in ("v1.4.1", "v1.5.0"):
        assert any(b.rejects(bundle) for v in ("1.29.8", "1.30.0") for b in facts.gateway_api_bounds(v, tls))


def test_default_flips_are_those_between_the_two_minors() -> None:
    flips = facts.default_flips("1.29.8", "1.31.1")
    assert {m for m, _, _ in flips} == {"1.30", "1.31"}
    assert ("1.30", "pilot.env.PILOT_SIDECAR_PICK_BEST_SERVICE_NAMESPACE") in {(m, s) for m, s, _ in flips}
    assert facts.default_flips("1.31.0", "1.31.1") == []
    pinned = Inputs("1.30.5", "1.31.1", "1.33.1", {}, [], [], {"compatibilityVersion": "1.30"})
    assert checks_plan.default_flip(pinned) == []


def test_ist0139_is_the_analyzers_permutations_and_a_deactivated_injector_does_not_overlap() -> None:
    never = {"matchLabels": {"istio.io/deactivated": "never-match"}}
    enabled = {"matchExpressions": [{"key": "istio-injection", "operator": "In", "values": ["enabled"]}]}

    def cfg(name: str, selector: dict[str, Any]) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "labels": {"istio.io/rev": "default"}},
            "webhooks": [{"name": "namespace.sidecar-injector.istio.io", "namespaceSelector": selector}],
        }

    ok = _inputs(
        MutatingWebhookConfiguration=[
            cfg("istio-sidecar-injector", never),
            cfg("istio-revision-tag-default", enabled),
        ]
    )
    assert checks_state.injector_overlap(ok) == []
    bad = _inputs(
        MutatingWebhookConfiguration=[
            cfg("istio-sidecar-injector", enabled),
            cfg("istio-revision-tag-default", enabled),
        ]
    )
    assert [f.pitfall for f in checks_state.injector_overlap(bad)] == ["injector-overlap"]


def test_every_catalog_pitfall_is_simulable_with_a_scenario_or_says_why_not() -> None:
    names = {s.pitfall for s in load_all()}
    for p in pitfalls.PITFALLS:
        assert p.sources and all(u.startswith("https://") for u in p.sources), p.id
        if p.simulable:
            assert p.id in names, f"{p.id} is simulable but has no scenario"
        else:
            assert p.reason, f"{p.id} is not simulable and says no reason"
    assert len(pitfalls.PITFALLS) == 22 and len(pitfalls.BY_ID) == 22


def test_scenario_versions_are_relative_to_the_catalog_and_bad_files_are_named(tmp_path: Path) -> None:
    newest = catalog.newest_minors(2)
    assert resolve_version("newest") == newest[1].patches[-1]
    assert resolve_version("newest-minus-1") == newest[0].patches[-1]
    bad = tmp_path / "bad.yaml"
    bad.write_text("pitfall: no-such-pitfall\nsource: newest\ntarget: newest\n")
    with pytest.raises(ScenarioError, match="unknown pitfall"):
        load(bad)


def test_a_finding_says_the_pitfall_the_objects_the_issue_and_the_fix() -> None:
    line = Finding("tag-drift", "error", "m", ("Namespace shop",)).line()
    assert line.startswith("tag-drift: m [Namespace shop] (fix: ") and "issues/47423" in line


def test_the_corpus_command_rehearses_a_scenario_by_kubeconfig_and_reports_the_matrix(tmp_path: Path) -> None:
    """The one end-to-end run of this corpus: an ordinary rehearsal (``--cluster kubeconfig``) on a cluster
    seeded as the team left it, stopped before the apply with the named finding, in the report's matrix."""
    import json
    import subprocess
    import sys

    out = tmp_path / "pitfalls"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rehearsal",
            "pitfalls",
            "--only",
            "tag-drift",
            "-j",
            "1",
            "--report-dir",
            str(out),
        ],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "pitfalls.json").read_text())
    (row,) = summary["scenarios"]
    assert row["caught"] == "before apply" and row["verdict"] == "failed", row
    assert "known pitfalls: tag-drift" in row["cause"] and "issues/47423" in row["cause"]
    assert any(f["objects"] == ["Namespace shop (istio.io/rev=canary)"] for f in row["findings"])
    assert {p["pitfall"] for p in summary["real_cluster_only"]} >= {"ambient-order", "cni-node-break"}
    page = (out / "pitfalls.html").read_text()
    assert "tag-drift" in page and "Only a real cluster reproduces these" in page


def test_bad_corpus_options_are_one_line_and_status_4(capsys: pytest.CaptureFixture[str]) -> None:
    from rehearsal.pitfalls import corpus

    assert corpus.cli(["-j", "x"]) == 4
    assert corpus.cli(["--only", "no-such-scenario"]) == 4
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: -j 'x': not a whole number of scenarios at a time, e.g. -j 2",
        "error: --only: no scenario named no-such-scenario",
    ]


def test_precheck_minimum_kubernetes_is_per_patch() -> None:
    assert [facts.precheck_min_k8s(v) for v in ("1.25.0", "1.25.1", "1.28.1", "1.28.2")] == [
        "1.28",
        "1.29",
        "1.29",
        "1.30",
    ]
    on_130 = Inputs("1.28.1", "1.28.2", "1.30.9", {}, [], [], {})  # 1.28 supports 1.30; 1.28.2 needs 1.30
    assert checks_plan.k8s_range(on_130) == []
    on_129 = Inputs("1.28.1", "1.28.2", "1.29.9", {}, [], [], {})
    first = checks_plan.k8s_range(on_129)[0]
    assert first.severity == "error" and "minimum 1.30 at 1.28.2" in first.message


def test_a_removed_value_in_the_options_is_refused_before_any_cluster() -> None:
    scenario = next(s for s in SCENARIOS if s.name == "unknown-values")
    sets = [v for k, v in zip(scenario.options, scenario.options[1:], strict=False) if k == "--set"]
    with pytest.raises(SettingsError, match="zvpn"):
        resolve({"istio_from": scenario.source, "istio_to": scenario.target, "sets": sets})
