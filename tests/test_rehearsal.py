"""The rehearsal as a user runs it: the suites on the simulator, at default settings (the shared end-to-end
scenarios of tests/runs.py) and with each variation a user may bring (run in process, ``suites_run``)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from istiofacts import catalog
from istiofacts.catalog import default_hub
from tests import runs

ROOT = Path(__file__).resolve().parent.parent
# Versions come from the catalog: the default pair (the newest patches of the two newest minors), and the
# newest patch of each of the four newest minors (oldest first) for other pairs.
SOURCE, TARGET = catalog.default_pair()
NEWEST = [m.patches[-1] for m in catalog.newest_minors(4)]


def newest(minor: str) -> str:
    return catalog.CATALOG[minor].patches[-1]


PRODUCTION = [
    "profile=default",
    "components.cni.enabled=true",
    "values.cni.enabled=true",
    "values.cni.chained=false",
    "hub=registry.example.com/istio",
    "values.global.imagePullSecrets[0]=registry-secret",
    "components.pilot.k8s.securityContext.runAsUser=1337",
    "components.pilot.k8s.securityContext.runAsGroup=1337",
    "components.pilot.k8s.securityContext.runAsNonRoot=true",
    "values.gateways.istio-ingressgateway.type=ClusterIP",
]
# The private hub of PRODUCTION exists in the simulated world only because the user says so, as a mirror; the
# sample apps' images come from a mirror in it too, as they must where clusters reach no public registry.
PRODUCTION_WORLD = [
    "--sim-registry",
    "registry.example.com",
    "--apps-registry",
    "registry.example.com/mirror",
]


def sets(values: list[str]) -> list[str]:
    return [arg for v in values for arg in ("--set", v)]


def step(data: dict, name: str) -> dict:
    return next(s for s in data["steps"] if s["name"] == name)


@pytest.mark.parametrize(
    "source, target, strategy",
    [
        (SOURCE, TARGET, "in-place"),
        (NEWEST[1], NEWEST[2], "istioctl"),
    ],
)
def test_happy_path_with_production_settings(tmp_path, source, target, strategy, suites_run):
    result = suites_run(
        tmp_path,
        "--istio-from",
        source,
        "--istio-to",
        target,
        "--strategy",
        strategy,
        *sets(PRODUCTION),
        *PRODUCTION_WORLD,
    )
    data = result.data
    assert result.returncode == 0, result.stdout[-3000:]
    assert data["verdict"] == "upgraded" and (data["from"], data["to"], data["strategy"]) == (
        source,
        target,
        strategy,
    )
    assert data["versions"]["before"]["control_plane"] == [source]
    assert data["versions"]["after"]["control_plane"] == [target]
    assert set(data["versions"]["after"]["data_plane"].values()) == {target}
    assert set(data["versions"]["after"]["pod_specs"].values()) == {target}
    assert " failed" not in result.stdout and " error" not in result.stdout
    assert "(images from registry.example.com/mirror)" in step(data, "deploy sample apps")["reason"]
    traffic = [e["data"] for s in data["steps"] for e in s["evidence"] if e.get("title") == "traffic"]
    assert traffic and traffic[0]["codes"] == {"200": 10}
    if (
        strategy == "in-place"
        and catalog.minor_of(source).pdb_always
        and not catalog.minor_of(target).pdb_always
    ):
        # 1.28 stopped rendering single-replica PDBs: the in-place apply prunes them, as istioctl install
        # would.
        pruned = next(e["data"] for e in step(data, "apply")["evidence"] if e.get("title") == "pruned")
        assert "PodDisruptionBudget/istio-system/istiod" in pruned
    inspect = step(data, "inspect manifest")["reason"]
    assert "registry.example.com/istio:" + target in inspect and "CNI DaemonSet present" in inspect
    assert "pull secrets ['registry-secret']" in inspect
    assert "gateway Service ClusterIP" in inspect
    run_dir = tmp_path / "reports" / "latest"
    assert (run_dir / "report.html").exists() and (run_dir / "junit.xml").exists()
    assert stat.S_IMODE((run_dir / "artifacts" / "backup" / "secrets.yaml").stat().st_mode) == 0o600


def test_report_holds_evidence_and_never_secret_data():
    result = runs.scenario("upgraded")
    data = result.record
    assert result.returncode == 0, result.stdout[-3000:]
    run_dir = result.run_dir
    secrets = yaml.safe_load_all((run_dir / "artifacts" / "backup" / "secrets.yaml").read_text())
    values = [v for s in secrets if s for v in (s.get("data") or {}).values() if v]
    assert values, "the backup should hold istiod's CA secret"
    kubeconfig = yaml.safe_load((run_dir / "artifacts" / "kubeconfig").read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    for name in ("report.html", "rehearsal.json", "junit.xml"):
        text = (run_dir / name).read_text()
        assert token not in text
        assert not any(v in text for v in values)
    html = (run_dir / "report.html").read_text()
    assert 'Verdict: <span id="verdict-value">upgraded</span>' in html and "istioctl" in html
    assert all(s["ended"] >= s["started"] for s in data["steps"])
    commands = [e for s in data["steps"] for e in s["evidence"] if e["type"] == "command"]
    assert any(c["argv"][1:3] == ["x", "precheck"] and c["exit_code"] == 0 for c in commands)


def test_unpullable_target_image_rolls_back():
    result = runs.scenario("rolled-back")  # the target's pilot image cannot be pulled
    data = result.record
    assert result.returncode != 0
    assert data["verdict"] == "rolled-back", data.get("failure")
    assert "ImagePullBackOff" in data["failure"]
    assert data["rollback"]["ran"] and data["rollback"]["verified"]
    assert data["rollback"]["verification"]["versions"]["control_plane"] == [SOURCE]
    assert step(data, "rollback: verify")["outcome"] == "passed"


def test_unknown_value_in_the_plan_is_refused_before_any_cluster(tmp_path, suites_run):
    # Removed in 1.24: the source (1.23) accepts it, the target rejects it: one line, before anything.
    result = suites_run(
        tmp_path,
        "--istio-from",
        newest("1.23"),
        "--istio-to",
        newest("1.24"),
        "--k8s-version",
        "1.30.4",
        "--set",
        "values.global.autoscalingv2API=true",
    )
    assert result.returncode == 4  # exitcodes.BAD_OPTION: nothing was touched
    assert 'unknown field "autoscalingv2API" in istio.operator.v1alpha1.GlobalConfig' in result.stderr
    assert "global.autoscalingv2API removed in Istio 1.24" in result.stderr
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_api_failing_during_apply_rolls_back(tmp_path, suites_run):
    faults = tmp_path / "faults.yaml"
    # The dry run patches istiod's Deployment first (let through), then the apply: that one keeps failing for
    # longer than its retries may take (5 s of capped backoff from 0.2 s allow at most 5 attempts).
    faults.write_text(
        "faults:\n  - type: api-error\n    verb: patch\n    resource: deployments\n"
        "    namespace: istio-system\n    name: istiod\n    code: 500\n    skip: 1\n    times: 10\n"
    )
    result = suites_run(tmp_path, "--sim-faults", str(faults), "--step-timeout", "5")
    data = result.data
    assert data["verdict"] == "rolled-back", data.get("failure")
    assert "Internal error occurred: rehearsal-sim: injected fault" in step(data, "apply")["reason"]
    retries = [e for e in step(data, "apply")["evidence"] if e.get("title") == "retry"]
    assert retries and {e["data"]["status"] for e in retries} == {500}
    assert data["rollback"]["verified"]


def test_istiod_never_ready_rolls_back(tmp_path, suites_run):
    faults = tmp_path / "faults.yaml"
    faults.write_text(
        f"faults:\n  - type: readiness\n    image: {default_hub(TARGET)}/pilot:{TARGET}\n    never: true\n"
    )
    result = suites_run(tmp_path, "--sim-faults", str(faults), "--step-timeout", "5")
    data = result.data
    assert data["verdict"] == "rolled-back", data.get("failure")
    assert step(data, "restart control plane")["outcome"] == "failed"
    assert data["rollback"]["verification"]["versions"]["control_plane"] == [SOURCE]


def test_traffic_failing_after_the_upgrade_rolls_back(tmp_path, suites_run):
    # Every step succeeds, but the upgraded sidecars reset inbound requests: only the traffic check sees it.
    faults = tmp_path / "faults.yaml"
    faults.write_text(f"faults:\n  - type: proxy-reject\n    image: {default_hub(TARGET)}/proxyv2:{TARGET}\n")
    result = suites_run(tmp_path, "--sim-faults", str(faults))
    data = result.data
    assert result.returncode != 0
    assert data["verdict"] == "rolled-back", data.get("failure")
    assert "test_traffic_flows_through_the_ingress_from_upgraded_proxies" in data["failure"]
    assert all(
        s["outcome"] in ("passed", "not-needed")
        for s in data["steps"]
        if not s["name"].startswith("rollback")
    )
    assert data["rollback"]["verified"]
    assert data["rollback"]["verification"]["traffic"]["codes"] == {"200": 10}


@pytest.mark.parametrize(
    "args, message",
    [
        # Each setting's checks are unit-tested (test_library_units.py); these prove the command line's path.
        (["--strategy", "yolo"], "--strategy 'yolo' is not one of: in-place, istioctl"),
        (["--set", "novalue"], "--set novalue: expected KEY=VALUE"),
    ],
)
def test_bad_options_are_usage_errors_and_touch_nothing(tmp_path, args, message, suites_run):
    result = suites_run(tmp_path, *args)
    data = result.data
    assert result.returncode == 4
    assert message in result.stderr
    assert not data


def test_a_mistyped_registry_fails_the_rehearsal_with_err_image_pull(tmp_path, suites_run):
    # The user's registry exists, but the plan names a host that does not: pulls fail as on any node.
    result = suites_run(
        tmp_path,
        "--apps-registry",
        "registry.exmaple.com/mirror",
        "--sim-registry",
        "registry.example.com",
        "--step-timeout",
        "5",
    )
    data = result.data
    assert result.returncode != 0 and data["verdict"] == "failed"
    reason = step(data, "deploy sample apps")["reason"]
    assert "ErrImagePull" in reason or "ImagePullBackOff" in reason, reason
    assert "lookup registry.exmaple.com" in reason and "no such host" in reason


def test_with_registry_rewrites_images_keeping_their_path():
    from rehearsal.kube import with_registry

    docs = [
        {
            "kind": "Deployment",
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "a", "image": "docker.io/mendhak/http-https-echo:37"},
                            {"name": "b", "image": "busybox:1.36"},
                        ]
                    }
                }
            },
        }
    ]
    images = [
        c["image"]
        for c in with_registry(docs, "reg.example.com/mirror/")[0]["spec"]["template"]["spec"]["containers"]
    ]
    assert images == [
        "reg.example.com/mirror/mendhak/http-https-echo:37",
        "reg.example.com/mirror/busybox:1.36",
    ]
    assert with_registry(docs, None) is docs


def test_a_killed_run_is_rolled_back_from_its_folder(tmp_path):
    from tests import holds

    with holds.cluster(tmp_path) as sim:
        # istiod's Deployment is patched by the source install, then by the dry run, then by the apply: the
        # server holds the third until the run has been killed, so the kill lands mid-apply on every machine.
        held = holds.HeldRequest(sim, "patch", "deployments", "istiod", nth=3)
        run = holds.start_rehearsal(tmp_path, sim)
        try:
            held.wait_reached()
            run.kill()
            run.wait(timeout=60)
        finally:
            held.release()
            if run.poll() is None:
                run.kill()
        folder = holds.run_dir(tmp_path)
        assert json.loads((folder / "journal.json").read_text())["changed_cluster"]
        replay = subprocess.run(
            [sys.executable, "-m", "rehearsal", "rollback", str(folder)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert f"{folder.name}: rolled-back" in replay.stdout
        record = holds.record(folder)
        assert record["verdict"] == "rolled-back"
        assert record["rollback"]["verification"]["versions"]["control_plane"] == [holds.SOURCE]
        # The cleanup ran too: the sample apps and their namespace are gone, and the lease is free.
        namespaces = {n.metadata.name for n in sim_core(sim).list_namespace().items}
        assert "rehearsal-apps" not in namespaces


def sim_core(sim):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(sim.kubeconfig_path)))


def test_rollback_always_rehearses_the_rollback_of_a_good_upgrade(tmp_path, suites_run):
    result = suites_run(tmp_path, "--rollback", "always")
    data = result.data
    assert result.returncode == 0, result.stdout[-2000:]
    assert data["verdict"] == "upgraded"
    assert data["rollback"]["ran"] and data["rollback"]["verified"]
    assert data["versions"]["after"]["control_plane"] == [TARGET]
    assert data["rollback"]["verification"]["versions"]["control_plane"] == [SOURCE]


def test_rollback_never_leaves_a_failed_upgrade_in_place(tmp_path, suites_run):
    faults = tmp_path / "faults.yaml"
    faults.write_text(f"faults:\n  - type: proxy-reject\n    image: {default_hub(TARGET)}/proxyv2:{TARGET}\n")
    result = suites_run(tmp_path, "--sim-faults", str(faults), "--rollback", "never")
    data = result.data
    assert result.returncode != 0
    assert data["verdict"] == "failed" and data["rollback"]["ran"] is False
    assert "--rollback never" in data["rollback"]["reason"]
