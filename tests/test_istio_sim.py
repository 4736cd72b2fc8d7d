"""Istio on the simulated cluster, driven through the istioctl emulator of each version."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest
import requests
import yaml

import kubesim.istio
from istiofacts import catalog
from istiofacts.catalog import default_hub, minor_of
from kubesim import SimCluster
from rehearsal import waits
from rehearsal.istio.istioctl import IstioctlFailed
from rehearsal.kube import Kube, load_manifests

from .test_sim_kubectl import ROOT


def newest(minor: str) -> str:
    return catalog.CATALOG[minor].patches[-1]


# Minors chosen for what changed in them (verify-install up to 1.23, the values ConfigMap from 1.26, native
# sidecars from 1.27, the newest release); patches from the catalog.
OLD, MIDDLE, NEWEST = newest("1.23"), newest("1.26"), catalog.default_pair()[1]
V127, V128 = newest("1.27"), newest("1.28")


def answering_pod(response: requests.Response) -> str:
    """The pod that answered, as mendhak/http-https-echo reports it (os.hostname(): the pod's name)."""
    return str(response.json()["os"]["hostname"])


def proxy_tag_of(cluster: SimCluster, namespace: str, pod_name: str) -> str:
    pod = cluster.store.get(("", "pods"), namespace, pod_name)
    assert pod is not None, f"pod {namespace}/{pod_name} is gone"
    spec = pod["spec"]
    image = next(
        c["image"]
        for c in spec.get("containers", []) + spec.get("initContainers", [])
        if c["name"] == "istio-proxy"
    )
    return str(image.rsplit(":", 1)[-1].split("-")[0])


def deploy_apps(cluster: SimCluster) -> Kube:
    kube = Kube(cluster.api_client())
    docs = load_manifests(ROOT / "sample_apps", ROOT / "sample_apps" / "mesh")
    kube.apply(docs)
    for doc in docs:
        if doc["kind"] == "Deployment":
            kube.wait_rollout("Deployment", doc["metadata"]["name"], doc["metadata"]["namespace"], 60)
    return kube


def restart(kube: Kube, name: str, namespace: str) -> None:
    kube.resource("apps/v1", "Deployment").patch(
        name=name,
        namespace=namespace,
        content_type="application/strategic-merge-patch+json",
        body={
            "spec": {
                "template": {
                    "metadata": {
                        "annotations": {
                            "kubectl.kubernetes.io/restartedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ")
                        }
                    }
                }
            }
        },
    )
    kube.wait_rollout("Deployment", name, namespace, 60)


@pytest.mark.parametrize("version", [OLD, MIDDLE, NEWEST])
def test_version_json_has_the_real_keys_and_values_from_the_cluster(make_istioctl, sim_cluster, version):
    istioctl = make_istioctl(version)
    before = istioctl.run("version", "-o", "json")
    assert json.loads(before.stdout) == {"clientVersion": json.loads(before.stdout)["clientVersion"]}
    assert (
        before.stderr.strip()
        == 'Istio is not present in the cluster: no running Istio pods in "istio-system"'
    )
    assert set(json.loads(before.stdout)["clientVersion"]) == {
        "version",
        "revision",
        "golang_version",
        "status",
        "tag",
    }
    istioctl.install()
    info = istioctl.version_info()
    assert set(info) == {"clientVersion", "meshVersion", "dataPlaneVersion"}
    assert info["meshVersion"][0]["Component"] == "pilot" and info["meshVersion"][0]["Revision"] == "default"
    assert set(info["meshVersion"][0]) == {"Component", "Revision", "Info"}
    assert info["meshVersion"][0]["Info"]["version"] == version
    gateway = info["dataPlaneVersion"][0]
    assert set(gateway) == {"ID", "IstioVersion", "Type"}
    assert gateway["ID"].startswith("istio-ingressgateway-") and gateway["ID"].endswith(".istio-system")
    assert (gateway["IstioVersion"], gateway["Type"]) == (version, "gateway")


@pytest.mark.parametrize("version", [OLD, MIDDLE, NEWEST])
def test_precheck_verdicts(make_istioctl, version, tmp_path):
    ok = make_istioctl(version).precheck()
    assert ok.exit_code == 0 and ok.stdout == ""
    assert ok.stderr.startswith(
        "\u2714 No issues found when checking the cluster. Istio is safe to install or upgrade!"
    )
    with SimCluster(
        time_scale=0, k8s_version="1.24.17", kubeconfig=tmp_path / "old-k8s", addons=[kubesim.istio.addon]
    ) as old:
        from rehearsal.istio.istioctl import Istioctl

        istioctl = Istioctl(version, make_istioctl(version).path, old.kubeconfig_path)
        bad = istioctl.precheck()
        minimum = catalog.precheck_min_k8s(version)
        assert bad.exit_code == 1
        assert bad.stdout.strip() == (
            f'Error [IST0142] (Cluster) The Kubernetes Version "v1.24.17" is lower than the minimum version: '
            f"{minimum}"
        )
        assert bad.stderr.startswith(
            "Error: Issues found when checking the cluster. Istio may not be safe to install or upgrade."
        )


@pytest.mark.parametrize("version", [OLD, MIDDLE, NEWEST])
def test_manifest_generate_rejects_unknown_values_and_renders_the_real_objects(make_istioctl, version):
    istioctl = make_istioctl(version)
    with pytest.raises(IstioctlFailed) as exc:
        istioctl.manifest_generate(sets=["values.global.proxy.securityContext.runAsUser=1337"])
    assert exc.value.record.exit_code == 1
    assert exc.value.record.stderr.strip() == (
        f"Error: {minor_of(version).unknown_value_error_prefix}"
        'unknown field "securityContext" in istio.operator.v1alpha1.ProxyConfig'
    )
    docs = [d for d in yaml.safe_load_all(istioctl.manifest_generate()) if d]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    crds = {n for k, n in names if k == "CustomResourceDefinition"}
    has_traffic_extensions = minor_of(version).at_least("1.30")
    assert len(crds) == (15 if has_traffic_extensions else 14)
    assert ("trafficextensions.extensions.istio.io" in crds) == has_traffic_extensions
    expected = {
        ("Deployment", "istiod"),
        ("Service", "istiod"),
        ("ServiceAccount", "istiod"),
        ("ConfigMap", "istio"),
        ("ConfigMap", "istio-sidecar-injector"),
        ("HorizontalPodAutoscaler", "istiod"),
        ("MutatingWebhookConfiguration", "istio-sidecar-injector"),
        ("ValidatingWebhookConfiguration", "istio-validator-istio-system"),
        ("ClusterRole", "istiod-clusterrole-istio-system"),
        ("Role", "istiod"),
        ("Deployment", "istio-ingressgateway"),
        ("Service", "istio-ingressgateway"),
        ("ServiceAccount", "istio-ingressgateway-service-account"),
        ("Role", "istio-ingressgateway-sds"),
        ("ServiceAccount", "istio-reader-service-account"),
    }
    assert expected <= names
    assert (("ConfigMap", "values") in names) == (version != OLD)  # the values ConfigMap exists from 1.26
    assert (("PodDisruptionBudget", "istiod") in names) == (
        version in (OLD, MIDDLE)
    )  # 1.28+: only with >1 replica
    istiod = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "istiod")
    assert (
        istiod["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"{default_hub(version)}/pilot:{version}"
    )
    gateway_svc = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "istio-ingressgateway"
    )
    assert gateway_svc["spec"]["type"] == "LoadBalancer"
    assert not any(
        d["metadata"]["name"] == "istio-revision-tag-default" for d in docs
    )  # added by install only


@pytest.mark.parametrize("version, exists", [(OLD, True), (MIDDLE, False), (NEWEST, False)])
def test_verify_install_exists_only_up_to_1_23(make_istioctl, version, exists):
    istioctl = make_istioctl(version)
    istioctl.install()
    result = istioctl.run("verify-install", check=False)
    if exists:
        assert result.exit_code == 0
        assert "\u2714 Deployment: istiod.istio-system checked successfully" in result.stdout
        assert result.stdout.strip().endswith("\u2714 Istio is installed and verified successfully")
    else:
        assert result.exit_code == 64
        assert result.stderr.startswith('Error: unknown command "verify-install" for "istioctl"')


def test_settings_render_and_apply_cni_hub_pull_secrets_security_context(make_istioctl, sim_cluster):
    from kubesim.istio.mesh import mirror

    mirror(sim_cluster, "registry.example.com/istio", [V128])
    istioctl = make_istioctl(V128)
    sets = [
        "components.cni.enabled=true",
        "values.cni.enabled=true",
        "hub=registry.example.com/istio",
        "values.global.imagePullSecrets[0]=registry-secret",
        "components.pilot.k8s.securityContext.runAsUser=1337",
        "components.pilot.k8s.securityContext.runAsGroup=1337",
        "components.pilot.k8s.securityContext.runAsNonRoot=true",
        "values.gateways.istio-ingressgateway.type=ClusterIP",
    ]
    docs = {
        (d["kind"], d["metadata"]["name"]): d
        for d in yaml.safe_load_all(istioctl.manifest_generate(sets=sets))
        if d
    }
    istiod = docs[("Deployment", "istiod")]["spec"]["template"]["spec"]
    assert istiod["containers"][0]["image"] == f"registry.example.com/istio/pilot:{V128}"
    assert "imagePullSecrets" not in istiod  # pull secrets land on the ServiceAccounts only
    for account in (
        "istiod",
        "istio-ingressgateway-service-account",
        "istio-cni",
        "istio-reader-service-account",
    ):
        assert docs[("ServiceAccount", account)]["imagePullSecrets"] == [{"name": "registry-secret"}]
    assert istiod["securityContext"] == {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": True}
    assert docs[("Service", "istio-ingressgateway")]["spec"]["type"] == "ClusterIP"
    assert ("DaemonSet", "istio-cni-node") in docs
    istioctl.install(sets=sets)
    deploy_apps(sim_cluster)
    echo = [
        p
        for p in sim_cluster.store.items(("", "pods"), "rehearsal-apps")
        if p["metadata"]["labels"]["app"] == "echo"
    ]
    init = [c["name"] for c in echo[0]["spec"]["initContainers"]]
    assert init == ["istio-validation", "istio-proxy"]  # CNI, and native sidecars (1.28 on Kubernetes 1.33)
    proxy = echo[0]["spec"]["initContainers"][1]
    assert (
        proxy["image"] == f"registry.example.com/istio/proxyv2:{V128}" and proxy["restartPolicy"] == "Always"
    )
    assert {"name": "registry-secret"} in echo[0]["spec"]["imagePullSecrets"]


@pytest.mark.parametrize("version", [OLD, V128])
def test_only_components_cni_enabled_renders_the_daemonset(make_istioctl, version):
    def kinds(sets: list[str]) -> set[str]:
        return {
            d["kind"] for d in yaml.safe_load_all(make_istioctl(version).manifest_generate(sets=sets)) if d
        }

    assert "DaemonSet" not in kinds(["values.cni.enabled=true"])
    assert "DaemonSet" in kinds(["components.cni.enabled=true"])


def test_sidecars_are_containers_before_1_27(make_istioctl, sim_cluster):
    make_istioctl(MIDDLE).install()
    deploy_apps(sim_cluster)
    pod = next(p for p in sim_cluster.store.items(("", "pods"), "rehearsal-apps"))
    assert [c["name"] for c in pod["spec"]["containers"]][-1] == "istio-proxy"
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["istio-init"]
    status = json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])
    assert status["containers"] == ["istio-proxy"] and status["revision"] == "default"


def test_in_place_upgrade_by_hand_shows_skew_until_workloads_restart(make_istioctl, sim_cluster):
    source, target = make_istioctl(V127), make_istioctl(V128)
    source.install()
    kube = deploy_apps(sim_cluster)
    url = sim_cluster.node_ports.url("istio-system", "istio-ingressgateway", "http2")
    assert (
        proxy_tag_of(sim_cluster, "rehearsal-apps", answering_pod(requests.get(f"{url}/echo/before"))) == V127
    )
    docs = [d for d in yaml.safe_load_all(target.manifest_generate()) if d]
    kube.apply([d for d in docs if d["kind"] == "CustomResourceDefinition"])
    kube.apply([d for d in docs if d["kind"] != "CustomResourceDefinition"])
    kube.wait_rollout("Deployment", "istiod", "istio-system", 60)
    kube.wait_rollout("Deployment", "istio-ingressgateway", "istio-system", 60)

    # The proxies reconnect to the new istiod over the following moments, as on a real cluster.
    def three_sidecars_seen() -> dict | None:
        info = target.version_info()
        seen = [p for p in info.get("dataPlaneVersion", []) if p["Type"] == "sidecar"]
        return info if len(seen) == 3 else None

    skewed = waits.poll(three_sidecars_seen, 60, "the three sidecars to reconnect to the new istiod")
    assert {m["Info"]["version"] for m in skewed["meshVersion"]} == {V128}
    sidecars = {p["ID"]: p["IstioVersion"] for p in skewed["dataPlaneVersion"] if p["Type"] == "sidecar"}
    assert set(sidecars.values()) == {V127} and len(sidecars) == 3
    assert any(m.code == "IST0158" for m in target.analyze())
    # Traffic through the ingress keeps answering while the workloads roll (maxUnavailable 0).
    codes: list[int] = []
    stop = threading.Event()

    def send() -> None:
        # Traffic, not time: requests back to back (at least one) until the restarts are done.
        session = requests.Session()
        while True:
            codes.append(session.get(f"{url}/echo/during", timeout=5).status_code)
            if stop.is_set():
                return

    sender = threading.Thread(target=send)
    sender.start()
    try:
        for name in ("echo", "client"):
            restart(kube, name, "rehearsal-apps")
    finally:
        stop.set()
        sender.join()
    assert codes and set(codes) == {200}
    # The old pods' proxies leave istiod's view as they finish terminating.
    waits.poll(
        lambda: {p["IstioVersion"] for p in target.version_info().get("dataPlaneVersion", [])} == {V128},
        60,
        f"only {V128} proxies in istioctl's view",
    )
    assert not any(m.code == "IST0158" for m in target.analyze())
    assert (
        proxy_tag_of(sim_cluster, "rehearsal-apps", answering_pod(requests.get(f"{url}/echo/after"))) == V128
    )


def test_unpullable_hub_leaves_istiod_in_image_pull_back_off(make_istioctl, sim_cluster):
    istioctl = make_istioctl(V128)
    with pytest.raises(IstioctlFailed) as exc:
        istioctl.install(sets=["hub=registry.invalid/istio"], readiness_timeout="3s")
    assert "\u2718 Istiod encountered an error: failed to wait for resource" in exc.value.record.stdout
    istiod = next(
        p
        for p in sim_cluster.store.items(("", "pods"), "istio-system")
        if p["metadata"]["labels"].get("app") == "istiod"
    )
    waiting = istiod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    events = [e["message"] for e in sim_cluster.store.items(("", "events"), "istio-system")]
    assert any("dial tcp: lookup registry.invalid" in m for m in events)
    version = istioctl.run("version", "-o", "json")
    assert set(json.loads(version.stdout)) == {"clientVersion"}
    assert 'Istio is not present in the cluster: no running Istio pods in "istio-system"' in version.stderr
    # With failurePolicy Fail and no ready istiod, injected pods cannot be created at all.
    kube = Kube(sim_cluster.api_client())
    kube.apply(load_manifests(ROOT / "sample_apps"))
    sim_cluster.wait_for(
        lambda: any(
            e["reason"] == "FailedCreate" for e in sim_cluster.store.items(("", "events"), "rehearsal-apps")
        ),
        60,
        "FailedCreate",
    )
    failed = next(
        e["message"]
        for e in sim_cluster.store.items(("", "events"), "rehearsal-apps")
        if e["reason"] == "FailedCreate"
    )
    assert failed == (
        "Error creating: Internal error occurred: failed calling webhook "
        '"namespace.sidecar-injector.istio.io": failed to call webhook: Post '
        '"https://istiod.istio-system.svc:443/inject?timeout=10s": no endpoints available for service '
        '"istiod"'
    )
    messages = istioctl.analyze()
    assert not [m for m in messages if m.level == "Error"]


def test_telemetry_counts_requests_and_503_without_endpoints(make_istioctl, sim_cluster):
    make_istioctl(V128).install()
    kube = deploy_apps(sim_cluster)
    url = sim_cluster.node_ports.url("istio-system", "istio-ingressgateway", "http2")
    session = requests.Session()
    for _ in range(7):
        assert session.get(f"{url}/echo/count").status_code == 200
    assert session.get(f"{url}/nowhere").status_code == 404
    core_api = sim_cluster.api_client()
    from kubernetes import client

    core = client.CoreV1Api(core_api)
    total = 0
    for pod in core.list_namespaced_pod("rehearsal-apps", label_selector="app=echo").items:
        text = core.connect_get_namespaced_pod_proxy_with_path(
            f"{pod.metadata.name}:15020", "rehearsal-apps", "stats/prometheus"
        )
        for line in text.splitlines():
            if line.startswith("istio_requests_total{") and 'reporter="destination"' in line:
                assert 'destination_workload="echo"' in line and 'response_code="200"' in line
                assert 'source_workload="istio-ingressgateway"' in line
                total += int(line.rsplit(" ", 1)[1])
    assert total == 7
    kube.resource("apps/v1", "Deployment").patch(
        name="echo",
        namespace="rehearsal-apps",
        body={"spec": {"replicas": 0}},
        content_type="application/merge-patch+json",
    )
    sim_cluster.wait_for(
        lambda: (
            not [
                p
                for p in sim_cluster.store.items(("", "pods"), "rehearsal-apps")
                if p["metadata"]["labels"].get("app") == "echo"
            ]
        ),
        60,
        "echo gone",
    )
    gone = session.get(f"{url}/echo/none")
    assert (gone.status_code, gone.text) == (503, "no healthy upstream")


def test_proxy_status_columns_by_version(make_istioctl, sim_cluster):
    old = make_istioctl(MIDDLE)
    old.install()
    table = old.run("proxy-status").stdout.splitlines()
    assert table[0].split() == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"]
    # From 1.23 each synced type carries its age, e.g. "SYNCED (5s)" (istioctl/pkg/writer/pilot/status.go).
    assert re.search(r"SYNCED \(\d+s\)\s+SYNCED \(\d+s\)", table[1]) and "NOT SENT" in table[1]
    new = make_istioctl(NEWEST)
    assert new.run("proxy-status").stdout.splitlines()[0].split() == [
        "NAME",
        "CLUSTER",
        "ISTIOD",
        "VERSION",
        "SUBSCRIBED",
        "TYPES",
    ]
    doc = json.loads(new.run("proxy-status", "-o", "json").stdout)
    assert doc["resources"][0]["node"]["metadata"]["ISTIO_VERSION"] == MIDDLE
    assert json.loads(doc["controlPlane"]["identifier"])["Component"] == "istiod"
    assert old.run("proxy-status", "-o", "json", check=False).exit_code == 64


def test_tags_and_uninstall_revision(make_istioctl, sim_cluster):
    istioctl = make_istioctl(V128)
    istioctl.install(sets=["revision=canary"])
    assert 'Revision tag "prod" created' in istioctl.tag_set("prod", "canary").stdout
    assert "prod" in istioctl.run("tag", "list").stdout
    istioctl.uninstall("canary")
    assert not [p for p in sim_cluster.store.items(("apps", "deployments"), "istio-system")]


def test_install_prunes_what_the_same_version_no_longer_renders(make_istioctl, sim_cluster):
    # operator/pkg/install/install.go prune: objects with this install's ownership labels (this istioctl's
    # version, the revision, a component label) that the new render lacks are deleted and listed.
    istioctl = make_istioctl(V128)
    istioctl.install(sets=["components.cni.enabled=true"])
    assert sim_cluster.store.get(("apps", "daemonsets"), "istio-system", "istio-cni-node") is not None
    again = istioctl.install()
    assert "  Removed apps/v1, Kind=DaemonSet/istio-cni-node.istio-system." in again.stdout
    assert sim_cluster.store.get(("apps", "daemonsets"), "istio-system", "istio-cni-node") is None
    # The default tag webhooks are marked not-pruned and stay; the revision's own injector is deactivated.
    hooks = {
        h["metadata"]["name"]: h
        for h in sim_cluster.store.items(("admissionregistration.k8s.io", "mutatingwebhookconfigurations"))
    }
    assert "istio-revision-tag-default" in hooks
    assert all(
        w["namespaceSelector"] == {"matchLabels": {"istio.io/deactivated": "never-match"}}
        for w in hooks["istio-sidecar-injector"]["webhooks"]
    )
    assert istioctl.run("tag", "list").stdout.split()[:3] == ["TAG", "REVISION", "NAMESPACES"]


@pytest.mark.parametrize("version", [OLD, NEWEST])
def test_precheck_checks_gateway_api_crd_versions(make_istioctl, sim_cluster, version):
    # istioctl/pkg/precheck/precheck.go checkGatewayAPIs: HTTPRoute must serve v1beta1 (IST0156, Error) and,
    # from 1.26, should serve v1 (IST0172, Warning); messages.yaml templates.
    kube = Kube(sim_cluster.api_client())
    kube.apply(
        [
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "httproutes.gateway.networking.k8s.io"},
                "spec": {
                    "group": "gateway.networking.k8s.io",
                    "scope": "Namespaced",
                    "names": {"kind": "HTTPRoute", "plural": "httproutes", "singular": "httproute"},
                    "versions": [
                        {
                            "name": "v1alpha2",
                            "served": True,
                            "storage": True,
                            "schema": {"openAPIV3Schema": {"type": "object"}},
                        }
                    ],
                },
            }
        ]
    )
    result = make_istioctl(version).precheck(from_version=catalog.minor_name(version))
    origin = "(CustomResourceDefinition httproutes.gateway.networking.k8s.io)"
    lines = result.stdout.strip().splitlines()
    assert result.exit_code == 1
    text = "The Gateway API CRD version v1alpha2 is lower than the minimum version:"
    assert f"Error [IST0156] {origin} {text} v1beta1" in lines
    warning = f"Warning [IST0172] {origin} {text} v1"
    assert (warning in lines) == minor_of(version).precheck_gateway_api_v1_warning
