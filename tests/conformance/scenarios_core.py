"""Conformance scenarios of the core resources the simulated cluster stores or answers but runs nothing for:
componentstatuses, bindings, replicationcontrollers and the pods/ephemeralcontainers subresource (see
``kubesim/apiserver/legacy.py``), and of reads at a past revision (an Exact list, a legacy exact one with a
limit: both read etcd at that revision, so they show an object as it was). Recorded with the others by
``python -m tests.conformance.record``.

Left out on purpose: a componentstatuses list (the reference's scheduler and controller manager listen on
other ports than the ones the real REST probes, so it reports them Unhealthy; the simulated components are
up) and a binding of an unbound pod (the reference has no node and the simulated scheduler binds at once).
"""

from __future__ import annotations

from tests.conformance.runner import Request, Scenario, kubectl
from tests.conformance.scenarios import NS, configmap, pod, with_change

RC = f"{NS}/replicationcontrollers"


def replication_controller(name: str = "rc") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}],
                },
            },
        },
    }


def core_scenarios() -> list[Scenario]:
    made_rc = Request("POST", RC, replication_controller())
    assigned = Request("POST", f"{NS}/pods", pod("p", nodeName="elsewhere"))
    return [
        Scenario("componentstatus-get", Request("GET", "/api/v1/componentstatuses/etcd-0"), namespaced=False),
        Scenario(
            "componentstatus-not-found", Request("GET", "/api/v1/componentstatuses/nope"), namespaced=False
        ),
        Scenario(
            "componentstatus-watch",
            Request("GET", "/api/v1/componentstatuses", query={"watch": "true"}),
            namespaced=False,
        ),
        Scenario("bindings-list", Request("GET", f"{NS}/bindings")),
        Scenario(
            "binding-of-an-assigned-pod",
            Request(
                "POST",
                f"{NS}/bindings",
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": "p"},
                    "target": {"kind": "Node", "name": "other"},
                },
            ),
            setup=[assigned],
        ),
        Scenario("replicationcontroller-create", Request("POST", RC, replication_controller("made"))),
        Scenario("replicationcontroller-scale", Request("GET", f"{RC}/rc/scale"), setup=[made_rc]),
        Scenario("kubectl-get-replicationcontrollers", kubectl("get", "rc", "-n", "{ns}"), setup=[made_rc]),
        Scenario(
            "pod-ephemeralcontainers-get",
            Request("GET", f"{NS}/pods/p/ephemeralcontainers"),
            setup=[assigned],
            compare="spec.containers",
        ),
    ]


def past_revision_scenarios() -> list[Scenario]:
    cm = f"{NS}/configmaps"
    labelled = Request("POST", cm, with_change(configmap("l"), "metadata.labels", {"app": "x"}))
    # A kubectl step answers text, so {rv} stays the created object's revision.
    relabelled = kubectl("label", "configmap", "l", "app=y", "--overwrite", "-n", "{ns}")
    sel = {"labelSelector": "app"}
    return [
        Scenario(
            "list-resource-version-exact-past",
            Request("GET", cm, query={**sel, "resourceVersion": "{rv}", "resourceVersionMatch": "Exact"}),
            setup=[labelled, relabelled],
        ),
        Scenario(
            "list-resource-version-limit-past",
            Request("GET", cm, query={**sel, "resourceVersion": "{rv}", "limit": "5"}),
            setup=[labelled, relabelled],
        ),
        Scenario(
            "list-resource-version-not-older-than-past",
            Request(
                "GET", cm, query={**sel, "resourceVersion": "{rv}", "resourceVersionMatch": "NotOlderThan"}
            ),
            setup=[labelled, relabelled],
        ),
    ]
