"""The official Python client (typed and dynamic) against the simulated cluster."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError, UnprocessibleEntityError


@pytest.fixture
def dyn(sim_cluster, tmp_path):
    return dynamic.DynamicClient(sim_cluster.api_client(), cache_file=str(tmp_path / "discovery.json"))


@pytest.fixture
def core(sim_cluster):
    return client.CoreV1Api(sim_cluster.api_client())


@pytest.fixture
def apps(sim_cluster):
    return client.AppsV1Api(sim_cluster.api_client())


def deployment(name: str, replicas: int = 2, image: str = "registry.k8s.io/pause:3.10", **strategy) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            **({"strategy": {"type": "RollingUpdate", "rollingUpdate": strategy}} if strategy else {}),
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": image}]},
            },
        },
    }


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body or "{}")


def test_typed_clients_read_every_kind_the_cluster_starts_with(core, apps, sim_cluster):
    sim_cluster.wait_for(
        lambda: (
            len([p for p in sim_cluster.store.items(("", "pods")) if p["status"].get("phase") == "Running"])
            == 4
        ),
        60,
        "system pods",
    )
    pods = core.list_pod_for_all_namespaces()
    assert {p.metadata.namespace for p in pods.items} == {"kube-system"}
    assert all(p.status.container_statuses[0].ready for p in pods.items)
    node = core.read_node("rehearsal-control-plane")
    assert node.status.node_info.kubelet_version == "v1.33.1"
    assert [c.type for c in node.status.conditions if c.status == "True"] == ["Ready"]
    assert {n.metadata.name for n in core.list_namespace().items} >= {"default", "kube-system", "kube-public"}
    assert core.read_namespaced_service_account("default", "default").metadata.name == "default"
    assert apps.read_namespaced_deployment("coredns", "kube-system").status.ready_replicas == 2
    assert apps.list_daemon_set_for_all_namespaces().items[0].status.number_ready == 1
    assert core.list_namespaced_event("kube-system").items
    assert client.VersionApi(sim_cluster.api_client()).get_code().git_version == "v1.33.1"


def test_server_side_apply_dry_run_and_conflicts(dyn, sim_cluster):
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    body = deployment("web")
    dry = deployments.server_side_apply(body=body, field_manager="rehearsal", dry_run="All")
    assert dry.metadata.name == "web"
    with pytest.raises(NotFoundError):
        deployments.get(name="web", namespace="default")
    created = deployments.server_side_apply(body=body, field_manager="rehearsal")
    managers = {m.manager: m.operation for m in created.metadata.managedFields}
    assert managers == {"rehearsal": "Apply"}
    assert "f:replicas" in json.dumps(created.metadata.managedFields[0].fieldsV1.to_dict())
    # Another manager changes replicas with an ordinary patch: it now owns that field.
    deployments.patch(
        name="web",
        namespace="default",
        body={"spec": {"replicas": 5}},
        content_type="application/merge-patch+json",
        field_manager="autoscaler",
    )
    with pytest.raises(ConflictError) as conflict:
        deployments.server_side_apply(body=body, field_manager="rehearsal")
    status = json.loads(conflict.value.body)
    assert status["reason"] == "Conflict" and status["code"] == 409
    assert (
        status["message"]
        == 'Apply failed with 1 conflict: conflict with "autoscaler" using apps/v1: .spec.replicas'
    )
    forced = deployments.server_side_apply(body=body, field_manager="rehearsal", force_conflicts=True)
    assert forced.spec.replicas == 2
    # Dropping a field from the applied configuration removes it from the object.
    smaller = deployment("web")
    smaller["metadata"].pop("labels")
    applied = deployments.server_side_apply(body=smaller, field_manager="rehearsal")
    assert not (applied.metadata.labels or {})


def test_label_field_selectors_and_pagination(dyn, sim_cluster):
    configmaps = dyn.resources.get(api_version="v1", kind="ConfigMap")
    for n in range(7):
        configmaps.create(
            namespace="default",
            body={
                "metadata": {"name": f"cm-{n}", "labels": {"tier": "a" if n % 2 else "b", "n": str(n)}},
                "data": {"n": str(n)},
            },
        )
    assert len(configmaps.get(namespace="default", label_selector="tier=a").items) == 3
    assert len(configmaps.get(namespace="default", label_selector="tier!=a,n").items) == 4
    assert len(configmaps.get(namespace="default", label_selector="n in (1,2,9)").items) == 2
    assert len(configmaps.get(namespace="default", label_selector="!n").items) == 1  # kube-root-ca.crt
    assert [
        i.metadata.name
        for i in configmaps.get(namespace="default", field_selector="metadata.name=cm-3").items
    ] == ["cm-3"]
    names, token, pages = [], None, 0
    while True:
        page = configmaps.get(namespace="default", label_selector="n", limit=3, _continue=token)
        names += [i.metadata.name for i in page.items]
        pages += 1
        token = page.metadata["continue"] if page.metadata.get("continue") else None
        if not token:
            break
    assert pages == 3 and names == [f"cm-{n}" for n in range(7)]


def test_optimistic_concurrency_and_status_bodies(core, sim_cluster):
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "conf"}, "data": {"a": "1"}})
    stale = cm.metadata.resource_version
    core.patch_namespaced_config_map("conf", "default", {"data": {"a": "2"}})
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map(
            "conf", "default", {"metadata": {"name": "conf", "resourceVersion": stale}, "data": {"a": "3"}}
        )
    assert exc.value.status == 409
    assert status_of(exc.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'Operation cannot be fulfilled on configmaps "conf": the object has been modified; '
        "please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "conf", "kind": "configmaps"},
        "code": 409,
    }
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("default", {"metadata": {"name": "conf"}})
    assert status_of(exc.value)["reason"] == "AlreadyExists"
    assert status_of(exc.value)["message"] == 'configmaps "conf" already exists'
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_pod("missing", "default")
    assert status_of(exc.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "kind": "pods"},
        "code": 404,
    }
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod(
            "default",
            {"metadata": {"name": "Bad_Name"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        )
    body = status_of(exc.value)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert body["message"].startswith(
        'Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 subdomain must consist of"
    )
    assert body["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": body["details"]["causes"][0]["message"],
        "field": "metadata.name",
    }
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_pod("default", {"metadata": {"name": "empty"}, "spec": {"containers": []}})
    assert status_of(exc.value)["message"] == 'Pod "empty" is invalid: spec.containers: Required value'
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("conf", "default", {"metadata": {"name": "other"}})
    assert exc.value.status == 400 and status_of(exc.value)["reason"] == "BadRequest"
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert status_of(exc.value)["message"] == 'namespaces "nowhere" not found'


def test_raw_bad_requests(sim_cluster, tmp_path):
    import requests

    ca = tmp_path / "ca.pem"
    ca.write_bytes(sim_cluster.ca_pem)
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace the cluster's own CA
    session.verify = str(ca)
    headers = {"Authorization": f"Bearer {sim_cluster.token}", "Content-Type": "application/json"}
    url = sim_cluster.server_url
    bad_json = session.post(f"{url}/api/v1/namespaces/default/configmaps", data="{not json", headers=headers)
    assert bad_json.status_code == 400 and bad_json.json()["reason"] == "BadRequest"
    unknown = session.get(f"{url}/apis/nope.example.com/v1/things", headers=headers)
    assert unknown.status_code == 404
    assert unknown.text == "404 page not found\n"  # a group nobody serves: the mux's plain text, as v1.36
    unknown = session.get(f"{url}/apis/apps/v1/things", headers=headers)
    assert unknown.json()["message"] == "the server could not find the requested resource"
    no_token = session.get(f"{url}/api/v1/pods")
    assert no_token.status_code == 401 and no_token.json()["reason"] == "Unauthorized"
    bad_dry_run = session.post(
        f"{url}/api/v1/namespaces/default/configmaps?dryRun=Maybe", json={}, headers=headers
    )
    assert bad_dry_run.status_code == 422  # CreateOptions.meta.k8s.io "" is invalid: dryRun: ..., as for real
    no_manager = session.patch(
        f"{url}/apis/apps/v1/namespaces/default/deployments/x",
        json=deployment("x"),
        headers={**headers, "Content-Type": "application/apply-patch+yaml"},
    )
    assert no_manager.status_code == 422
    assert "fieldManager: Required value: is required for apply patch" in no_manager.json()["message"]
    listed = session.get(f"{url}/api/v1/pods", headers=headers)
    assert listed.status_code == 200 and listed.json()["kind"] == "PodList"


def test_watch_streams_changes_from_a_resource_version(core, sim_cluster):
    listed = core.list_namespaced_config_map("default")
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def consume() -> None:
        w = watch.Watch()
        for event in w.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=10,
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespaced_config_map("default", {"metadata": {"name": "watched"}})
    core.patch_namespaced_config_map("watched", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("watched", "default")
    assert done.wait(15)
    assert seen == [("ADDED", "watched"), ("MODIFIED", "watched"), ("DELETED", "watched")]


def test_custom_resource_definitions_are_served_once_established(dyn, sim_cluster, tmp_path):
    crds = dyn.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    crds.create(
        body={
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "subresources": {"status": {}},
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "required": ["size"],
                                        "properties": {"size": {"type": "integer"}},
                                    },
                                    "status": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            }
                        },
                    }
                ],
            },
        }
    )
    sim_cluster.wait_for(
        lambda: any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (
                sim_cluster.store.get(
                    ("apiextensions.k8s.io", "customresourcedefinitions"), "", "widgets.example.com"
                ).get("status")
                or {}
            ).get("conditions", [])
        ),
        60,
        "CRD established",
    )
    fresh = dynamic.DynamicClient(sim_cluster.api_client(), cache_file=str(tmp_path / "fresh.json"))
    widgets = fresh.resources.get(api_version="example.com/v1", kind="Widget")
    made = widgets.create(
        namespace="default",
        body={
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
            "status": {"ignored": True},
        },
    )
    assert made.spec.size == 3 and "status" not in made.to_dict()  # status only through the subresource
    with pytest.raises(UnprocessibleEntityError):
        widgets.create(
            namespace="default",
            body={
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": "w2"},
                "spec": {"size": "big"},
            },
        )
    generation = made.metadata.generation
    patched = widgets.patch(
        namespace="default",
        name="w1",
        body={"spec": {"size": 4}},
        content_type="application/merge-patch+json",
    )
    assert patched.metadata.generation == generation + 1
    crds.delete(name="widgets.example.com")
    sim_cluster.wait_for(lambda: not sim_cluster.store.items(("example.com", "widgets")), 60, "widgets gone")


def test_scale_and_status_subresources(apps, sim_cluster):
    apps.create_namespaced_deployment("default", deployment("scaled", replicas=1))
    scale = apps.patch_namespaced_deployment_scale("scaled", "default", {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    sim_cluster.wait_for(
        lambda: (
            sim_cluster.store.get(("apps", "deployments"), "default", "scaled")["status"].get("readyReplicas")
            == 3
        ),
        60,
        "3 ready replicas",
    )
    read = apps.read_namespaced_deployment_scale("scaled", "default")
    assert read.status.replicas == 3 and read.status.selector == "app=scaled"
    # Writing status through the main resource is ignored, as on a real API server.
    dep = apps.read_namespaced_deployment("scaled", "default")
    dep.status.ready_replicas = 99
    assert apps.replace_namespaced_deployment("scaled", "default", dep).status.ready_replicas == 3


def test_foreground_and_orphan_deletion(apps, sim_cluster):
    apps.create_namespaced_deployment("default", deployment("fg"))
    apps.create_namespaced_deployment("default", deployment("orphaned"))
    sim_cluster.wait_for(
        lambda: len([p for p in sim_cluster.store.items(("", "pods"), "default")]) == 4, 60, "pods"
    )
    apps.delete_namespaced_deployment("orphaned", "default", propagation_policy="Orphan")
    apps.delete_namespaced_deployment("fg", "default", propagation_policy="Foreground")
    sim_cluster.wait_for(
        lambda: sim_cluster.store.get(("apps", "deployments"), "default", "fg") is None, 60, "fg gone"
    )
    sim_cluster.wait_for(
        lambda: sim_cluster.store.get(("apps", "deployments"), "default", "orphaned") is None,
        60,
        "orphaned gone",
    )
    rs = [r for r in sim_cluster.store.items(("apps", "replicasets"), "default")]
    assert [r["metadata"]["labels"]["app"] for r in rs] == ["orphaned"]
    assert not rs[0]["metadata"].get("ownerReferences")
