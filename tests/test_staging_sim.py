"""The simulator as a staging cluster: what an istioctl-installed team mesh has that a rehearsal must
keep (several ingress gateways in their own namespaces, pilot env, CNI in kube-system, the ``values``
ConfigMap, the ``installed-state`` IstioOperator of old istioctls), and Service updates that keep their node
ports."""

from __future__ import annotations

import json

import yaml

from istiofacts import catalog
from kubesim import SimCluster
from rehearsal.kube import Kube

NEWEST = catalog.default_pair()[1]
V120 = catalog.CATALOG["1.20"].patches[-1]

TEAM_MESH = {
    "apiVersion": "install.istio.io/v1alpha1",
    "kind": "IstioOperator",
    "spec": {
        "meshConfig": {"accessLogFile": "/dev/stdout"},
        "components": {
            "cni": {"enabled": True, "namespace": "kube-system"},
            "ingressGateways": [
                {"name": "istio-ingressgateway", "enabled": True},
                {
                    "name": "team-gateway",
                    "namespace": "istio-ingress",
                    "enabled": True,
                    "label": {"istio": "team-gateway"},
                    "k8s": {"replicaCount": 2, "serviceAnnotations": {"lb.example.com/internal": "true"}},
                },
            ],
        },
        "values": {"pilot": {"env": {"PILOT_ENABLE_STATUS": True, "EXTERNAL_FOO": "bar"}}},
    },
}


def test_install_renders_every_gateway_pilot_env_cni_namespace_and_the_values_configmap(
    make_istioctl, sim_cluster, tmp_path
):
    kube = Kube(sim_cluster.api_client())
    kube.resource("v1", "Namespace").create(body={"metadata": {"name": "istio-ingress"}})
    plan = tmp_path / "team.yaml"
    plan.write_text(yaml.safe_dump(TEAM_MESH))
    make_istioctl(NEWEST).install([plan])
    store = sim_cluster.store
    team = store.get(("apps", "deployments"), "istio-ingress", "team-gateway")
    assert team is not None and team["spec"]["replicas"] == 2
    assert team["spec"]["selector"]["matchLabels"] == {"app": "istio-ingressgateway", "istio": "team-gateway"}
    assert team["metadata"]["labels"]["operator.istio.io/component"] == "IngressGateways"
    service = store.get(("", "services"), "istio-ingress", "team-gateway")
    assert service["metadata"]["annotations"] == {"lb.example.com/internal": "true"}
    assert store.get(("apps", "deployments"), "istio-system", "istio-ingressgateway") is not None
    assert store.get(("apps", "daemonsets"), "kube-system", "istio-cni-node") is not None
    assert store.get(("apps", "daemonsets"), "istio-system", "istio-cni-node") is None
    istiod = store.get(("apps", "deployments"), "istio-system", "istiod")
    env = [e["name"] for e in istiod["spec"]["template"]["spec"]["containers"][0]["env"]]
    # Sorted, after CA_TRUSTED_NODE_ACCOUNTS and before PILOT_TRACE_SAMPLING, as the chart renders them.
    at = env.index("CA_TRUSTED_NODE_ACCOUNTS")
    assert env[at + 1 : at + 4] == ["EXTERNAL_FOO", "PILOT_ENABLE_STATUS", "PILOT_TRACE_SAMPLING"]
    values = {e["name"]: e.get("value") for e in istiod["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert values["PILOT_ENABLE_STATUS"] == "true"
    cm = store.get(("", "configmaps"), "istio-system", "values")
    assert set(cm["data"]) == {"original-values", "merged-values"}
    original = json.loads(cm["data"]["original-values"])
    merged = json.loads(cm["data"]["merged-values"])
    assert original["pilot"]["env"] == {"PILOT_ENABLE_STATUS": True, "EXTERNAL_FOO": "bar"}
    assert original["meshConfig"] == {"accessLogFile": "/dev/stdout"}
    assert merged["env"] == original["pilot"]["env"]  # pilot.* copied to the top (zzy_descope_legacy.yaml)
    assert cm["data"]["original-values"].startswith('{\n  "global": {')  # toPrettyJson, two-space indent


def test_istioctl_1_20_leaves_the_installed_state_istiooperator(make_istioctl, sim_cluster):
    make_istioctl(V120).install(sets=["meshConfig.accessLogFile=/dev/stdout"])
    state = sim_cluster.store.get(("install.istio.io", "istiooperators"), "istio-system", "installed-state")
    assert state is not None
    assert state["spec"]["meshConfig"] == {"accessLogFile": "/dev/stdout"}


def test_a_service_update_without_node_port_keeps_the_allocated_one(tmp_path):
    # Checked against kube-apiserver v1.36.2: a PUT without nodePort keeps the port of the same name; a
    # renamed port gets a new one, and its old number can be taken by another Service.
    with SimCluster(time_scale=0, kubeconfig=tmp_path / "kubeconfig") as cluster:
        services = Kube(cluster.api_client()).resource("v1", "Service")
        body = {
            "metadata": {"name": "np", "namespace": "default"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "x"},
                "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
            },
        }
        created = services.create(body=body, namespace="default").to_dict()
        http, https = (p["nodePort"] for p in created["spec"]["ports"])
        put = json.loads(json.dumps(body))
        put["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
        put["spec"]["ports"][0]["name"] = "web"
        replaced = services.replace(body=put, namespace="default", name="np").to_dict()
        ports = {p["name"]: p["nodePort"] for p in replaced["spec"]["ports"]}
        assert ports["https"] == https
        assert ports["web"] != http
        other = {
            "metadata": {"name": "np2", "namespace": "default"},
            "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80, "nodePort": http}]},
        }
        assert (
            services.create(body=other, namespace="default").to_dict()["spec"]["ports"][0]["nodePort"] == http
        )
