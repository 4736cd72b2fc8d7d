"""The harness's checks against what the REAL tools give, not against the simulator.

Manifests here are shaped as Istio's charts render them (pull secrets on the ServiceAccounts, the version's
own default hub), and istioctl's outputs as its sources print them (precheck:
``istioctl/pkg/precheck/precheck.go`` and ``pkg/config/analysis/msg/messages.yaml``; ``version -o json``:
``pkg/version``; verify-install's flags: ``operator/cmd/mesh/verify.go``). They are written by hand from those
sources and played by a fake istioctl, so a check that only agrees with the emulator fails here.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from istiofacts import catalog
from istiofacts.catalog import CATALOG, default_hub
from rehearsal.istio.istioctl import Istioctl
from rehearsal.journal import RollbackJournal
from rehearsal.run import Run, StepFailed
from rehearsal.settings import SettingsError, resolve
from rehearsal.steps import Rehearsal, upgrade, validate

SOURCE, TARGET = catalog.default_pair()

# A fake istioctl: logs its arguments, then prints what the scenario file says for the first matching command.
FAKE = """#!{python}
import json, sys
from pathlib import Path
here = Path(__file__).parent
args = sys.argv[1:]
with open(here / "argv.log", "a") as log:
    log.write(json.dumps(args) + "\\n")
for case in json.loads((here / "scenario.json").read_text()):
    if args[: len(case["when"])] == case["when"]:
        if case.get("reject_flag") and case["reject_flag"] in args:
            sys.stderr.write("Error: unknown flag: " + case["reject_flag"] + "\\n")
            sys.exit(64)
        sys.stdout.write(case.get("stdout", ""))
        sys.stderr.write(case.get("stderr", ""))
        sys.exit(case.get("exit", 0))
sys.stderr.write("Error: unknown command\\n")
sys.exit(64)
"""


def fake_istioctl(tmp_path: Path, version: str, scenario: list[dict[str, Any]]) -> Istioctl:
    folder = tmp_path / f"istioctl-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.json").write_text(json.dumps(scenario))
    path = folder / "istioctl"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(0o755)
    return Istioctl(version, path)


def argv_log(istioctl: Istioctl) -> list[list[str]]:
    log = istioctl.path.parent / "argv.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


class FakeKube:
    """Serves every kind (the served-kinds check passes); nothing else is needed by these checks."""

    def resource(self, api_version: str, kind: str) -> object:
        return object()


class FakeCluster:
    def server_version(self) -> str:
        return "1.33.1"


class Context(Rehearsal):
    """A rehearsal context whose cluster objects are given, shaped as a real API server returns them."""

    cluster_objects: dict[str, list[dict[str, Any]]]

    def objects(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            o
            for o in self.cluster_objects.get(kind, [])
            if namespace is None or o["metadata"].get("namespace") == namespace
        ]


def context(
    tmp_path: Path,
    sets: list[str],
    source: Istioctl | None = None,
    target: Istioctl | None = None,
    objects: dict[str, list[dict[str, Any]]] | None = None,
) -> Context:
    settings = resolve({"istio_from": SOURCE, "istio_to": TARGET, "sets": tuple(sets)})
    run = Run(settings, tmp_path / "reports")
    ctx = Context(
        settings,
        run,
        RollbackJournal(run.dir),
        FakeCluster(),  # type: ignore[arg-type]
        FakeKube(),  # type: ignore[arg-type]
        source or fake_istioctl(tmp_path, SOURCE, []),
        target or fake_istioctl(tmp_path, TARGET, []),
    )
    ctx.cluster_objects = objects or {}
    return ctx


# -- manifests as Istio's charts render them -----------------------------------------------------------------
def chart_manifest(version: str, hub: str, pull_secrets: list[str], cni: bool) -> list[dict[str, Any]]:
    """What ``istioctl manifest generate`` gives for these settings, written from the chart templates: images
    ``<hub>/<name>:<version>``; ``global.imagePullSecrets`` on every ServiceAccount (istio-discovery,
    istio-ingress, istio-cni serviceaccount.yaml, base reader-serviceaccount.yaml) and on no pod spec."""
    secrets = {"imagePullSecrets": [{"name": s} for s in pull_secrets]} if pull_secrets else {}

    def account(name: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": "istio-system"},
            **secrets,
        }

    def workload(kind: str, name: str, account_name: str, container: str, image: str) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": "istio-system"},
            "spec": {
                "template": {
                    "spec": {
                        "serviceAccountName": account_name,
                        "containers": [{"name": container, "image": f"{hub}/{image}:{version}"}],
                    }
                }
            },
        }

    docs = [
        account("istio-reader-service-account"),
        account("istiod"),
        account("istio-ingressgateway-service-account"),
        workload("Deployment", "istiod", "istiod", "discovery", "pilot"),
        workload(
            "Deployment",
            "istio-ingressgateway",
            "istio-ingressgateway-service-account",
            "istio-proxy",
            "proxyv2",
        ),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"type": "LoadBalancer"},
        },
    ]
    if cni:
        docs += [
            account("istio-cni"),
            workload("DaemonSet", "istio-cni-node", "istio-cni", "install-cni", "install-cni"),
        ]
    return docs


def test_inspect_expects_the_targets_own_default_hub_and_pull_secrets_on_service_accounts(tmp_path):
    ctx = context(tmp_path, ["values.global.imagePullSecrets[0]=regcred", "components.cni.enabled=true"])
    upgrade.inspect(ctx, chart_manifest(TARGET, default_hub(TARGET), ["regcred"], cni=True))
    step = ctx.run.steps[-1]
    assert step.outcome == "passed"
    assert f"at {default_hub(TARGET)}:{TARGET}" in step.reason


@pytest.mark.parametrize("minor", ["1.29", "1.30", "1.31"])
def test_inspect_rejects_another_hub_than_the_versions_default(tmp_path, minor):
    version = CATALOG[minor].patches[-1]
    other = "registry.istio.io/release" if default_hub(version) == "docker.io/istio" else "docker.io/istio"
    ctx = context(tmp_path, [])
    # An upgrade to that minor: from the newest patch of the minor before it.
    minors = sorted(CATALOG, key=lambda name: tuple(int(part) for part in name.split(".")))
    previous = CATALOG[minors[minors.index(minor) - 1]].patches[-1]
    ctx.settings = resolve({"istio_from": previous, "istio_to": version, "sets": ()})
    with pytest.raises(StepFailed, match=f"not {default_hub(version)}/...:{version}"):
        upgrade.inspect(ctx, chart_manifest(version, other, [], cni=False))


def test_inspect_names_the_service_account_that_lacks_the_pull_secret(tmp_path):
    ctx = context(tmp_path, ["values.global.imagePullSecrets[0]=regcred"])
    docs = chart_manifest(TARGET, default_hub(TARGET), ["regcred"], cni=False)
    istiod = next(d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "istiod")
    del istiod["imagePullSecrets"]
    with pytest.raises(
        StepFailed, match=r"ServiceAccount istiod \(used by Deployment/istiod\) lacks imagePullSecrets"
    ):
        upgrade.inspect(ctx, docs)


def test_inspect_says_only_components_cni_enabled_renders_the_daemonset(tmp_path):
    ctx = context(tmp_path, ["values.cni.enabled=true"])
    with pytest.raises(
        StepFailed, match="in every Istio version only components.cni.enabled=true renders it"
    ):
        upgrade.inspect(ctx, chart_manifest(TARGET, default_hub(TARGET), [], cni=False))


# -- precheck as istioctl prints it --------------------------------------------------------------------------
CLEAN = {
    "when": ["x", "precheck"],
    "stdout": "",
    "stderr": "\u2714 No issues found when checking the cluster. Istio is safe to install or upgrade!\n"
    "  To get started, check out https://istio.io/latest/docs/setup/getting-started/.\n",
}
ISSUES = {
    "when": ["x", "precheck"],
    "stdout": 'Error [IST0142] (Cluster) The Kubernetes Version "v1.29.4" is lower than the minimum version: '
    "1.32\n"
    "Warning [IST0172] (CustomResourceDefinition httproutes.gateway.networking.k8s.io) The Gateway API CRD "
    "version v1beta1 is lower than the minimum version: v1\n",
    "stderr": "Error: Issues found when checking the cluster. Istio may not be safe to install or upgrade.\n"
    "See https://istio.io/latest/docs/reference/config/analysis for more information about causes and "
    "resolutions.\n",
    "exit": 1,
}


def test_precheck_runs_from_version_with_the_source_minor_and_passes_on_a_clean_cluster(tmp_path):
    target = fake_istioctl(tmp_path, TARGET, [CLEAN])
    ctx = context(tmp_path, [], target=target)
    upgrade.precheck(ctx)
    assert argv_log(target)[0][:4] == ["x", "precheck", "--from-version", catalog.minor_name(SOURCE)]
    assert ctx.run.steps[-1].outcome == "passed"


def test_precheck_fails_with_istioctls_own_messages(tmp_path):
    target = fake_istioctl(tmp_path, TARGET, [ISSUES])
    ctx = context(tmp_path, [], target=target)
    with pytest.raises(StepFailed) as exc:
        upgrade.precheck(ctx)
    assert 'Error [IST0142] (Cluster) The Kubernetes Version "v1.29.4"' in str(exc.value)


def test_precheck_rejects_a_value_of_the_wrong_type_before_istioctl_would(tmp_path):
    bad = ("values.global.proxy.resources=abc",)
    # The options are refused first (rehearsal/early.py); the precheck still judges what reaches it.
    with pytest.raises(SettingsError, match="values.global.proxy.resources|cannot unmarshal string"):
        resolve({"istio_from": SOURCE, "istio_to": TARGET, "sets": bad})
    ctx = context(tmp_path, [], target=fake_istioctl(tmp_path, TARGET, [CLEAN]))
    ctx.settings = dataclasses.replace(ctx.settings, sets=bad)
    with pytest.raises(StepFailed, match="cannot unmarshal string into Go value of type map"):
        upgrade.precheck(ctx)


# -- verify-install (<= 1.23) takes no --set -----------------------------------------------------------------
def test_verify_install_gets_the_plan_as_a_file_never_set(tmp_path):
    version = CATALOG["1.23"].patches[-1]
    verified = {
        "when": ["verify-install"],
        "reject_flag": "--set",
        "stdout": "\u2714 Deployment: istiod.istio-system checked successfully\n"
        "\u2714 Istio is installed and verified successfully\n",
    }
    istioctl = fake_istioctl(tmp_path, version, [verified])
    ctx = context(tmp_path, ["values.global.imagePullSecrets[0]=regcred"])
    how, findings = validate.installation_findings(ctx, istioctl)
    assert findings == [] and "verify-install -f" in how
    args = argv_log(istioctl)[0]
    assert "--set" not in args and args[:2] == ["verify-install", "-f"]
    plan = yaml.safe_load(Path(args[2]).read_text())
    assert plan["kind"] == "IstioOperator" and plan["spec"]["values"]["global"]["imagePullSecrets"] == [
        "regcred"
    ]


# -- which proxy answered: the echo app's hostname joined with the pod spec and istioctl's view --------------
def version_istioctl(tmp_path: Path, proxies: dict[str, str]) -> Istioctl:
    """A target istioctl whose ``version -o json`` (shaped as pkg/version prints it) reports istiod at the
    target and these proxies (``name.namespace``: version)."""
    version_json = {
        "clientVersion": {
            "version": TARGET,
            "revision": "x",
            "golang_version": "go",
            "status": "Clean",
            "tag": TARGET,
        },
        "meshVersion": [{"Component": "pilot", "Revision": "default", "Info": {"version": TARGET}}],
        "dataPlaneVersion": [
            {"ID": proxy, "IstioVersion": version, "Type": "sidecar"} for proxy, version in proxies.items()
        ],
    }
    return fake_istioctl(
        tmp_path, TARGET, [{"when": ["version", "-o", "json"], "stdout": json.dumps(version_json)}]
    )


def echo_pod(name: str, tag: str, native: bool) -> dict[str, Any]:
    """An echo pod of the sample apps with its proxy at ``tag``, injected as a sidecar container or (1.27+ on
    Kubernetes 1.33+) as a restartable init container."""
    proxy = {"name": "istio-proxy", "image": f"{default_hub(TARGET)}/proxyv2:{tag}"}
    spec: dict[str, Any] = {"containers": [{"name": "echo", "image": "docker.io/mendhak/http-https-echo:37"}]}
    if native:
        spec["initContainers"] = [dict(proxy, restartPolicy="Always")]
    else:
        spec["containers"].append(proxy)
    return {"metadata": {"name": name, "namespace": "rehearsal-apps"}, "spec": spec}


def test_answering_proxies_join_pod_specs_and_istioctls_view(tmp_path):
    target = version_istioctl(
        tmp_path,
        {"echo-7d4f8c9b6-abcde.rehearsal-apps": TARGET, "echo-7d4f8c9b6-fghij.rehearsal-apps": SOURCE},
    )
    ctx = context(
        tmp_path,
        [],
        target=target,
        objects={
            "Pod": [
                echo_pod("echo-7d4f8c9b6-abcde", TARGET, True),
                echo_pod("echo-7d4f8c9b6-fghij", SOURCE, False),
            ]
        },
    )
    seen = validate.answering_proxies(ctx, target, {"echo-7d4f8c9b6-abcde": 3, "echo-7d4f8c9b6-fghij": 2})
    assert seen["echo-7d4f8c9b6-abcde"] == {
        "requests": 3,
        "pod_spec": TARGET,
        "istioctl": TARGET,
        "gone": False,
    }
    assert seen["echo-7d4f8c9b6-fghij"] == {
        "requests": 2,
        "pod_spec": SOURCE,
        "istioctl": SOURCE,
        "gone": False,
    }


def test_a_proxy_whose_pod_is_gone_is_leaving_not_skew_and_not_part_of_the_mesh_after(tmp_path):
    # istiod lists a proxy until it sees the connection close, which may come after the pod is gone.
    target = version_istioctl(
        tmp_path,
        {"echo-7d4f8c9b6-new12.rehearsal-apps": TARGET, "echo-5c6b7a8d9-old34.rehearsal-apps": SOURCE},
    )
    ctx = context(
        tmp_path, [], target=target, objects={"Pod": [echo_pod("echo-7d4f8c9b6-new12", TARGET, False)]}
    )
    observed, findings = validate.version_findings(ctx, target, TARGET)
    assert findings == []
    assert observed["leaving"] == {"echo-5c6b7a8d9-old34.rehearsal-apps": SOURCE}
    after = validate.versions_after(ctx, target)
    assert after == {
        "control_plane": [TARGET],
        "data_plane": {"echo-7d4f8c9b6-new12.rehearsal-apps": TARGET},
        "pod_specs": {"echo-7d4f8c9b6-new12.rehearsal-apps": TARGET},
        "out_of_scope": {},
        "warnings": [],
    }


def test_a_patch_newer_than_the_catalog_is_a_warning_on_real_clusters_and_refused_on_the_simulator(tmp_path):
    from rehearsal.settings import SettingsError

    kubeconfig = tmp_path / "kubeconfig"
    # A kind cluster's context: the allow-list lets the harness use it.
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: kind-rehearsal\n"
        "contexts: [{name: kind-rehearsal, context: {cluster: kind-rehearsal, user: kind-rehearsal}}]\n"
        "clusters: [{name: kind-rehearsal, cluster: {server: 'https://127.0.0.1:6443'}}]\n"
        "users: [{name: kind-rehearsal, user: {token: x}}]\n"
    )
    newer = f"{catalog.minor_name(TARGET)}.{int(TARGET.rsplit('.', 1)[1]) + 7}"
    real = resolve({"cluster": "kubeconfig", "kubeconfig": str(kubeconfig), "istio_to": newer})
    assert real.istio_to == newer
    assert real.version_notes and f"istioctl {newer} itself decides" in real.version_notes[0]
    with pytest.raises(SettingsError, match=f"Istio {newer} is not a known release"):
        resolve({"istio_to": newer})
    ctx = context(tmp_path, [], target=fake_istioctl(tmp_path, newer, [CLEAN]))
    ctx.settings = real
    upgrade.precheck(ctx)
    assert any(newer in line and line.startswith("warning:") for line in ctx.run.steps[-1].reason.split("; "))
